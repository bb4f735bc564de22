"""
A wait that gives up: a receiver's stop waits for its work (mails being
sent, a server closing the connection) for a bounded time, and lets that
work go on while the reactor runs rather than cancel it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime


def within(d: defer.Deferred[Any], timeout: float, clock: IReactorTime) -> defer.Deferred[bool]:
    """
    Fires with True once C{d} fires (with a result or a failure, which is
    left to C{d}'s own callbacks), or with False after C{timeout} seconds;
    C{d} itself is not cancelled.
    """
    done: defer.Deferred[bool] = defer.Deferred()

    def end(ended: bool) -> None:
        if not done.called:
            done.callback(ended)

    def fired(result: Any) -> Any:
        end(True)
        return result

    deadline = clock.callLater(timeout, end, False)
    d.addBoth(fired)

    def settled(ended: bool) -> bool:
        if deadline.active():
            deadline.cancel()
        return ended

    return done.addCallback(settled)
