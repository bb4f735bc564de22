"""
Reads tried again while the database is out of reach.

A PostgreSQL server that restarts, or that ends a master's connections,
fails the next statement on each of them once: Buildbot's pool retries
no such failure on PostgreSQL (only MySQL's lost connections and SQLite's
locks), and SQLAlchemy only throws the dead connections away.  A build's
event whose read failed there would be dropped, or told later, out of
0.8's order, when the build's end looked for it; a buildset's or a
request's, dropped.  Its read is tried again instead, in its place in its
queue (the build's, or the one of builders, buildsets and requests), the
events behind it waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python import log

_T = TypeVar("_T")

# The first wait before trying again, doubled each time up to MAX_WAIT; after
# LIMIT seconds of waits in all the failure is let through (and logged).
FIRST_WAIT = 0.5
MAX_WAIT = 30.0
LIMIT = 300.0


def database_out_of_reach(error: BaseException) -> bool:
    """
    Whether C{error} says the database dropped the connection or could not
    be connected to (a server restarting, refusing connections or ending
    them), rather than that a statement failed: SQLAlchemy marks a
    connection it found dead as invalidated, and a failed connect has no
    statement.  (SQLite's own errors, a syntax error among them, are all
    C{OperationalError}s: that class alone says nothing.)
    """
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    return error.connection_invalidated or (
        isinstance(error, sa.exc.OperationalError) and error.statement is None
    )


class DatabaseRetries:
    """
    Runs reads again while the database is out of reach (see
    L{database_out_of_reach}), waiting longer each time, for L{LIMIT}
    seconds of waits at most.  L{stop} ends the waits: a master that shuts
    down tries each such read once more, and then lets it fail.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._waits: dict[defer.Deferred[None], IDelayedCall] = {}
        self._stopped = False

    async def run(self, attempt: Callable[[], Awaitable[_T]], what: str) -> _T:
        """C{await attempt()}, tried again while the database is out of reach; C{what} it reads."""
        wait = FIRST_WAIT
        waited = 0.0
        while True:
            try:
                return await attempt()
            except Exception as e:
                if self._stopped or waited >= LIMIT or not database_out_of_reach(e):
                    raise
                log.msg(
                    f"LegacyStatus: the database was out of reach while reading {what}"
                    f" ({type(e).__name__}); trying again in {wait:g} s"
                )
            await self._sleep(wait)
            waited += wait
            wait = min(wait * 2, MAX_WAIT)

    def stop(self) -> None:
        """End the waits under way, and those to come."""
        self._stopped = True
        waits, self._waits = self._waits, {}
        for d, call in waits.items():
            call.cancel()
            d.callback(None)

    def _sleep(self, seconds: float) -> defer.Deferred[Any]:
        if self._stopped:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()

        def wake() -> None:
            del self._waits[d]
            d.callback(None)

        self._waits[d] = self._clock.callLater(seconds, wake)
        return d
