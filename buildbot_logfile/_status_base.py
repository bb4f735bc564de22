"""
What 0.8's status objects share: subscriptions, finishing, and the data
API's values as 0.8 spelled them.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from buildbot.process.results import CANCELLED, EXCEPTION
from twisted.internet import defer, task

_UNESCAPED_DIRNAME_CHARS = re.compile(r"[A-Za-z0-9-]+")
# Escaped builder names longer than this are cut and given a digest: file
# systems allow 255 bytes a name.
_MAX_DIRNAME = 200


def builder_dirname(name: str) -> str:
    """
    The spool directory of a builder: its name, with every other character
    than ASCII letters, digits and C{-} written as C{_} and the hex of its
    UTF-8 bytes, so that two builders never share one (0.8 turned them all
    into C{_}: C{x"y} and C{x_y} shared a directory) and none is C{.} or
    C{..}.
    """
    parts = []
    pos = 0
    for match in _UNESCAPED_DIRNAME_CHARS.finditer(name):
        parts.append("".join(f"_{b:02x}" for b in name[pos : match.start()].encode()))
        parts.append(match.group())
        pos = match.end()
    parts.append("".join(f"_{b:02x}" for b in name[pos:].encode()))
    dirname = "".join(parts) or "_"
    if len(dirname) > _MAX_DIRNAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        dirname = f"{dirname[: _MAX_DIRNAME - 17]}_{digest}"
    return dirname


def epoch(value: datetime | float | None) -> float | None:
    """
    A data-API time as seconds since the epoch: the data API gives a
    C{datetime}, a message that crossed a WAMP router a number.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


class TagsAlias:
    """
    C{categories}, 0.8.0 to 0.8.9's name for the C{tags} of receivers,
    bots and their factories: plugins of that time read it, and set it
    (a subclass's own C{__init__} did C{self.categories = categories}).
    """

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj, "tags", None)

    def __set__(self, obj: Any, value: list[str] | None) -> None:
        obj.tags = value


def legacy_results(results: int | None) -> int | None:
    """
    A data-API result as 0.8 had it: 0.8 had no C{CANCELLED}, and a build
    or step that Buildbot cancels is one 0.8 stopped, an C{EXCEPTION}.
    Plugins index their own tables of 0.8's six results with it.
    """
    return EXCEPTION if results == CANCELLED else results


def as_datetime(value: datetime | float | None) -> datetime | None:
    """
    A data-API time as a C{datetime} (UTC when it came as a number): for
    what 0.8 gave as one, whichever form the message queue brought.
    """
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, timezone.utc)


def words(state_string: str | None) -> list[str]:
    """
    A state string as 0.8's text, a list of words: C{"'make all'
    (warnings)"} is C{["'make", "all'", "(warnings)"]}, as 0.8 split it.
    """
    return state_string.split() if state_string else []


class Finishes:
    """Something that finishes once, as 0.8's C{waitUntilFinished} saw it."""

    def __init__(self) -> None:
        self._finished = False
        self._finish_waiters: list[defer.Deferred[Any]] = []

    def isFinished(self) -> bool:
        return self._finished

    def waitUntilFinished(self) -> defer.Deferred[Any]:
        """A Deferred that fires with this object once it is finished."""
        if self._finished:
            return defer.succeed(self)
        d: defer.Deferred[Any] = defer.Deferred()
        self._finish_waiters.append(d)
        return d

    def mark_finished(self) -> None:
        """Finished from now on: those waiting are told."""
        if self._finished:
            return
        self._finished = True
        waiters, self._finish_waiters = self._finish_waiters, []
        for d in waiters:
            d.callback(self)


# Updates more often than this would keep the reactor busy for nothing.
MIN_UPDATE_INTERVAL = 0.01


def checked_interval(interval: Any) -> float | None:
    """A receiver's update interval: None, or a finite number of seconds (else ValueError)."""
    if interval is not None and (
        isinstance(interval, bool)
        or not isinstance(interval, (int, float))
        or not math.isfinite(interval)
    ):
        raise ValueError(f"an update interval is a number of seconds or None, not {interval!r}")
    return interval


class Watched(Finishes):
    """Something receivers subscribe to, that finishes once."""

    def __init__(self) -> None:
        super().__init__()
        self.watchers: list[Any] = []
        # Periodic updates (0.8's ETA updates) by receiver.
        self._updates: dict[int, task.LoopingCall] = {}

    def unsubscribe(self, receiver: Any) -> None:
        """Deliver nothing more to C{receiver}."""
        if receiver in self.watchers:
            self.watchers.remove(receiver)
        self._stop_updates(receiver)

    def _every(
        self, receiver: Any, interval: float, clock: Any, update: Callable[[], None]
    ) -> None:
        """
        Call C{update} now and every C{interval} seconds (at least
        L{MIN_UPDATE_INTERVAL}) until finished or unsubscribed, as 0.8's
        C{sendETAUpdate} did; no interval (None, 0) means no updates.
        """
        checked_interval(interval)
        self._stop_updates(receiver)
        if self._finished or not interval or interval <= 0:
            return
        interval = max(interval, MIN_UPDATE_INTERVAL)
        loop = self._updates[id(receiver)] = task.LoopingCall(update)
        loop.clock = clock
        loop.start(interval, now=True)

    def _stop_updates(self, receiver: Any) -> None:
        loop = self._updates.pop(id(receiver), None)
        if loop is not None and loop.running:
            loop.stop()

    def stop_updates(self) -> None:
        """No more periodic updates to anyone (the service is stopping)."""
        for loop in self._updates.values():
            if loop.running:
                loop.stop()
        self._updates.clear()

    def mark_finished(self) -> None:
        """Finished from now on: no more periodic updates, and those waiting are told."""
        if not self._finished:
            self.stop_updates()
        super().mark_finished()
