"""
Logs of the database mirrored into L{LogFile}s.

One path brings a LogFile up to date, L{LogMirror.catch_up}: read the lines
after the last one seen, group them into chunks, add them.  A live append,
a rebuilt spool and a late start all use it, under the mirror's lock, so
lines are never lost, repeated or reordered.  L{MirrorRegistry} holds every
mirror, live or recently finished.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, threads
from twisted.python import log

from buildbot_logfile import _spool
from buildbot_logfile._appends import LogAppends
from buildbot_logfile._from_db import DatabaseLogProducer, DatabaseText
from buildbot_logfile._logdb import LogReader
from buildbot_logfile._lru import LRU
from buildbot_logfile.logfile import HEADER, STDERR, STDOUT, HTMLLogFile, LogFile

if TYPE_CHECKING:
    from buildbot_logfile._producer import ChunkConsumer
    from buildbot_logfile.status import BuildStepStatus

STREAM_CHANNELS = {"o": STDOUT, "e": STDERR, "h": HEADER}

# A line of a stream log is its stream letter, its text and a newline; a
# run of lines of one stream becomes one chunk, and ends where a line of
# another letter starts.  (re finds the newline of that search quickly,
# where matching each line's text would walk it character by character.)
_RUN_END = {prefix: re.compile("\n[^%s]" % prefix) for prefix in STREAM_CHANNELS}
# The letters of a run's lines after its first, taken off with their
# newline put back.  (re's sub takes two thirds of the time of split and
# join here, and under half of str.replace's.)
_NEXT_LETTERS = {prefix: re.compile("\n" + prefix) for prefix in STREAM_CHANNELS}

# Finished logs kept in memory for lookups.
FINISHED_CACHE_SIZE = 64
# Characters of appended lines a mirror holds until it reads them (see
# LogMirror.hold); past that, it reads them from the database.
HELD_LIMIT = 16 * 1024 * 1024


def chunks_of(logtype: str, text: str, lines: int | None = None) -> list[tuple[int, str]]:
    """
    The C{(channel, text)} chunks of lines of a log of this type read from
    the database (C{lines}: see L{stream_chunks}).
    """
    if logtype == "s":
        return list(stream_chunks(text, lines))
    return [(STDERR if logtype == "h" else STDOUT, text)]


def stream_chunks(text: str, lines: int | None = None) -> Iterator[tuple[int, str]]:
    """
    C{(channel, text)} chunks of a stream log's raw lines.  A line with no
    stream letter is taken whole as stdout, so no byte from the database
    is dropped.

    C{lines}, when the caller knows it, is how many lines C{text} holds,
    each ending in a newline.  Then a text whose lines all have one stream
    letter, as each of Buildbot's appends has, is taken in one pass: it
    takes as many letters as there are lines after the first only if
    every one of them starts with the first one's letter.
    """
    if lines and text.endswith("\n"):
        prefix = text[0]
        channel = STREAM_CHANNELS.get(prefix)
        if channel is not None:
            body, taken = _NEXT_LETTERS[prefix].subn("\n", text[1:])
            if taken == lines - 1:
                yield channel, body
                return
    pos, size = 0, len(text)
    while pos < size:
        prefix = text[pos]
        channel = STREAM_CHANNELS.get(prefix)
        if channel is None:
            end = text.find("\n", pos) + 1 or size
            yield STDOUT, text[pos:end]
        else:
            found = _RUN_END[prefix].search(text, pos)
            end = found.start() + 1 if found else size
            if end > pos + 1:  # not a last line cut short to its letter
                yield channel, _NEXT_LETTERS[prefix].sub("\n", text[pos + 1 : end])
        pos = end


def database_entries(
    reader: LogReader, logid: int, logtype: str, num_lines: int
) -> Iterator[tuple[int, str]]:
    """
    The C{(channel, text)} chunks of a log's first C{num_lines} lines,
    read from the database as they are taken, a batch at a time, each read
    waited for (see L{LogReader.blocking}): for 0.8's synchronous reads.
    """
    line = 0
    while line < num_lines:
        text = reader.read_lines_now(logid, line, num_lines - 1)
        count = text.count("\n")
        if not count:
            log.msg(f"log {logid}: lines {line}.. missing from the database")
            return
        yield from chunks_of(logtype, text, count)
        line += count


class ServiceStopped(Exception):
    """Why a live log's LogFile was cut off: the service that fed it stopped."""


class LogMirror:
    """
    One log of the database mirrored into a L{LogFile}.  Call the methods
    that change it with L{lock} held.

    It is also what the pages open (a C{_lookup.OpenLog}): it streams the
    log and pages through its text from the spool file, or, when the
    spool has failed, from the database.
    """

    def __init__(
        self,
        reader: LogReader,
        step: BuildStepStatus,
        logid: int,
        name: str,
        logtype: str,
        slug: str | None = None,
    ) -> None:
        self.reader = reader
        self.step = step
        self.logid = logid
        self.name = name
        self.type = logtype
        self.slug = slug
        self.filename = step.build.logfile_name_for(logid, step.name, name)
        self.lock = defer.DeferredLock()
        # While MirrorRegistry.open loads it (its LogFile may be a rebuild
        # under way, not a live log).
        self.loading = False
        self.logfile: LogFile | None = None
        self.lines = 0
        # The most lines any event has announced: one read covers every
        # append that queued up meanwhile (SQLite serves one query at a
        # time, and each read delays the master's own writes).
        self.announced = 0
        self.last_read = float("-inf")
        # Lines in hand: (first line, last line, text, its stream letter if
        # the text has none before each line, as the log handed it over).
        self._held: deque[tuple[int, int, str, str | None]] = deque()
        self._held_size = 0
        self._progress: list[defer.Deferred[None]] = []
        self._db_text = DatabaseText()
        # The spool file of the finished log as this mirror left it, to
        # notice one that was changed or removed since.
        self._spool_stat: os.stat_result | None = None
        # The compression of the finished spool, while it runs, and loads
        # waiting for it.
        self._compressing: defer.Deferred[Any] | None = None
        self._compression_waiters: list[defer.Deferred[None]] = []

    @property
    def path(self) -> str:
        return os.path.join(self.step.build.builder.basedir, self.filename)

    def adopt(self, step: BuildStepStatus) -> None:
        """
        Belong to C{step} from here on: the event feed's step of the log,
        where a lookup opened the log before the feed announced its build
        (a reconfig holding the events, say), on a copy of the build it
        read for itself.  Receivers then get the same objects in every
        event.  The spool keeps its name, reserved in C{step}'s build.
        """
        if step is self.step:
            return
        self.step = step
        step.build.reserve_logfile_name(self.logid, self.filename)
        if self.logfile is not None:
            self.logfile.step = step

    @property
    def complete(self) -> bool:
        """Whether the mirror holds the whole log, complete in the database."""
        return self.logfile is not None and self.logfile.isFinished()

    def chunks_of(self, text: str, lines: int | None = None) -> list[tuple[int, str]]:
        """The C{(channel, text)} chunks of lines read from the database."""
        return chunks_of(self.type, text, lines)

    def hold(self, first: int, last: int, text: str, stream: str | None = None) -> None:
        """
        Keep lines C{first..last} as the database holds them, for
        L{catch_up} to take instead of reading them: lines this master has
        just stored there, or lines read ahead.  C{text} is exactly those
        lines, each ending in a newline (the caller made sure); with
        C{stream}, a stream log's lines of that stream without the letter
        before each.  HTML logs are read whole once complete.
        """
        if self.type == "h" or last < self.lines or (stream and stream not in STREAM_CHANNELS):
            return
        if self._held_size + len(text) > HELD_LIMIT:
            return  # a mirror that has fallen behind reads them
        self._held.append((first, last, text, stream))
        self._held_size += len(text)

    def _take_held(self, first: int, last: int) -> tuple[list[tuple[int, str]], int]:
        """
        The held appends that make up lines C{first..last}, or the first
        of them, without a gap, given up as C{(channel, text)} chunks, one
        for each run of lines of one channel (none if none), and how many
        lines they hold.  Those of lines read from the database meanwhile
        are dropped.
        """
        runs: list[tuple[int, list[str]]] = []
        following = first
        while self._held:
            start, end, text, stream = self._held[0]
            if start > following or end > last:
                break
            self._held.popleft()
            self._held_size -= len(text)
            if start == following:
                if stream is None:
                    chunks = self.chunks_of(text, end - start + 1)
                else:
                    chunks = [(STREAM_CHANNELS[stream], text)]
                for channel, chunk in chunks:
                    if runs and runs[-1][0] == channel:
                        runs[-1][1].append(chunk)
                    else:
                        runs.append((channel, [chunk]))
                following = end + 1
        return [(channel, "".join(run)) for channel, run in runs], following - first

    def drop_held(self) -> None:
        self._held.clear()
        self._held_size = 0

    def wait_for_progress(self) -> defer.Deferred[None]:
        """Fires when the mirror has read more lines, or the log completed."""
        d: defer.Deferred[None] = defer.Deferred()
        self._progress.append(d)
        return d

    async def holding(self, num_lines: int) -> None:
        """
        Returns once the LogFile holds C{num_lines} lines or the log is
        complete.  A live mirror gets there: it hears every append from
        the time it was made, and reads what came before.
        """
        while self.lines < num_lines and not self.complete:
            await self.wait_for_progress()

    def _progressed(self) -> None:
        waiting, self._progress = self._progress, []
        for d in waiting:
            d.callback(None)

    def stream(self, consumer: ChunkConsumer) -> None:
        """Stream the log to a 0.8 consumer: from the spool, or from the database."""
        lf = self.logfile
        assert lf is not None
        if lf.spooled:
            lf.subscribeConsumer(consumer)
        else:
            DatabaseLogProducer(self, consumer).resumeProducing()

    async def text_bytes(self, start: int, limit: int) -> tuple[bytes, int, bool]:
        """C{LogFile.text_bytes}, from the database when the spool fails."""
        lf = self.logfile
        assert lf is not None
        if lf.spooled:
            try:
                return lf.text_bytes(start, limit)
            except _spool.READ_ERRORS as e:
                log.msg(f"log {self.logid}: reading its text from the database: {e}")
        return await self._db_text.text_bytes(self, start, limit)

    def start(self) -> None:
        """Open a fresh spool file (HTML logs wait until they are complete)."""
        self.lines = 0
        self.logfile = None
        if self.type != "h":
            lf = LogFile(self.step, self.name, self.filename)
            # The worker already applied the master's logMaxSize: the spool
            # holds exactly what the database holds.
            lf.logMaxSize = lf.logMaxTailSize = None
            self._take(lf)

    def _take(self, lf: LogFile) -> None:
        """Mirror into C{lf} from here on."""
        lf.slug = self.slug
        # The lines it holds when read, should its spool fail.
        lf.entries_elsewhere = lambda: database_entries(
            self.reader, self.logid, self.type, self.lines
        )
        self.logfile = lf

    def ensure_started(self) -> None:
        """Open the spool file unless it is open (or the log is HTML)."""
        if self.logfile is None and self.type != "h":
            self.start()

    async def load(self, num_lines: int, complete: bool) -> None:
        """
        Make the LogFile whole as of C{num_lines}: keep the one in hand if
        its spool is as this mirror left it (a live log whose spool failed
        goes on from the database), reuse a whole spool an earlier run
        left, or else rebuild the spool from the database.
        """
        lf = self.logfile
        if lf is not None and not lf.isFinished():
            lf.check_spool()  # if it fails, the log goes on from the database
            return
        if self._compressing is not None:
            waiter: defer.Deferred[None] = defer.Deferred()
            self._compression_waiters.append(waiter)
            await waiter
        if lf is not None and self._spool_stat is not None:
            if self._spool_unchanged():
                return
            # Changed since this mirror left it (replaced by hand, say, by
            # a whole log of as many lines): rebuilt, not trusted again.
        elif (
            complete
            and self.type != "h"
            and await threads.deferToThread(_spool.spool_holds, self.path, num_lines)
        ):
            self._take(LogFile.open_finished(self.step, self.name, self.filename))
            self.lines = num_lines
            self._note_spool()
            return
        self.start()
        await self.settle(num_lines, complete)

    async def settle(self, num_lines: int, complete: bool) -> None:
        """
        L{catch_up}; if it fails to finish a complete log (the database
        away, say), the LogFile is let go: unfinished, it would pass for a
        live log that never ends, and the next open loads the log again.
        A live log reads on at its next append.
        """
        try:
            await self.catch_up(num_lines, complete)
        except Exception as e:
            if complete:
                self._give_up(e)
            raise

    def _give_up(self, reason: Exception) -> None:
        lf, self.logfile = self.logfile, None
        self.lines = 0
        self._spool_stat = None
        if lf is not None:
            lf.cut_off(reason)

    def _spool_unchanged(self) -> bool:
        if self.logfile is None or not self.logfile.spooled or self._spool_stat is None:
            return False
        found = _spool.existing_spool(self.path)
        try:
            now = os.lstat(found) if found is not None else None
        except OSError:
            return False
        then = self._spool_stat
        return now is not None and (now.st_ino, now.st_size, now.st_mtime_ns) == (
            then.st_ino,
            then.st_size,
            then.st_mtime_ns,
        )

    def _note_spool(self, _: object = None) -> None:
        found = _spool.existing_spool(self.path)
        try:
            self._spool_stat = os.lstat(found) if found is not None else None
        except OSError:
            self._spool_stat = None

    async def catch_up(self, num_lines: int, complete: bool) -> bool:
        """
        Add lines C{[self.lines, num_lines)} from the database; finish the
        LogFile once C{complete}.  Returns whether this call finished it.
        """
        if self.type == "h":
            return await self._catch_up_html(num_lines, complete)
        self.ensure_started()
        lf = self.logfile
        assert lf is not None
        if lf.isFinished():
            return False
        num_lines = max(num_lines, self.announced)
        while self.lines < num_lines:
            # Held lines are counted already (see hold).
            chunks, count = self._take_held(self.lines, num_lines - 1)
            if not count:
                text = await self.reader.read_lines(self.logid, self.lines, num_lines - 1)
                count = text.count("\n")
                chunks = self.chunks_of(text, count)
            if not count:
                log.msg(f"log {self.logid}: lines {self.lines}.. missing from the database")
                break
            for channel, chunk in chunks:
                lf.addEntry(channel, chunk)
            self.lines += count
            self._progressed()
        if complete:
            self._finish(lf)
            return True
        return False

    def _finish(self, lf: LogFile) -> None:
        lf.finish()
        self._note_spool()
        if not _worth_compressing(lf):
            self._progressed()
            return
        compressing = lf.compressLog().addCallback(self._note_spool)
        compressing.addErrback(lambda f: log.err(f, f"while compressing {lf.getFilename()}"))
        if not compressing.called:
            # Until the compressed file is noted, a load would take the
            # swap for a change and open the log a second time.
            self._compressing = compressing
            compressing.addBoth(self._compressed)
        self._progressed()

    def _compressed(self, result: object) -> object:
        self._compressing = None
        waiters, self._compression_waiters = self._compression_waiters, []
        for d in waiters:
            d.callback(None)
        return result

    async def _catch_up_html(self, num_lines: int, complete: bool) -> bool:
        if not complete or self.logfile is not None:
            return False
        html = ""
        while html.count("\n") < num_lines:
            more = await self.reader.read_lines(self.logid, html.count("\n"), num_lines - 1)
            if not more:
                break
            html += more
        self.lines = num_lines
        self._take(HTMLLogFile(self.step, self.name, self.filename, html))
        self._note_spool()
        self._progressed()
        return True


def _worth_compressing(lf: LogFile) -> bool:
    """
    Whether a finished log's spool is compressed: as 0.8's step did, when
    it is larger than the master's C{logCompressionLimit} (False: never).
    """
    limit = lf.master.config.logCompressionLimit
    if limit is False:
        return False
    try:
        return os.path.getsize(lf.getFilename()) > limit
    except OSError:
        return False  # the spool failed: nothing to compress


class MirrorRegistry:
    """
    Every mirror this service keeps: live ones, each watched for appends
    (L{LogAppends}), and recently finished ones.
    """

    def __init__(self, master: Any, reader: LogReader, appends: LogAppends) -> None:
        self.master = master
        self.reader = reader
        self.appends = appends
        self._live: dict[int, LogMirror] = {}
        self._finished: LRU[int, LogMirror] = LRU(FINISHED_CACHE_SIZE)
        self._closed = False

    def find(self, logid: int) -> LogMirror | None:
        return self._live.get(logid) or self._finished.get(logid)

    def find_or_create(self, step: BuildStepStatus, log_data: Mapping[str, Any]) -> LogMirror:
        """
        The mirror of a log, registered before anything loads it, so that
        appends from here on reach it as events.
        """
        mirror = self.find(log_data["logid"])
        if mirror is None:
            mirror = LogMirror(
                self.reader,
                step,
                log_data["logid"],
                log_data["name"],
                log_data["type"],
                log_data.get("slug"),
            )
            self._live[mirror.logid] = mirror
            if not log_data["complete"]:
                local = step.build.masterid == self.master.masterid
                self.appends.watch(mirror, local=local)
        return mirror

    def announce(self, logid: int, num_lines: int) -> LogMirror | None:
        """Note the lines an event says a log has; its mirror, if any."""
        mirror = self._live.get(logid)
        if mirror is not None:
            mirror.announced = max(mirror.announced, num_lines)
        return mirror

    async def sync(self, mirror: LogMirror, num_lines: int, complete: bool) -> None:
        """Bring a mirror up to C{num_lines}; finish it once C{complete}."""
        await mirror.lock.run(lambda: defer.ensureDeferred(mirror.settle(num_lines, complete)))
        self._retire_if_finished(mirror)

    async def open(self, step: BuildStepStatus, log_data: Mapping[str, Any]) -> LogMirror | None:
        """
        The mirror of any log, live or finished, its LogFile loaded: the
        spool rebuilt from the database if it is gone, partial or changed
        (None: an HTML log not yet complete).  Concurrent calls share one
        load.
        """
        if self._closed:
            raise RuntimeError("the log mirrors are closed")
        mirror = self.find_or_create(step, log_data)
        live = mirror.logfile
        if live is not None and not live.isFinished() and not mirror.loading:
            # A live log needs no database read and no turn on the lock
            # (which it would hold up for the appends queued behind it, a
            # page at a time): what load would do, it does now.  Entries
            # added later reach the page's producer as it follows the log.
            # Not a log that a load is rebuilding: that one is not whole.
            live.check_spool()
            return mirror

        async def load() -> None:
            mirror.loading = True
            try:
                progress = await self.master.data.get(("logs", mirror.logid))
                await mirror.load(progress["num_lines"], progress["complete"])
            finally:
                mirror.loading = False

        await mirror.lock.run(lambda: defer.ensureDeferred(load()))
        self._retire_if_finished(mirror)
        return mirror if mirror.logfile is not None else None

    def _retire_if_finished(self, mirror: LogMirror) -> None:
        """The one place a mirror moves from live to finished."""
        finished = mirror.logfile is not None and mirror.logfile.isFinished()
        if finished and self._live.pop(mirror.logid, None) is not None:
            self._unwatch(mirror)
            self._finished.put(mirror.logid, mirror)

    def _unwatch(self, mirror: LogMirror) -> None:
        """A mirror that is no longer live hears no appends and holds no lines."""
        self.appends.unwatch(mirror.logid)
        mirror.drop_held()

    async def close(self) -> None:
        """
        Cut off the LogFiles of logs still live, each once its mirror's work
        in hand is done: their spool files are written out and closed, and
        pages that stream them end as cut short (a client must not take
        what it got for the whole log).  A spool that is not whole is
        rebuilt from the database when next needed.
        """
        self._closed = True
        for mirror in list(self._live.values()):
            self._unwatch(mirror)

            def finish(mirror: LogMirror = mirror) -> None:
                if mirror.logfile is not None and not mirror.logfile.isFinished():
                    mirror.logfile.cut_off(ServiceStopped("LegacyStatus stopped"))
                    mirror._progressed()

            await mirror.lock.run(finish)
        self._live.clear()
        self._finished.clear()
