"""
How the bridge hears that a live log has new lines.

A log of one of this master's own builds is heard from the master's own
C{appendLog} calls, with the lines in hand (L{LocalAppends}): the bridge
then neither reads back from the database what the master has just
written there, nor takes the C{append} message of every chunk off the
message queue.  Over a WAMP router each of those costs the build's master
about as much as the other (bench_cluster), and that master is the one the
build waits for.  Nor, for an append that did not wait behind another,
does it take the stream letters off a stream log's lines: it has them as
the log handed them to its subscribers, before it put the letters there
(L{_Follower}).  A log of another master's build is heard from the
message queue while it is quiet; while it is busy, its new lines are read
from the database as they come, each read also the look that finds them
(L{_RemoteLog}).  So is a log of this master's whose C{appendLog} does not
give back the numbers of the lines it stored: one that something wrapped
before the bridge started, and that drops them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from buildbot.process.log import Log, StreamLog
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.python import log

from buildbot_logfile._logdb import stored_as_appended, stored_unprefixed
from buildbot_logfile._retries import DatabaseRetries
from buildbot_logfile._running import running_log

if TYPE_CHECKING:
    from buildbot_logfile._mirror import LogMirror

# A stream letter and the lines a stream log handed its subscribers.
Unprefixed = tuple[str, str]
# Takes a log's first and last new line numbers, their text, and the
# same lines as the log handed them over before it prefixed them (None
# if it did not, or they are not known).
Appended = Callable[[int, int, str, "Unprefixed | None"], None]
# Told that an append of the log gave back no line numbers.
Unnumbered = Callable[[], None]

# The least time between two reads of one log's new lines (see
# EventFeed._read_soon), and between two looks at a busy log of another
# master.  Each read of another master's log is a query and the
# decompression of its chunks.  Every 20 ms, two masters on one 2-core
# machine slowed a 50 MB build by a fifth; every 50 ms by 1%, with logChunk
# still at p99 ~60 ms after appendLog.
APPEND_INTERVAL = 0.05
# After a look or subscription that failed (the database or the router
# away), the next look comes this much later.
RETRY_INTERVAL = 1.0


class LocalAppends:
    """
    This master's C{appendLog} data-API update, watched: the follower of a
    log is handed the lines of each append once the database has them,
    with the numbers they were stored under.  If an append gives back no
    numbers, the follower is told so, once, and followed no more.  A
    follower that raises is logged; the append itself never fails for it.
    """

    def __init__(self, master: Any) -> None:
        self.master = master
        self._followers: dict[int, _Follower] = {}
        self._updates: Any = None
        self._original: Any = None
        self._said_unnumbered = False

    def start(self) -> None:
        updates = self.master.data.updates
        self._updates, self._original = updates, updates.appendLog
        updates.appendLog = self._append_log

    def stop(self) -> None:
        """
        Hand nothing more to anyone.  The master's own method is put back
        unless something wrapped it since; then this one passes calls
        through.
        """
        for follower in self._followers.values():
            follower.close()
        self._followers.clear()
        if self._updates is not None and self._updates.appendLog == self._append_log:
            self._updates.appendLog = self._original
        self._updates = None

    def follow(
        self,
        logid: int,
        appended: Appended,
        unnumbered: Unnumbered,
        find_log: Callable[[], Any] | None = None,
    ) -> None:
        """
        Hand C{appended} the lines of each append of log C{logid}.
        C{find_log}, for a stream log, finds Buildbot's C{Log} object of
        it, whose lines are then also handed over as they were before
        their stream letters were put before them.
        """
        self._followers[logid] = _Follower(appended, unnumbered, find_log)

    def unfollow(self, logid: int) -> None:
        follower = self._followers.pop(logid, None)
        if follower is not None:
            follower.close()

    def _append_log(self, logid: int, content: str) -> defer.Deferred[Any]:
        follower = self._followers.get(logid)
        unprefixed = follower.take_unprefixed() if follower is not None else None
        if unprefixed is not None and self._updates.appendLog != self._append_log:
            # What wrapped this method since may have changed the lines
            # between the log and here.
            unprefixed = None
        d = defer.maybeDeferred(self._original, logid, content)
        d.addCallback(self._appended, logid, content, unprefixed)
        return d

    def _appended(self, lines: Any, logid: int, content: str, unprefixed: Unprefixed | None) -> Any:
        # Buildbot's appendLog gives the numbers of the first and last
        # line it stored, or None for a log that is not in the database.
        follower = self._followers.get(logid)
        if follower is None:
            return lines
        try:
            if _is_line_range(lines):
                follower.appended(lines[0], lines[1], content, unprefixed)
            else:
                self.unfollow(logid)
                if not self._said_unnumbered:
                    self._said_unnumbered = True
                    log.msg(
                        f"LegacyStatus: appendLog gave back {lines!r}, not the numbers of the"
                        " lines it stored (did something wrap it before LegacyStatus started?);"
                        " this master's logs are read from the database, as another master's"
                    )
                follower.unnumbered()
        except Exception:
            log.err(None, f"LegacyStatus: while taking the lines appended to log {logid}")
        return lines


def _is_line_range(lines: Any) -> bool:
    return (
        isinstance(lines, (tuple, list))
        and len(lines) == 2
        and isinstance(lines[0], int)
        and isinstance(lines[1], int)
    )


# Buildbot's own, as imported, to notice a patch made since.
_ON_WHOLE_LINES = StreamLog._on_whole_lines
_ADD_RAW_LINES = Log.addRawLines


def _hands_over_as_appended(log_object: Any) -> bool:
    """
    Whether C{log_object} is Buildbot's own C{StreamLog}, unchanged: what
    it hands its subscribers it passes to C{appendLog} with nothing but a
    stream letter put before each line.  A subclass or a patched method
    might change the lines in between (hide a secret, say).
    """
    return (
        type(log_object) is StreamLog
        and not {"_on_whole_lines", "addRawLines", "pat"} & vars(log_object).keys()
        and StreamLog._on_whole_lines is _ON_WHOLE_LINES
        and Log.addRawLines is _ADD_RAW_LINES
        and StreamLog.pat.pattern == "^"
        and isinstance(log_object.lock, defer.DeferredLock)
    )


class _Follower:
    """
    One followed log of this master's.  A stream log (Buildbot's
    C{StreamLog}) hands each stream's new lines to its subscribers, then
    puts the stream's letter before every line and passes them to
    C{appendLog}: at once, unless an earlier append of the log still
    holds the log's lock.  Subscribed to it, the follower keeps the lines
    of an append that comes at once, so that the bridge takes them as
    they were, where taking the letters off again would cost it a pass
    over every byte of the log: its largest cost on the build's master.
    """

    def __init__(
        self, appended: Appended, unnumbered: Unnumbered, find_log: Callable[[], Any] | None
    ) -> None:
        self.appended = appended
        self.unnumbered = unnumbered
        # Subscribes at the log's first append, by when Buildbot's step
        # holds its Log object; tried once.
        self._find_log = find_log
        self._subscription: Any = None
        # What the log handed over for the appendLog call that comes next.
        self._next: Unprefixed | None = None

    def take_unprefixed(self) -> Unprefixed | None:
        """What the log handed over for the appendLog call under way, if anything."""
        if self._find_log is not None:
            self._subscribe()
        found, self._next = self._next, None
        return found

    def _subscribe(self) -> None:
        find, self._find_log = self._find_log, None
        assert find is not None
        try:
            log_object = find()
            if _hands_over_as_appended(log_object):
                self._subscription = log_object.subscribe(partial(self._handed, log_object.lock))
        except Exception:
            log.err(None, "LegacyStatus: subscribing to a log of this master's")

    def _handed(self, lock: defer.DeferredLock, stream: Any, lines: Any) -> None:
        # It must not raise: Buildbot counts a subscriber's error against
        # the step.  The log hands over (None, None) once it finishes.
        if isinstance(stream, str) and isinstance(lines, str) and not lock.locked:
            self._next = (stream, lines)
        else:
            self._next = None

    def close(self) -> None:
        subscription, self._subscription = self._subscription, None
        self._find_log = None
        self._next = None
        if subscription is not None:
            subscription.unsubscribe()


class LogAppends:
    """
    Watches each live log that the bridge mirrors and tells C{on_append}
    (given to L{start}) of the lines it has: C{on_append(mirror,
    num_lines)}, in order, for every append from the time the watch
    begins, and once more as it begins, from the database, for the
    appends that came before.  For this master's own logs it is called
    inside Buildbot's C{appendLog}, whose next append waits for it: it
    notes the lines and reads them later.
    """

    def __init__(self, master: Any) -> None:
        self.master = master
        self._local = LocalAppends(master)
        self._on_append: Callable[[LogMirror, int], None] | None = None
        self._watched: set[int] = set()
        self._remote: dict[int, _RemoteLog] = {}
        # Subscriptions, unsubscriptions and looks under way.
        self._pending: set[defer.Deferred[Any]] = set()
        # A look as a watch begins, tried again while the database is out
        # of reach: the appends from before the watch are heard by it alone.
        self._retries = DatabaseRetries(master.reactor)

    def start(self, on_append: Callable[[LogMirror, int], None]) -> None:
        self._on_append = on_append
        self._local.start()

    async def stop(self) -> None:
        """Stop every watch; nothing is told from here on."""
        self._on_append = None
        self._retries.stop()
        self._local.stop()
        for logid in list(self._watched):
            self.unwatch(logid)
        while self._pending:
            await defer.DeferredList(list(self._pending))

    def watch(self, mirror: LogMirror, local: bool) -> None:
        """
        Follow a live log: one of this master's builds (C{local}) through
        its appends, another master's through the message queue.
        """
        if self._on_append is None or mirror.logid in self._watched:
            return
        self._watched.add(mirror.logid)
        if local:
            self._local.follow(
                mirror.logid,
                partial(self._appended_here, mirror),
                partial(self._listen_to, mirror),
                partial(self._find_log, mirror) if mirror.type == "s" else None,
            )
            self.track(self.look(mirror))  # for appends from before the watch
        else:
            self._listen_to(mirror)

    def _listen_to(self, mirror: LogMirror) -> None:
        remote = self._remote[mirror.logid] = _RemoteLog(self, mirror)
        self.track(remote.listen())

    def unwatch(self, logid: int) -> None:
        if logid not in self._watched:
            return
        self._watched.discard(logid)
        self._local.unfollow(logid)
        remote = self._remote.pop(logid, None)
        if remote is not None:
            remote.stop()

    def _find_log(self, mirror: LogMirror) -> Any:
        step = mirror.step
        build = step.build
        return running_log(
            self.master, build.builder.name, build.buildid, step.stepid, mirror.name, mirror.logid
        )

    def _appended_here(
        self, mirror: LogMirror, first: int, last: int, text: str, unprefixed: Unprefixed | None
    ) -> None:
        if unprefixed is not None and stored_unprefixed(
            self.master, first, last, text, *unprefixed
        ):
            mirror.hold(first, last, unprefixed[1], stream=unprefixed[0])
        elif stored_as_appended(self.master, first, last, text):
            mirror.hold(first, last, text)
        self.heard(mirror, last + 1)

    async def look(self, mirror: LogMirror) -> int | None:
        """
        The log's line count as the database has it now (None if it is
        gone); its lines heard.
        """
        found = await self._retries.run(
            lambda: mirror.reader.num_lines(mirror.logid), f"log {mirror.logid}'s line count"
        )
        if found is not None and mirror.logid in self._watched:
            self.heard(mirror, found)
        return found

    async def look_ahead(self, mirror: LogMirror, first: int) -> tuple[int, bool]:
        """
        Read the log's lines from line C{first} on, as far as one batch
        goes, for the mirror to hold, and tell of them: the look at a busy
        log, which then costs one statement, not a look and a read.  The
        number of lines found, and whether more may follow at once.
        """
        text, more = await mirror.reader.read_ahead(mirror.logid, first)
        count = text.count("\n")
        if count and mirror.logid in self._watched:
            mirror.hold(first, first + count - 1, text)
            self.heard(mirror, first + count)
        return count, more

    def heard(self, mirror: LogMirror, num_lines: int) -> None:
        if self._on_append is not None:
            self._on_append(mirror, num_lines)

    def track(self, work: Any) -> None:
        """Log C{work}'s failure; L{stop} waits for it."""
        d = defer.ensureDeferred(work).addErrback(
            lambda f: log.err(f, "LegacyStatus: while watching a log's appends")
        )
        if not d.called:
            self._pending.add(d)
            d.addBoth(lambda result: self._pending.discard(d))


class _RemoteLog:
    """
    One live log of another master's build (or of this master's, if its
    appends give back no line numbers).  While it is quiet, its
    C{append} messages say when it has new lines; once one came, its new
    lines are read from the database every L{APPEND_INTERVAL} instead, for
    as long as each look finds some, and its messages are not taken: a
    busy log sends several in that time, and each costs its receiver
    (autobahn decoding it, Buildbot dispatching it) about as much as one
    look.
    """

    def __init__(self, appends: LogAppends, mirror: LogMirror) -> None:
        self.appends = appends
        self.mirror = mirror
        self.lines = 0  # the most lines heard of
        # Ends the subscription to the log's messages, while there is one.
        self._unsubscribe: Callable[[], Any] | None = None
        self._next_look: IDelayedCall | None = None
        self._busy = False
        self._stopped = False

    async def listen(self) -> None:
        """
        Take the log's messages, then look once: appends from before the
        router had the subscription are heard too.  Buildbot's
        C{startConsuming} on a WAMP router returns before the router has
        it, so there the subscription is made with the master's WAMP
        connection itself, which returns once it has.
        """
        self._busy = False
        try:
            unsubscribe = await self._subscribe(("logs", str(self.mirror.logid), "append"))
        except Exception:
            log.err(None, f"LegacyStatus: subscribing to log {self.mirror.logid}'s appends")
            if not self._stopped:
                self._busy = True  # looks, until one finds the log quiet
                self._look_soon(RETRY_INTERVAL)
            return
        if self._stopped or self._busy:
            await defer.maybeDeferred(unsubscribe)
            return
        self._unsubscribe = unsubscribe
        await self._look()

    async def _subscribe(self, key: tuple[str, ...]) -> Callable[[], Any]:
        """Subscribe to the log's messages; what ends the subscription."""
        master = self.appends.master
        if master.config.mq.get("type") == "wamp":
            from autobahn.wamp.exception import TransportLost
            from buildbot.mq.wamp import WampMQ

            subscription = await master.wamp.subscribe(self._message, WampMQ.messageTopic(key))

            async def unsubscribe() -> None:
                try:
                    await subscription.unsubscribe()
                except TransportLost:
                    pass  # the router is gone, and the subscription with it

            return unsubscribe
        consumer = await master.mq.startConsuming(lambda _, msg: self._message(msg), key)
        return consumer.stopConsuming

    def stop(self) -> None:
        self._stopped = True
        if self._next_look is not None and self._next_look.active():
            self._next_look.cancel()
        self._stop_consuming()

    def _message(self, msg: Any) -> None:
        self._heard(msg["num_lines"])
        if not self._busy and not self._stopped:
            self._busy = True
            self._stop_consuming()
            self._look_soon()

    def _stop_consuming(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            self.appends.track(defer.maybeDeferred(unsubscribe))

    def _look_soon(self, delay: float = APPEND_INTERVAL) -> None:
        reactor = self.appends.master.reactor
        self._next_look = reactor.callLater(delay, lambda: self.appends.track(self._busy_look()))

    async def _busy_look(self) -> None:
        first = max(self.lines, self.mirror.lines)
        try:
            found, more = await self.appends.look_ahead(self.mirror, first)
        except Exception:
            log.err(None, f"LegacyStatus: looking at log {self.mirror.logid}")
            if not self._stopped:
                self._look_soon(RETRY_INTERVAL)
            return
        if self._stopped:
            return
        self.lines = max(self.lines, first + found)
        if found:
            self._look_soon(0 if more else APPEND_INTERVAL)
        else:
            await self.listen()  # quiet again, or complete

    async def _look(self) -> None:
        found = await self.appends.look(self.mirror)
        if found is not None:
            self.lines = max(self.lines, found)

    def _heard(self, num_lines: int) -> None:
        self.lines = max(self.lines, num_lines)
        self.appends.heard(self.mirror, num_lines)
