"""
Delivering one 0.8 status event to one receiver, and 0.8's way of
subscribing by returning a receiver from a callback.

A receiver runs in the master's reactor: one that raises must not stop the
build or the others, and one that is slow holds up the whole master, so
both are reported, by name, without flooding the log.
"""

from __future__ import annotations

import inspect
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from twisted.python import log

# A callback that holds the reactor longer than this is reported.
SLOW_CALLBACK = 0.1
# Slow calls of one receiver are reported at most this often (seconds).
SLOW_REPORT_INTERVAL = 60.0
# A receiver that keeps raising is reported at its first failure, then at
# every this many.
FAILURE_REPORT_EVERY = 100

_now = time.monotonic


@dataclass
class _Record:
    receiver: Callable[[], Any]  # a weak reference, where the receiver takes one
    failures: int = 0
    slow_calls: int = 0
    slowest: float = 0.0
    last_report: float = field(default=float("-inf"))


# Per receiver (by identity: receivers need not be hashable) and method.
_records: dict[tuple[int, str], _Record] = {}


def _record(receiver: Any, method: str) -> _Record:
    key = (id(receiver), method)
    record = _records.get(key)
    if record is None or record.receiver() is not receiver:  # a new object, same id
        try:
            ref: Callable[[], Any] = weakref.ref(receiver)
        except TypeError:
            ref = lambda: receiver  # noqa: E731
        record = _records[key] = _Record(ref)
    return record


def deliver(receiver: Any, method: str, *args: Any) -> Any:
    """
    Call one status receiver method, if it has it.  A receiver that raises
    is logged with its name and skipped, so it never stops the build or the
    other receivers.
    """
    callback: Callable[..., Any] | None = getattr(receiver, method, None)
    if callback is None:
        return None
    started = _now()
    try:
        returned = callback(*args)
        if inspect.iscoroutine(returned):
            # An async method (no 0.8 receiver had one): run, its failure
            # logged; it subscribes nothing, being no receiver.
            why = f"status receiver {receiver!r} failed in {method}"
            defer.ensureDeferred(returned).addErrback(lambda f: log.err(f, why))
            return None
        return returned
    except Exception:
        record = _record(receiver, method)
        record.failures += 1
        if record.failures % FAILURE_REPORT_EVERY == 1 or FAILURE_REPORT_EVERY == 1:
            times = "" if record.failures == 1 else f" (failure {record.failures} in it)"
            log.err(None, f"status receiver {receiver!r} failed in {method}{times}; skipped")
        return None
    finally:
        elapsed = _now() - started
        if elapsed > SLOW_CALLBACK:
            _note_slow(receiver, method, elapsed)


def _note_slow(receiver: Any, method: str, elapsed: float) -> None:
    record = _record(receiver, method)
    record.slow_calls += 1
    record.slowest = max(record.slowest, elapsed)
    now = _now()
    if now - record.last_report < SLOW_REPORT_INTERVAL:
        return
    log.msg(
        f"status receiver {receiver!r} took {elapsed:.2f} s in {method}, holding up the"
        f" whole master; {record.slow_calls} call(s) over {SLOW_CALLBACK:.1f} s since the"
        f" last report, the slowest {record.slowest:.2f} s"
    )
    record.slow_calls = 0
    record.slowest = 0.0
    record.last_report = now


def each_watcher(watchers: list[Any]) -> Iterator[Any]:
    """
    Each of C{watchers} once, as 0.8 looped over the live list: one
    subscribed meanwhile (a receiver subscribing another in
    C{buildStarted}) is told too, and one unsubscribed before its turn is
    not; none is passed over when another leaves (0.8 skipped the next).
    """
    told: set[int] = set()
    while True:
        for w in watchers:
            if id(w) not in told:
                break
        else:
            return
        told.add(id(w))
        yield w


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
    try:
        if isinstance(returned, tuple):
            receiver, interval = returned
            subscribe(receiver, interval)
        else:
            receiver = returned
            subscribe(receiver)
    except Exception:
        # Whatever one receiver returned, the others still hear the event.
        log.err(None, f"a status receiver returned {returned!r}, which cannot subscribe; ignored")
        return
    finished.addCallback(lambda _: unsubscribe(receiver))
