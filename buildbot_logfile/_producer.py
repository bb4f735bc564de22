"""
L{LogFileProducer}: 0.8's streaming reader of one log, with pause that
holds in the live phase too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from twisted.python import log

from buildbot_logfile._records import ChunkDecoder, iter_records
from buildbot_logfile._spool import READ_ERRORS

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from buildbot_logfile.logfile import LogFile

_Record = tuple[int, memoryview, int]


class ChunkConsumer(Protocol):
    """What L{LogFileProducer} writes to (0.8's C{IStatusLogConsumer})."""

    def registerProducer(self, producer: Any, streaming: bool) -> None: ...

    def unregisterProducer(self) -> None: ...

    def writeChunk(self, chunk: tuple[int, str]) -> None: ...

    def finish(self) -> None: ...


def end_stream(consumer: ChunkConsumer, short: Exception | None) -> None:
    """
    Unregister and end C{consumer}'s stream; C{short}: why it does not hold
    the whole log.  A consumer with C{abort(reason)} (the pages) is told
    that; a 0.8 consumer is finished, as 0.8 ended a stream at a bad record.
    """
    consumer.unregisterProducer()
    abort = getattr(consumer, "abort", None)
    if short is not None and abort is not None:
        abort(short)
    else:
        consumer.finish()


class LogFileProducer:
    """
    Streams one L{LogFile} to a consumer, from the start, then live.

    Phase one reads records from a file handle of its own, at its own
    offset, up to where the log's records end.  It then hands over the
    log's pending run and goes live: the log pushes each new entry through
    L{live_entry} until it finishes.

    Beyond 0.8, pause holds in the live phase too: a paused producer stops
    following the log and keeps only its position (file offset plus the
    bytes of the run already sent), so it holds no text however much is
    appended, and resuming reads on from the file.
    """

    paused = False
    subscribed = False
    BUFFERSIZE = 64 * 1024
    # Phase one hands the consumer runs of one channel up to this size: a
    # transport pauses its producer after each write, so larger writes mean
    # fewer pause/resume turns.
    RUN_BYTES = 4 * BUFFERSIZE
    # Phase one gives the reactor back after this many bytes, so one large
    # catch-up cannot starve other clients.
    TURN_BYTES = 1024 * 1024

    def __init__(
        self, logfile: LogFile, consumer: ChunkConsumer, clock: IReactorTime | None = None
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = cast("IReactorTime", reactor)
        self.logfile = logfile
        self.consumer: ChunkConsumer | None = consumer
        self._clock: IReactorTime = clock
        self._failure: Exception | None = None
        self._file: IO[bytes] | None = None
        try:
            self._file = logfile.open_reader()
        except READ_ERRORS as e:
            self._failure = e  # told on the first turn, through the consumer
        self._offset = 0  # where the next record starts
        self._skip = 0  # bytes of it already sent (live, before a pause)
        self._following = False
        self._started = False
        self._records: Iterator[_Record] | None = None
        self._records_to_eof = False
        self._held: _Record | None = None
        self._producing = False
        self._call: IDelayedCall | None = None
        self._decoder = ChunkDecoder()
        self.subscribed = True
        consumer.registerProducer(self, True)

    def pauseProducing(self) -> None:
        """Write nothing until resumed; a live producer lets go of the log meanwhile."""
        self.paused = True
        if self._following:
            self._unfollow()

    def resumeProducing(self) -> None:
        """Write on from where the consumer stands, catching up from the file."""
        self.paused = False
        if self.consumer is None or self._following or self._call is not None or self._producing:
            return
        if self._started:
            # As twisted.web's static producers do: write now, from inside
            # the transport's resume, rather than a reactor turn later.
            self._produce()
        else:
            # The first turn waits for the reactor, as in 0.8, so that
            # subscribeConsumer returns before anything is written.
            self._started = True
            self._call = self._clock.callLater(0, self._produce)

    def stopProducing(self) -> None:
        """Write nothing more, and let go of the log and the file."""
        self.paused = True
        self.consumer = None
        self.done()

    def done(self) -> None:
        """Let go of the log, the file and any scheduled turn (0.8's name)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._following:
            self._unfollow()
        self.subscribed = False
        if self._file is not None:
            self._file.close()
        self._file = None
        self._records = self._held = None

    def live_entry(self, channel: int, text: str) -> None:
        """An entry just added to the log; only while following it."""
        assert self.consumer is not None
        self.consumer.writeChunk((channel, text))

    def logfileFinished(self, logfile: LogFile) -> None:
        """The log finished while this producer followed it."""
        self._following = False
        self._finish()

    def _unfollow(self) -> None:
        self._following = False
        self._offset, self._skip = self.logfile.unfollow(self)

    def _produce(self) -> None:
        self._call = None
        self._producing = True
        try:
            self._catch_up()
        except READ_ERRORS as e:
            self._fail(e)
        finally:
            self._producing = False

    def _catch_up(self) -> None:
        if self.paused or self.consumer is None:
            return
        budget = self.TURN_BYTES
        # Consecutive records of one channel go out as one chunk: fewer,
        # larger writes.  A record joins the run only once the run before it
        # is written, so the offset never passes unwritten text.
        run: list[memoryview] = []
        run_channel = run_len = 0
        while True:
            try:
                record = self._next_record()
            except READ_ERRORS:
                if run:  # the good records before the bad one still go out
                    self._write(run_channel, run)
                raise
            if record is None:
                if run:
                    self._write(run_channel, run)
                if self.consumer is None or self.paused:
                    return
                if self.logfile.isFinished():
                    self._write_decoded(self._decoder.flush())
                    self._finish()
                else:
                    self._go_live()
                return
            channel, data, next_offset = record
            if run and (channel != run_channel or run_len >= min(self.RUN_BYTES, budget)):
                self._write(run_channel, run)
                budget -= run_len
                run, run_len = [], 0
                if self.paused or self.consumer is None or budget <= 0:
                    self._held = record
                    if budget <= 0 and not self.paused and self.consumer is not None:
                        self._call = self._clock.callLater(0, self._produce)
                    return
            self._offset = next_offset
            if self._skip:
                cut = min(self._skip, len(data))
                data = data[cut:]
                self._skip -= cut
            run.append(data)
            run_channel = channel
            run_len += len(data)

    def _next_record(self) -> _Record | None:
        """
        The record at this producer's offset, or None at the end of what is
        written.  The reader is kept across pauses, so no read is repeated.
        """
        if self._failure is not None:
            raise self._failure
        held = self._held
        if held is not None:
            self._held = None
            return held
        lf = self.logfile
        while True:
            if self._records is None:
                end = lf.flush()
                if end is not None and self._offset >= end:
                    return None
                assert self._file is not None
                self._records = iter_records(
                    self._file, self._offset, end, self.BUFFERSIZE, lf.getFilename()
                )
                self._records_to_eof = end is None
            record = next(self._records, None)
            if record is not None:
                return record
            self._records = None
            if self._records_to_eof:
                return None

    def _write(self, channel: int, run: list[memoryview]) -> None:
        write_encoded: Any = getattr(self.consumer, "write_encoded", None)
        if write_encoded is not None:
            # A consumer that sends bytes on (the text page) takes them as
            # they are on disk: no decoding to re-encode.
            write_encoded(channel, b"".join(run))
            return
        self._write_decoded(self._decoder.decode(channel, b"".join(run)))

    def _write_decoded(self, chunks: list[tuple[int, str]]) -> None:
        for chunk in chunks:
            if self.consumer is None:
                return
            self.consumer.writeChunk(chunk)

    def _go_live(self) -> None:
        self._write_decoded(self._decoder.flush())
        channel, pending = self.logfile.pending_run(self._skip)
        if pending:
            # The text already sent ends on an entry, so on a character.
            self._skip += len(pending)
            self._write_decoded([(channel, pending.decode())])
        if self.paused or self.consumer is None:
            return
        self._following = True
        self.logfile.follow(self)

    def _finish(self) -> None:
        """The end of the log, or of what it holds if it was cut off."""
        self._end(self.logfile.cut)

    def _fail(self, reason: Exception) -> None:
        """The file cannot be read to the end: the log is marked so, and the stream ends."""
        # One line says why (a full disk, a damaged record): no traceback
        # for each page that was reading it.
        log.msg(f"ending the stream of {self.logfile.getFilename()} early: {reason}")
        self.logfile.mark_spool_failed(reason)
        self._end(reason)

    def _end(self, short: Exception | None) -> None:
        consumer = self.consumer
        self.consumer = None
        self.done()
        if consumer is not None:
            end_stream(consumer, short)
