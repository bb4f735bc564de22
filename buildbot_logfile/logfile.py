"""
Buildbot 0.8's step logs (0.8's C{buildbot.status.logfile}), on Python 3.

A L{LogFile} appends entries to a spool file in the 0.8 netstring format
(C{<len>:<channel><text>,}), merging runs of one channel into records of at
most L{LogFile.chunkSize} bytes.  L{LogFileProducer} streams a log to a
consumer: it reads what is on disk, then follows the log live.

Two things differ from 0.8, both invisible to 0.8 callers:

  - text is C{str} at every public boundary; the file holds UTF-8 and a
    record never splits a character;
  - a producer honours pause in the live phase too (see
    L{buildbot_logfile._producer}).

How records reach the disk is L{buildbot_logfile._spool}'s business; how
they are parsed back is L{buildbot_logfile._records}'.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer
from twisted.python import log
from zope.interface import implementer

from buildbot_logfile import _spool
from buildbot_logfile._delivery import deliver
from buildbot_logfile._producer import ChunkConsumer, LogFileProducer
from buildbot_logfile._records import ChunkDecoder, LogFileFormatError, char_boundary, iter_records
from buildbot_logfile._run import CHANNELS, RecordRun, as_text
from buildbot_logfile._spool import SpoolUnavailable
from buildbot_logfile._text_index import TextIndex
from buildbot_logfile.interfaces import ILogFile, IStatusLog

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = [
    "HEADER",
    "STDERR",
    "STDOUT",
    "ChunkTypes",
    "HTMLLogFile",
    "LogFile",
    "LogFileFormatError",
    "LogFileProducer",
    "SpoolUnavailable",
]

_L = TypeVar("_L", bound="LogFile")

STDOUT = 0
STDERR = 1
HEADER = 2
ChunkTypes = ["stdout", "stderr", "header"]


@implementer(IStatusLog, ILogFile)
class LogFile:
    """
    One step log, kept in a spool file on disk rather than in memory, in a
    format new entries are appended to cheaply.  The file is
    C{<builder basedir>/<logfilename>}, the name coming from
    C{BuildStatus.generateLogfileName}.

    Entries of one channel accumulate in memory (the "run", as 0.8 called
    it) until the channel changes or C{chunkSize} bytes are pending; then
    the run becomes a record.  Readers see the file plus the run.

    The class is long because 0.8's contract is: some thirty public
    methods and attributes that plugins call on one object.  What is not
    that contract lives elsewhere (record format in L{_records}, the run in
    L{_run}, the file in L{_spool}, paging in L{_text_index}, streaming in
    L{_producer}); what stays here is each 0.8 method and the state they
    share.

    @ivar length: bytes of text stored (the sum of the entries kept, not the
        size of the file).
    """

    chunkSize = 10 * 1000
    BUFFERSIZE = 64 * 1024
    # text_bytes marks its way through a log about this often.
    TEXT_MARK_SPACING = 1024 * 1024

    finished = False
    nonHeaderLength = 0
    tailLength = 0
    # Bytes stored past logMaxSize (what fitted, the headers, the tail),
    # which 0.8's length did not count.
    _uncounted = 0
    maxLengthExceeded = False
    openfile: IO[bytes] | None = None
    # Beyond 0.8: the data API's slug of the log, where it is one (the
    # modern UI's URLs name logs by it).
    slug: str | None = None
    # Why the spool file cannot be trusted, if it cannot: the log goes on
    # without it (see mark_spool_failed).
    spool_failure: Exception | None = None
    # Beyond 0.8: where the entries logged so far can be read when the
    # spool has failed, if anywhere (the bridge's logs: the database).  The
    # text stays readable, as 0.8's plugins read it, in logFinished above all.
    entries_elsewhere: Callable[[], Iterable[tuple[int, str]]] | None = None
    _writer: _spool.SpoolWriter | None = None
    _run: RecordRun | None = None
    _compressing: defer.Deferred[None] | None = None
    # The length of a log opened from its file, counted when first asked.
    _stored_length: int | None = None

    def __init__(self, parent: Any, name: str, logfilename: str) -> None:
        """
        @param parent: the step status this log belongs to.
        @param name: the log's name, such as C{stdio}.
        @param logfilename: the file's name, relative to the builder's
            basedir.
        """
        self._init(parent, name, logfilename)
        fn = self.getFilename()
        if _spool.existing_spool(fn) == fn:
            log.msg(f"Warning: Overwriting old serialized log at {fn}")
        self._writer = _spool.SpoolWriter(fn, self.mark_spool_failed)
        self._run = RecordRun(self._writer, self, self._text_index)
        self.openfile = self._writer.file
        self._observe()

    @classmethod
    def open_finished(cls: type[_L], parent: Any, name: str, logfilename: str) -> _L:
        """
        A finished LogFile over a spool file that already exists (plain or
        compressed), as 0.8 got one back by unpickling a build.
        """
        self = cls.__new__(cls)
        self._init(parent, name, logfilename)
        self.finished = True
        self._observe()
        return self

    def _init(self, parent: Any, name: str, logfilename: str) -> None:
        self.step = parent
        self.master = parent.build.builder.master
        self.name = name
        self.filename = logfilename
        # In the builder's directory as the log starts: a reconfig that
        # moves logdir moves the logs that start after it.
        self._path = os.path.join(parent.build.builder.basedir, logfilename)
        # Settings set on this log; otherwise the master's config's, read
        # when used (see logMaxSize).
        self._settings: dict[str, int | None] = {}
        self.watchers: list[Any] = []
        self.finishedWatchers: list[defer.Deferred[LogFile]] = []
        self.tailBuffer: list[tuple[int, bytes]] = []
        # Why the log was cut off before it finished (see cut_off), if it was.
        self.cut: Exception | None = None
        self._text_index = TextIndex()
        # Producers that are pushed each entry as it is added.
        self._followers: list[LogFileProducer] = []
        self._observe()

    # Reading: the 0.8 status API

    def getName(self) -> str:
        return self.name

    def getStep(self) -> Any:
        return self.step

    def asDict(self) -> dict[str, Any]:
        """
        The log as 0.8's JSON status listed it in its step (C{name} and
        C{url}, the pair of the step's C{logs}), with its step's name and
        whether it is finished.
        """
        status = self.step.build.builder.status
        return {
            "name": self.getName(),
            "url": status.getURLForThing(self),
            "step": self.step.getName(),
            "isFinished": self.isFinished(),
        }

    def getFilename(self) -> str:
        """The spool file's path (without the suffix of a compressed one)."""
        return self._path

    def isFinished(self) -> bool:
        return self.finished

    def waitUntilFinished(self) -> defer.Deferred[LogFile]:
        """A Deferred that fires with this log once it is finished."""
        if self.finished:
            return defer.succeed(self)
        d: defer.Deferred[LogFile] = defer.Deferred()
        self.finishedWatchers.append(d)
        return d

    def hasContents(self) -> bool:
        """
        Whether the log's text is on disk: always for a new log, but the
        files of old ones may have been deleted or found damaged.  A log
        whose spool failed has it if L{entries_elsewhere} can read it.
        """
        if self.spool_failure is not None:
            return self.entries_elsewhere is not None
        return self.openfile is not None or _spool.existing_spool(self.getFilename()) is not None

    def getFile(self) -> IO[bytes]:
        """
        The binary spool file.  While the log is live this is the writer's
        own handle, shared: seek before every read and do not close it.
        Once finished, each call opens a new read-only handle, preferring a
        compressed file as 0.8 did.  Raises C{SpoolUnavailable} (an
        C{OSError}) for a log whose spool failed.
        """
        if self.spool_failure is not None:
            raise _spool.SpoolUnavailable(f"{self.getFilename()}: {self.spool_failure}")
        if self.openfile is not None:
            return self.openfile
        return _spool.open_spool(self.getFilename())

    @property
    def spooled(self) -> bool:
        """Beyond 0.8: whether the spool file holds this log (see L{mark_spool_failed})."""
        return self.spool_failure is None

    def check_spool(self) -> bool:
        """
        Beyond 0.8: whether the spool file still holds the log written so
        far; one cut short by hand is marked failed (see
        L{mark_spool_failed}).
        """
        writer = self._writer
        if self.spool_failure is None and writer is not None and not writer.intact():
            self.mark_spool_failed(SpoolUnavailable(f"{self.getFilename()}: cut short"))
        return self.spool_failure is None

    def mark_spool_failed(self, reason: Exception) -> None:
        """
        Beyond 0.8: the spool file cannot be written, or was found damaged
        (cut short, corrupt, deleted): the log goes on without it.
        Receivers still get every entry and producers that follow the log
        still get each new one; reading the text raises from now on, and
        the bridge serves the log from the database and rebuilds the file
        when the log is next opened.
        """
        if self.spool_failure is not None:
            return
        self.spool_failure = reason
        self.openfile = None
        log.msg(f"LogFile {self.getFilename()}: going on without its spool file: {reason}")
        if self._writer is not None:
            self._writer.abandon(reason)

    def getChunks(
        self, channels: list[int] | tuple[int, ...] = (), onlyText: bool = False
    ) -> Iterator[Any]:
        """
        The log as it is at this call, as C{(channel, text)} chunks of the
        given C{channels} (all if none), or just their texts with
        C{onlyText}.  Entries added while iterating are not included.  A
        log whose spool failed is read from L{entries_elsewhere}, if set.
        """
        if self.spool_failure is not None and self.entries_elsewhere is not None:
            return self._select(self.entries_elsewhere(), channels, onlyText)
        f, end, run = self._snapshot()
        return self._generate_chunks(f, end, run, channels, onlyText)

    @staticmethod
    def _select(
        entries: Iterable[tuple[int, str]], channels: list[int] | tuple[int, ...], onlyText: bool
    ) -> Iterator[Any]:
        for channel, text in entries:
            if not channels or channel in channels:
                yield text if onlyText else (channel, text)

    def _generate_chunks(
        self,
        f: IO[bytes],
        end: int | None,
        run: tuple[int, bytes] | None,
        channels: list[int] | tuple[int, ...],
        onlyText: bool,
    ) -> Iterator[Any]:
        decoder = ChunkDecoder()

        def chunks() -> Iterator[tuple[int, str]]:
            for channel, data, _ in iter_records(f, 0, end, self.BUFFERSIZE, self.getFilename()):
                yield from decoder.decode(channel, data)
            if run:
                yield from decoder.decode(*run)
            yield from decoder.flush()

        with f:
            try:
                yield from self._select(chunks(), channels, onlyText)
            except _spool.READ_ERRORS as e:
                self.mark_spool_failed(e)
                raise

    def getText(self) -> str:
        """The stdout and stderr text."""
        return "".join(self.getChunks([STDOUT, STDERR], onlyText=True))

    def getTextWithHeaders(self) -> str:
        """All of the text, headers included."""
        return "".join(self.getChunks(onlyText=True))

    def readlines(self, channel: int = STDOUT) -> list[str]:
        """
        The lines of C{channel} (stdout; 0.8.0-0.8.7 took the channel),
        each ending in a newline but maybe the last.  Only C{\\n} ends a
        line, as with 0.8's C{StringIO.readlines}.
        """
        lines = "".join(self.getChunks([channel], onlyText=True)).split("\n")
        last = lines.pop()
        return [line + "\n" for line in lines] + ([last] if last else [])

    def text_bytes(self, start: int, limit: int) -> tuple[bytes, int, bool]:
        """
        Beyond 0.8: up to C{limit} bytes of the stdout and stderr text from
        text byte C{start} on, as the spool's UTF-8, beginning and ending on
        character boundaries (a C{start} inside a character begins at the
        next one).  Returns them, the text offset after them, and whether
        more text follows now.

        Nothing is decoded, and reading starts at the last mark an earlier
        call left at or before C{start}: polling a log costs the new text,
        not the whole log.
        """
        if limit < 4:
            raise ValueError("limit must hold a whole character (4 bytes)")
        f, end, run = self._snapshot()
        try:
            with f:
                return self._text_index.text_bytes(
                    f, end, run, start, limit,
                    spacing=self.TEXT_MARK_SPACING, buffersize=self.BUFFERSIZE,
                    filename=self.getFilename(),
                )  # fmt: skip
        except _spool.READ_ERRORS as e:
            self.mark_spool_failed(e)
            raise

    def _snapshot(self) -> tuple[IO[bytes], int | None, tuple[int, bytes] | None]:
        """
        The log as it is now: a handle of its own on the file, where its
        records end (None: at end of file), and the pending run, if any.
        """
        if self._writer is None or self._run is None:
            return self.getFile(), None, None
        if self.spool_failure is not None:
            self.getFile()  # raises
        end = self._writer.flush()
        run = (self._run.channel, self._run.text()) if self._run.size else None
        return self._writer.open_reader(), end, run

    # Watching

    def subscribe(self, receiver: Any, catchup: bool) -> None:
        """
        Call C{receiver.logChunk(build, step, log, channel, text)} for each
        entry added from now on, as it was added (before any truncation),
        until the log finishes.  With C{catchup}, the text logged so far
        comes first, until the receiver unsubscribes; one that raises is
        logged and skipped.  A finished log has nothing more to tell.
        """
        if self.finished:
            return
        self.watchers.append(receiver)
        self._observe()
        if catchup and self.length:  # (nothing to read, whatever the spool does)
            for channel, text in self.getChunks():
                if receiver not in self.watchers:
                    break  # it unsubscribed meanwhile
                deliver(receiver, "logChunk", self.step.build, self.step, self, channel, text)

    def unsubscribe(self, receiver: Any) -> None:
        """Stop calling C{receiver.logChunk}."""
        if receiver in self.watchers:
            self.watchers.remove(receiver)
            self._observe()

    def subscribeConsumer(
        self, consumer: ChunkConsumer, clock: IReactorTime | None = None
    ) -> LogFileProducer:
        """
        Stream the whole log to C{consumer} (0.8's C{IStatusLogConsumer})
        through a new L{LogFileProducer}, which registers itself with it and
        starts on the next reactor turn.
        """
        producer = LogFileProducer(self, consumer, clock)
        producer.resumeProducing()
        return producer

    # Writing

    def addEntry(self, channel: int, text: str | bytes) -> None:
        """
        Add C{text} to the log on C{channel} (L{STDOUT}, L{STDERR},
        L{HEADER}, or another single digit).  Bytes are taken as UTF-8,
        undecodable ones replaced.  Not after L{finish}.
        """
        assert not self.finished, "logfile already finished"
        if channel not in CHANNELS:
            raise ValueError(f"channel number must be a single decimal digit, not {channel!r}")
        text = as_text(text)
        for w in list(self.watchers):
            deliver(w, "logChunk", self.step.build, self.step, self, channel, text)
        if channel != HEADER:
            limit = self.logMaxSize
            if limit:  # 0, as None, means no limit (0.8 tested it so)
                self.nonHeaderLength += len(text) if text.isascii() else len(text.encode())
                if self.nonHeaderLength > limit:
                    self._truncate(limit, channel, text.encode())
                    return
        self._store(channel, text)

    def _observe(self) -> None:
        """
        Choose how L{addEntry} works: for a log that nobody watches or
        follows, and whose own settings say it has no size limit (the
        bridge's logs: the worker applied the master's), it stores the text
        and does nothing else.  Shadowing the method on the instance spares
        each entry a call, about a tenth of the cost of appending.  A log
        that takes its limit from the master's config reads it at each
        entry, as 0.8 did.
        """
        observed = (
            self.finished
            or bool(self.watchers)
            or bool(self._followers)
            or "logMaxSize" not in self._settings
            or bool(self._settings["logMaxSize"])
        )
        if observed or self._run is None or type(self).addEntry is not LogFile.addEntry:
            self.__dict__.pop("addEntry", None)
        else:
            self.addEntry = self._run.append  # type: ignore[method-assign]

    def _store(self, channel: int, text: str, hold: bool = False) -> None:
        """Keep C{text} (see L{RecordRun.append}); push it to the producers that follow the log."""
        assert self._run is not None
        self._run.append(channel, text, hold)
        for p in list(self._followers):
            p.live_entry(channel, text)

    def _truncate(self, limit: int, channel: int, data: bytes) -> None:
        """
        Past C{logMaxSize}: keep what fits (whole characters), say so once
        in a header, and keep the last C{logMaxTailSize} bytes for
        L{finish}, dropping whole entries from the front as 0.8 did.
        """
        if not self.maxLengthExceeded:
            # What fits; nothing if a lower limit came in meanwhile.
            keep = len(data) - (self.nonHeaderLength - limit)
            keep = char_boundary(data, keep) if keep > 0 else 0
            head, data = data[:keep], data[keep:]
            if head:
                self._store(channel, head.decode())
            msg = f"\nOutput exceeded {limit} bytes, remaining output has been truncated\n"
            self._store(HEADER, msg, hold=True)
            self._uncounted += len(head) + len(msg)
            self.maxLengthExceeded = True
        tail_limit = self.logMaxTailSize
        if tail_limit and data:
            self.tailBuffer.append((channel, data))
            self.tailLength += len(data)
            while self.tailLength > tail_limit:
                _, dropped = self.tailBuffer.pop(0)
                self.tailLength -= len(dropped)

    def addStdout(self, text: str | bytes) -> defer.Deferred[None]:
        """Add C{text} on L{STDOUT}; an already-fired Deferred, as in 0.8."""
        self.addEntry(STDOUT, text)
        return defer.succeed(None)

    def addStderr(self, text: str | bytes) -> defer.Deferred[None]:
        """Add C{text} on L{STDERR}; an already-fired Deferred, as in 0.8."""
        self.addEntry(STDERR, text)
        return defer.succeed(None)

    def addHeader(self, text: str | bytes) -> defer.Deferred[None]:
        """
        Add C{text} on L{HEADER}, what the step says about the command; an
        already-fired Deferred, as in 0.8.
        """
        self.addEntry(HEADER, text)
        return defer.succeed(None)

    def finish(self) -> defer.Deferred[None]:
        """
        End the log: write everything pending, then tell producers and
        those waiting.  With C{logMaxTailSize}, the kept tail follows a
        header that says how much of it there is.  Returns an already-fired
        Deferred, as in 0.8.
        """
        if self.finished:
            return defer.succeed(None)
        if self.tailBuffer:
            assert self._run is not None
            # A record of its own, as 0.8 wrote it, not one with the header before.
            self._run.merge()
            msg = f"\nFinal {self.tailLength} bytes follow below:\n"
            self._store(HEADER, msg)
            self._run.merge()
            # Each channel's stretch of the tail as one entry, cut as 0.8
            # cut the tail (which it wrote all under its first channel).
            for channel, stretch in itertools.groupby(self.tailBuffer, key=lambda e: e[0]):
                self._store(channel, b"".join(data for _, data in stretch).decode())
            self._uncounted += len(msg) + self.tailLength
            self.tailBuffer = []
        self._end()
        return defer.succeed(None)

    def cut_off(self, reason: Exception) -> None:
        """
        Beyond 0.8: stop following a log that goes on without this LogFile
        (the service that fed it is stopping).  It ends as L{finish} ends
        it, but without the kept tail, and producers end their streams as
        cut short (L{LogFileProducer}): a page does not end as if it had
        the whole log.  The bridge rebuilds the spool file from the
        database when the log is next opened.
        """
        if not self.finished:
            self.cut = reason
            self.tailBuffer = []
            self._end()

    def _end(self) -> None:
        if self._writer is not None:
            assert self._run is not None
            self._run.merge()
            writer, self._writer, self.openfile = self._writer, None, None
            writer.close()
        self.finished = True
        followers, self._followers = self._followers, []
        self._observe()
        for p in followers:
            p.logfileFinished(self)
        watchers, self.finishedWatchers = self.finishedWatchers, []
        for d in watchers:
            d.callback(self)

    def compressLog(self) -> defer.Deferred[None]:
        """
        Compress the finished spool file with C{bz2} or C{gz} (the master's
        C{logCompressionMethod}) in a thread, then swap it for the plain
        file.  Readers that opened the plain file keep reading it.  Other
        methods keep the plain file.
        """
        if self._compressing is not None:
            # One at a time: both would write the same temporary file.
            d: defer.Deferred[None] = defer.Deferred()

            def relay(result: Any) -> Any:
                d.callback(None)
                return result

            self._compressing.addBoth(relay)
            return d

        def done(result: Any) -> Any:
            self._compressing = None
            return result

        if self.spool_failure is not None:
            return defer.succeed(None)
        method = self.master.config.logCompressionMethod  # as configured now
        compressing = _spool.compress_spool(self.getFilename(), method)
        if compressing.called:
            return compressing
        self._compressing = compressing.addBoth(done)
        return self._compressing

    @property
    def length(self) -> int:
        """
        Bytes of text added so far, but for what came past C{logMaxSize}
        (0.8 did not count what it kept of that, nor its headers).  0.8
        kept it in the pickle; a log opened from its file counts its
        records once, at the first ask, reading the file at once as 0.8's
        synchronous API did (0 if the file cannot be read, which marks the
        spool failed).
        """
        if self._run is not None:
            return self._run.merged + self._run.size - self._uncounted
        if self._stored_length is None:
            try:
                with self.open_reader() as f:
                    records = iter_records(f, 0, None, self.BUFFERSIZE, self.getFilename())
                    self._stored_length = sum(len(data) for _, data, _ in records)
            except _spool.READ_ERRORS as e:
                self.mark_spool_failed(e)
                return 0
        return self._stored_length

    @property
    def logMaxSize(self) -> int | None:
        """
        Bytes of stdout and stderr kept before the rest is truncated: the
        master's C{logMaxSize} at each entry, as in 0.8, unless set on this
        log (the bridge sets None: the worker applied it already).  0 or
        None: no limit.
        """
        if "logMaxSize" in self._settings:
            return self._settings["logMaxSize"]
        return self.master.config.logMaxSize

    @logMaxSize.setter
    def logMaxSize(self, value: int | None) -> None:
        self._settings["logMaxSize"] = value
        self._observe()

    @property
    def logMaxTailSize(self) -> int | None:
        """
        Bytes of truncated output kept for the end of the log: the
        master's C{logMaxTailSize} when used, unless set on this log.
        """
        if "logMaxTailSize" in self._settings:
            return self._settings["logMaxTailSize"]
        return self.master.config.logMaxTailSize

    @logMaxTailSize.setter
    def logMaxTailSize(self, value: int | None) -> None:
        self._settings["logMaxTailSize"] = value

    # What LogFileProducer reads through (0.8's producer read the log's
    # private run itself).

    def flush(self) -> int | None:
        """
        Write every record merged so far; the offset where they end, or
        None once the log is finished (its file ends there).  Raises
        C{SpoolUnavailable} if the spool failed.
        """
        if self.spool_failure is not None:
            self.getFile()  # raises
        return self._writer.flush() if self._writer is not None else None

    def open_reader(self) -> IO[bytes]:
        """
        A read handle of the caller's own on the spool file: while the log
        is live, one that outlives the writer's and a deleted file; once
        finished, as L{getFile}.
        """
        if self._writer is None:
            return self.getFile()
        return self._writer.open_reader()

    def pending_run(self, sent: int) -> tuple[int, bytes]:
        """The run's channel and its bytes after the first C{sent}."""
        assert self._run is not None
        return self._run.channel, self._run.text(sent)

    def follow(self, producer: LogFileProducer) -> None:
        """Push each entry to C{producer.live_entry} from now until the log finishes."""
        self._followers.append(producer)
        self._observe()

    def unfollow(self, producer: LogFileProducer) -> tuple[int, int]:
        """
        Stop pushing entries to C{producer}; returns where it stands: the
        offset where the records end and the bytes of the run after them.
        """
        self._followers.remove(producer)
        self._observe()
        assert self._writer is not None
        assert self._run is not None
        return self._writer.end, self._run.size


class HTMLLogFile(LogFile):
    """An HTML log: the html is one STDERR entry, and the log is finished at once."""

    def __init__(self, parent: Any, name: str, logfilename: str, html: str | bytes) -> None:
        super().__init__(parent, name, logfilename)
        self.addStderr(html)
        self.finish()

    def hasContents(self) -> bool:
        """Always, as 0.8 answered: its HTML was in the build's pickle."""
        return True
