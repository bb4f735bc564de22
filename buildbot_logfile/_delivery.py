"""
Delivering one 0.8 status event to one receiver, and 0.8's way of
subscribing by returning a receiver from a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python import log


def deliver(receiver: Any, method: str, *args: Any) -> Any:
    """
    Call one status receiver method, if it has it.  A receiver that raises
    is logged with its name and skipped, so it never stops the build or the
    other receivers.
    """
    callback: Callable[..., Any] | None = getattr(receiver, method, None)
    if callback is None:
        return None
    try:
        return callback(*args)
    except Exception:
        log.err(None, f"status receiver {receiver!r} failed in {method}; skipped")
        return None


def subscribe_returned(
    returned: Any,
    subscribe: Callable[..., None],
    unsubscribe: Callable[[Any], None],
    finished: defer.Deferred[Any],
) -> None:
    """
    0.8's return-value subscription: a callback may return a receiver, or
    C{(receiver, interval)}, to be subscribed until C{finished} fires.
    """
    if not returned:
        return
    if isinstance(returned, tuple):
        receiver, interval = returned
        subscribe(receiver, interval)
    else:
        receiver = returned
        subscribe(receiver)
    finished.addCallback(lambda _: unsubscribe(receiver))
