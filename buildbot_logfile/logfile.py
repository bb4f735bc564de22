"""
Buildbot 0.8's on-disk step logs, on Python 3.

A L{LogFile} appends entries to a spool file in the 0.8 netstring format
(C{<len>:<channel><text>,}), merging runs of one channel into records of at
most L{LogFile.chunkSize} bytes.  L{LogFileProducer} streams a log to a
consumer: it reads what is on disk, then follows the log live.

Two things differ from 0.8, both invisible to 0.8 callers:

  - text is C{str} at every public boundary; the file holds UTF-8 and a
    record never splits a character;
  - a producer honours pause in the live phase too.  A paused producer is
    detached from the log and remembers only its position, so it holds no
    data however much is appended; on resume it catches up from the file.
"""

from __future__ import annotations

import bisect
import bz2
import codecs
import ctypes
import gzip
import io
import itertools
import os
import sys
from typing import IO, Any, Callable, Iterator, Protocol, Union

from twisted.internet import defer, threads
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python import log

STDOUT = 0
STDERR = 1
HEADER = 2
ChunkTypes = ["stdout", "stderr", "header"]

# Compression methods whose files 0.8 can read back; any other configured
# method (Buildbot 4's default 'zstd', 'lz4', 'br', 'raw') leaves the spool
# file uncompressed, because a spool file must stay readable by 0.8 tools.
COMPRESSION_SUFFIXES = {"bz2": ".bz2", "gz": ".gz"}

# A record's channel is one decimal digit.
_CHANNELS = range(10)

# A record's length prefix longer than this cannot come from a sane file.
_MAX_LENGTH_DIGITS = 12


# One write takes at most this many records (IOV_MAX on Linux, macOS and
# the BSDs).
_MAX_PIECES = 1024


def _reserver() -> Callable[[int, int, int], int] | None:
    """
    Linux's C{fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length)}, or None
    where there is none.  Appends into blocks reserved ahead of the end of
    file cost the kernel about a fifth less than appends that allocate as
    they go, and the file's size still ends at its last record.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate64
    except (OSError, AttributeError):
        return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fallocate.restype = ctypes.c_int
    keep_size = 1  # FALLOC_FL_KEEP_SIZE
    return lambda fd, offset, length: fallocate(fd, keep_size, offset, length)


_reserve_blocks = _reserver()


def _as_text(text: Any) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text).decode("utf-8", "replace")
    raise TypeError(f"log text must be str or bytes, not {type(text).__name__}")


def _piece(text: str) -> str | bytes:
    """
    What a run keeps of an entry: ASCII text as it is, being its own UTF-8
    (a run of it is encoded once, as a whole), other text encoded now, so
    that it is encoded only once.  Either way its length is its size.
    """
    return text if text.isascii() else text.encode()


def _utf8(pieces: list[str | bytes], encoded: bool) -> bytes:
    """The pieces of a run as one UTF-8 string; C{encoded}: some are bytes."""
    if not encoded:
        return "".join(pieces).encode()  # type: ignore[arg-type]
    return b"".join([p if p.__class__ is bytes else p.encode() for p in pieces])  # type: ignore[union-attr]


_Pieces = list[Union[bytes, memoryview]]


def _split_tail(pieces: _Pieces, tail: int) -> tuple[_Pieces, _Pieces]:
    """C{pieces} as two lists, the second holding their last C{tail} bytes."""
    i = len(pieces)
    while tail > 0:
        i -= 1
        tail -= len(pieces[i])
    head, rest = pieces[:i], pieces[i:]
    if tail < 0:
        straddling = memoryview(rest[0])
        head.append(straddling[:-tail])
        rest[0] = straddling[-tail:]
    return head, rest


def _write_at(fd: int, pieces: _Pieces, offset: int, size: int) -> None:
    """
    Write C{pieces} (C{size} bytes) at C{offset} of C{fd}, all of them.

    One positional gather-write where the platform has it: no copy, and the
    shared handle's position, which readers move, does not matter.
    """
    written = os.pwritev(fd, pieces, offset) if hasattr(os, "pwritev") else 0
    if written < size:
        rest = memoryview(b"".join(pieces))[written:]
        # A reader may be between its seek and its read.
        position = os.lseek(fd, 0, os.SEEK_CUR)
        try:
            os.lseek(fd, offset + written, os.SEEK_SET)
            while rest:
                rest = rest[os.write(fd, rest) :]
        finally:
            os.lseek(fd, position, os.SEEK_SET)


class _SharedSpool(io.FileIO):
    """
    A live log's spool file, shared by its writer and every reader.

    The log holds its newest records in memory (see L{LogFile._add_record});
    any read through this handle, or a seek from its end, writes them first,
    so a reader sees everything merged so far, as it did in 0.8 through the
    writer's buffered file.
    """

    def __init__(self, logfile: LogFile, filename: str) -> None:
        super().__init__(filename, "w+")
        self.logfile = logfile

    def read(self, size: int | None = -1) -> bytes:
        self.logfile._write_pending()
        return super().read(size)

    def readall(self) -> bytes:
        self.logfile._write_pending()
        return super().readall()

    def readinto(self, buffer: Any) -> int:
        self.logfile._write_pending()
        return super().readinto(buffer)

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            self.logfile._write_pending()
        return super().seek(pos, whence)


class LogFileFormatError(Exception):
    """
    A spool file holds something that is not a 0.8 netstring record.
    """

    def __init__(self, filename: str, offset: int, reason: str) -> None:
        super().__init__(f"{filename}: corrupt log record at byte {offset}: {reason}")
        self.filename = filename
        self.offset = offset
        self.reason = reason


class ChunkConsumer(Protocol):
    """
    What L{LogFileProducer} writes to (0.8's C{IStatusLogConsumer}).
    """

    def registerProducer(self, producer: Any, streaming: bool) -> None: ...

    def unregisterProducer(self) -> None: ...

    def writeChunk(self, chunk: tuple[int, str]) -> None: ...

    def finish(self) -> None: ...


def _char_boundary(data: bytes, end: int) -> int:
    """
    The largest offset <= C{end} (< C{len(data)}) that does not fall inside
    a UTF-8 character; C{end} itself if there is none after offset 0.
    """
    i = end
    while i > 0 and i > end - 3 and (data[i] & 0xC0) == 0x80:
        i -= 1
    return i if i > 0 else end


def iter_records(
    f: IO[bytes], offset: int, end: int | None, buffersize: int, filename: str
) -> Iterator[tuple[int, memoryview, int]]:
    """
    Parse netstring records from C{f}, yielding C{(channel, data, next_offset)}
    with C{data} a view of the bytes read.

    C{f} may be shared with a writer and other readers, so every read seeks
    to this reader's own offset first.  Reading stops at C{end} (when given:
    the writer's end of file, where a record always ends) or at end of file,
    where a record cut short by a crash mid-write ends the iteration quietly.
    Anything else that is not a record raises L{LogFileFormatError}.
    """
    buf = b""
    start = offset  # file offset of buf[0]
    need = 0  # bytes of buf the record at its head needs, when known
    eof = False
    while True:
        pos = 0
        # Records are handed out as views of the buffer: no copy per record.
        view = memoryview(buf)
        while True:
            colon = buf.find(b":", pos, pos + _MAX_LENGTH_DIGITS + 1)
            if colon < 0:
                rest = buf[pos : pos + _MAX_LENGTH_DIGITS + 1]
                if rest and (len(rest) > _MAX_LENGTH_DIGITS or not rest.isdigit()):
                    raise LogFileFormatError(filename, start + pos, "no length prefix")
                break
            digits = buf[pos:colon]
            if not digits.isdigit() or digits.startswith(b"0"):
                raise LogFileFormatError(filename, start + pos, f"bad length {digits!r}")
            stop = colon + 1 + int(digits)
            if stop >= len(buf):
                need = stop + 1 - pos
                break
            channel = buf[colon + 1] - 48
            if not 0 <= channel <= 9:
                raise LogFileFormatError(filename, start + pos, "channel is not a digit")
            if buf[stop] != 44:  # ord(",")
                raise LogFileFormatError(filename, start + pos, "record not terminated by ','")
            yield channel, view[colon + 2 : stop], start + stop + 1
            pos = stop + 1
        buf = buf[pos:]
        start += pos
        if eof:
            if buf and end is not None:
                raise LogFileFormatError(filename, start, "record runs past the end")
            if end is not None and start < end:
                # Cut short under a live log (truncated by hand): without
                # this, a reader would wait for bytes that never come.
                raise LogFileFormatError(filename, start, "file ends before what was written")
            return
        want = max(buffersize, need - len(buf))
        if end is not None:
            want = min(want, end - start - len(buf))
        more = b""
        if want > 0:
            f.seek(start + len(buf))
            more = f.read(want)
        eof = not more
        buf += more
        need = 0


class _ChunkDecoder:
    """
    Turns record bytes into C{str}.  A file written by 0.8 may split a
    UTF-8 character between two records of one channel; the incremental
    decoder carries the partial character over, and only bytes that are not
    UTF-8 at all become U+FFFD.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._channel: int | None = None

    def decode(self, channel: int, data: bytes) -> list[tuple[int, str]]:
        out = []
        if channel != self._channel and self._channel is not None:
            rest = self._decoder.decode(b"", True)
            if rest:
                out.append((self._channel, rest))
        self._channel = channel
        text = self._decoder.decode(data)
        if text:
            out.append((channel, text))
        return out

    def flush(self) -> list[tuple[int, str]]:
        rest = self._decoder.decode(b"", True)
        return [(self._channel, rest)] if rest and self._channel is not None else []


class LogFile:
    """
    One step log, spooled to disk in the 0.8 format (0.8's
    C{buildbot.status.logfile.LogFile}).

    Entries of one channel accumulate in memory (the "run") until the
    channel changes or C{chunkSize} bytes are pending; then the run becomes
    a record.  Records wait in memory until C{WRITE_BUFFER} bytes of them
    are pending, and a read of the file writes them out first, so readers
    see the file plus the run.
    """

    chunkSize = 10 * 1000
    BUFFERSIZE = 64 * 1024
    # Records are written in one system call per this many bytes, each
    # write ending on a multiple of it: the page cache takes such aligned
    # writes about a tenth faster than the same bytes at other offsets
    # (measured on ext4).
    WRITE_BUFFER = 512 * 1024
    # Disk space reserved ahead of a live log's end (Linux), from the size
    # where a log is likely to grow on.
    RESERVE_MIN = 1024 * 1024
    RESERVE_MAX = 8 * 1024 * 1024
    # text_bytes marks its way through a log about this often.
    TEXT_MARK_SPACING = 1024 * 1024

    finished = False
    nonHeaderLength = 0
    tailLength = 0
    maxLengthExceeded = False
    _log_max_size: int | None = None
    openfile: IO[bytes] | None = None
    _compressing: defer.Deferred[None] | None = None

    def __init__(self, parent: Any, name: str, logfilename: str) -> None:
        self.step = parent
        self.master = parent.build.builder.master
        self.name = name
        self.filename = logfilename
        self._init_state()
        config = self.master.config
        self.compressMethod = config.logCompressionMethod
        self.logMaxSize = config.logMaxSize
        self.logMaxTailSize = config.logMaxTailSize
        fn = self.getFilename()
        if os.path.exists(fn):
            log.msg(f"Warning: Overwriting old serialized log at {fn}")
        os.makedirs(os.path.dirname(fn), exist_ok=True)
        self.openfile = _SharedSpool(self, fn)

    def _init_state(self) -> None:
        self.watchers: list[Any] = []
        self.finishedWatchers: list[defer.Deferred[LogFile]] = []
        self.tailBuffer: list[tuple[int, bytes]] = []
        # Pieces (see _piece) of one channel's entries; _room counts down
        # their size, _run_encoded says whether any is bytes.
        self._run: list[str | bytes] = []
        self._run_encoded = False
        self._run_channel = STDOUT
        self._room = self.chunkSize
        self._merged_len = 0
        # Records not yet written, the first maybe the rest of one that an
        # aligned write cut.
        self._pending: _Pieces = []
        self._written = 0
        self._file_end = 0
        self._reserved = 0
        # (text offset, file offset) at record ends, for text_bytes.
        self._text_marks: list[tuple[int, int]] = []
        self._producers: list[LogFileProducer] = []
        self._live: list[LogFileProducer] = []
        self._observe()

    @classmethod
    def open_finished(cls, parent: Any, name: str, logfilename: str) -> LogFile:
        """
        A finished LogFile over a spool file that already exists (plain or
        compressed), as 0.8 got back by unpickling a build.
        """
        self = cls.__new__(cls)
        self.step = parent
        self.master = parent.build.builder.master
        self.name = name
        self.filename = logfilename
        self.compressMethod = self.master.config.logCompressionMethod
        self._init_state()
        self.logMaxTailSize = None
        self.finished = True
        self._observe()
        return self

    @property
    def length(self) -> int:
        """Bytes of text stored so far (after any truncation)."""
        return self._merged_len + self._run_len

    @property
    def logMaxSize(self) -> int | None:
        return self._log_max_size

    @logMaxSize.setter
    def logMaxSize(self, value: int | None) -> None:
        # Set after construction too (the bridge clears it; 0.8 plugins
        # may): whether entries are counted depends on it.
        self._log_max_size = value
        self._observe()

    @property
    def _run_len(self) -> int:
        return self.chunkSize - self._room

    def _observe(self) -> None:
        """
        Note whether an entry needs more than storing: checks, watchers,
        truncation or live producers.  L{addEntry} skips all of them for a
        log nobody observes, which is most of the time.
        """
        self._observed = (
            self.finished
            or bool(self.watchers)
            or bool(self._live)
            or self._log_max_size is not None
        )

    # 0.8 status API

    def getName(self) -> str:
        return self.name

    def getStep(self) -> Any:
        return self.step

    def getFilename(self) -> str:
        return os.path.join(self.step.build.builder.basedir, self.filename)

    def isFinished(self) -> bool:
        return self.finished

    def waitUntilFinished(self) -> defer.Deferred[LogFile]:
        if self.finished:
            return defer.succeed(self)
        d: defer.Deferred[LogFile] = defer.Deferred()
        self.finishedWatchers.append(d)
        return d

    def hasContents(self) -> bool:
        fn = self.getFilename()
        return any(os.path.exists(fn + suffix) for suffix in ("", ".bz2", ".gz"))

    def getFile(self) -> IO[bytes]:
        """
        The binary spool file.  While the log is live this is the writer's
        own handle, shared: seek before every read.  Once finished, each
        call opens a new read-only handle, preferring a compressed file as
        0.8 did.
        """
        if self.openfile is not None:
            return self.openfile
        fn = self.getFilename()
        if os.path.exists(fn + ".bz2"):
            return bz2.BZ2File(fn + ".bz2", "rb")
        if os.path.exists(fn + ".gz"):
            return gzip.GzipFile(fn + ".gz", "rb")
        return open(fn, "rb")

    def getChunks(
        self, channels: list[int] | tuple[int, ...] = (), onlyText: bool = False
    ) -> Iterator[Any]:
        """
        The log as it is now, as C{(channel, text)} chunks (or just texts
        with C{onlyText}); entries added while iterating are not included.
        """
        f, end, leftover = self._snapshot()
        return self._generateChunks(f, end, leftover, channels, onlyText)

    def _snapshot(self) -> tuple[IO[bytes], int | None, tuple[int, bytes] | None]:
        """
        The log as it is now: a handle of its own on the file, where its
        records end (None: at end of file), and the pending run, if any.
        """
        if self.openfile is None:
            return self.getFile(), None, None
        # A handle of its own: reading may outlive the writer's.
        self._write_pending()
        leftover = (self._run_channel, _utf8(self._run, self._run_encoded)) if self._run else None
        return open(self.getFilename(), "rb"), self._file_end, leftover

    def _generateChunks(
        self,
        f: IO[bytes],
        end: int | None,
        leftover: tuple[int, bytes] | None,
        channels: list[int] | tuple[int, ...],
        onlyText: bool,
    ) -> Iterator[Any]:
        decoder = _ChunkDecoder()

        def chunks() -> Iterator[tuple[int, str]]:
            for channel, data, _ in iter_records(f, 0, end, self.BUFFERSIZE, self.getFilename()):
                yield from decoder.decode(channel, data)
            if leftover:
                yield from decoder.decode(*leftover)
            yield from decoder.flush()

        with f:
            for channel, text in chunks():
                if channels and channel not in channels:
                    continue
                yield text if onlyText else (channel, text)

    def getText(self) -> str:
        return "".join(self.getChunks([STDOUT, STDERR], onlyText=True))

    def getTextWithHeaders(self) -> str:
        return "".join(self.getChunks(onlyText=True))

    def readlines(self) -> list[str]:
        """The stdout lines, each newline-terminated (but maybe the last)."""
        return "".join(self.getChunks([STDOUT], onlyText=True)).splitlines(True)

    def text_bytes(self, start: int, limit: int) -> tuple[bytes, int, bool]:
        """
        Up to C{limit} bytes of the stdout and stderr text from text byte
        C{start} on, as the spool's UTF-8, beginning and ending on character
        boundaries (a C{start} inside a character begins at the next one).
        Returns them, the text offset after them, and whether more text
        follows now.

        Nothing is decoded, and reading starts at the last mark an earlier
        call left at or before C{start}: polling a log costs the new text,
        not the whole log.
        """
        if limit < 4:
            raise ValueError("limit must hold a whole character (4 bytes)")
        f, end, run = self._snapshot()
        leftover = [(*run, None)] if run else []
        i = bisect.bisect_right(self._text_marks, (start, float("inf"))) - 1
        text_pos, file_pos = self._text_marks[i] if i >= 0 else (0, 0)
        wanted = bytearray()
        with f:
            records = iter_records(f, file_pos, end, self.BUFFERSIZE, self.getFilename())
            try:
                for channel, data, next_offset in itertools.chain(records, leftover):
                    if channel == STDOUT or channel == STDERR:
                        if text_pos + len(data) > start:
                            wanted += data[max(0, start - text_pos) :]
                        text_pos += len(data)
                    if next_offset is not None and text_pos >= self._next_mark():
                        self._text_marks.append((text_pos, next_offset))
                    if len(wanted) > limit + 3:
                        break
            except LogFileFormatError:
                # As a stream does: the text before the bad record stands.
                log.err(None, "reading a log's text stopped early")
        skipped = 0
        while skipped < len(wanted) and skipped < 3 and (wanted[skipped] & 0xC0) == 0x80:
            skipped += 1
        more = len(wanted) - skipped > limit
        if more:
            cut = _char_boundary(wanted, skipped + limit)
            body = bytes(wanted[skipped:cut])
        else:
            body = bytes(wanted[skipped:])
        if start > text_pos and not more:
            return b"", text_pos, False
        return body, start + skipped + len(body), more

    def _next_mark(self) -> int:
        """The text offset past which the next mark is left."""
        last = self._text_marks[-1][0] if self._text_marks else 0
        return last + self.TEXT_MARK_SPACING

    def subscribe(self, receiver: Any, catchup: bool) -> None:
        if self.finished:
            return
        self.watchers.append(receiver)
        self._observe()
        if catchup:
            for channel, text in self.getChunks():
                receiver.logChunk(self.step.build, self.step, self, channel, text)

    def unsubscribe(self, receiver: Any) -> None:
        if receiver in self.watchers:
            self.watchers.remove(receiver)
            self._observe()

    def subscribeConsumer(
        self, consumer: ChunkConsumer, clock: IReactorTime | None = None
    ) -> LogFileProducer:
        p = LogFileProducer(self, consumer, clock)
        p.resumeProducing()
        return p

    # writing

    def addEntry(self, channel: int, text: str | bytes) -> None:
        if self._observed:
            self._add_observed(channel, text)
            return
        # The common case, kept to a few operations (L{_store} without the
        # live producers, inlined): text of the run's channel that fits.  A
        # new channel is checked when its run starts.  Text that is not
        # ASCII is kept encoded (see _piece) and marks the run; if it starts
        # a new run, the mark sends the run before it through the general
        # join, which gives the same bytes.
        if text.__class__ is str:
            if not text.isascii():
                text = text.encode()
                self._run_encoded = True
        else:
            text = _as_text(text).encode()
            self._run_encoded = True
        room = self._room - len(text)
        if room < 0 or channel != self._run_channel:
            self._start_run(channel, text)
        else:
            self._run.append(text)
            self._room = room

    def _add_observed(self, channel: int, text: str | bytes) -> None:
        assert not self.finished, "logfile already finished"
        if channel not in _CHANNELS:
            raise ValueError(f"channel number must be a single decimal digit, not {channel!r}")
        text = _as_text(text)
        if self.watchers:
            self._notify_watchers(channel, text)
        piece = _piece(text)
        if self.logMaxSize is not None and channel != HEADER:
            self.nonHeaderLength += len(piece)
            if self.nonHeaderLength > self.logMaxSize:
                self._truncate(channel, text.encode())
                return
        self._store(channel, text, piece)

    def _notify_watchers(self, channel: int, text: str) -> None:
        for w in list(self.watchers):
            try:
                w.logChunk(self.step.build, self.step, self, channel, text)
            except Exception:
                log.err(None, f"status receiver {w!r} failed in logChunk; entry kept")

    def _truncate(self, channel: int, data: bytes) -> None:
        if not self.maxLengthExceeded:
            keep = _char_boundary(data, len(data) - (self.nonHeaderLength - self.logMaxSize))
            head, data = data[:keep], data[keep:]
            if head:
                self._store(channel, head.decode(), head)
            msg = (
                f"\nOutput exceeded {self.logMaxSize} bytes, remaining output has been truncated\n"
            )
            self._store(HEADER, msg, msg)
            self.maxLengthExceeded = True
        if self.logMaxTailSize and data:
            self.tailBuffer.append((channel, data))
            self.tailLength += len(data)
            while self.tailLength > self.logMaxTailSize:
                _, dropped = self.tailBuffer.pop(0)
                self.tailLength -= len(dropped)

    def _store(self, channel: int, text: str, piece: str | bytes) -> None:
        if piece.__class__ is bytes:
            self._run_encoded = True
        room = self._room - len(piece)
        if room < 0 or channel != self._run_channel:
            self._start_run(channel, piece)
        else:
            self._run.append(piece)
            self._room = room
        if self._live:
            for p in list(self._live):
                p.live_entry(channel, text)

    def _start_run(self, channel: int, piece: str | bytes) -> None:
        # Writing the run before it overflows keeps records whole entries:
        # no record is split just to cut off a small remainder.
        if channel not in _CHANNELS:
            raise ValueError(f"channel number must be a single decimal digit, not {channel!r}")
        self._merge()
        self._run_channel = channel
        self._run = [piece]
        self._run_encoded = piece.__class__ is bytes
        self._room = self.chunkSize - len(piece)

    def _merge(self) -> None:
        """Turn the pending run into records."""
        run = self._run
        if not run:
            return
        channel = self._run_channel
        encoded = self._run_encoded
        size = self.chunkSize - self._room
        self._merged_len += size
        self._run = []
        self._run_encoded = False
        self._room = self.chunkSize
        if size <= self.chunkSize:
            run.insert(0, "%d:%d" % (size + 1, channel))
            run.append(",")
            self._add_record(_utf8(run, encoded))
            return
        # Only a single entry larger than chunkSize gets here.
        data = _utf8(run, encoded)
        pos = 0
        while pos < size:
            end = pos + self.chunkSize
            end = size if end >= size else _char_boundary(data, end)
            self._add_record(b"%d:%d%s," % (end - pos + 1, channel, data[pos:end]))
            pos = end

    def _add_record(self, record: bytes) -> None:
        """
        Queue one record; once C{WRITE_BUFFER} bytes are pending, write up
        to the last multiple of it.  A record is queued before any write,
        so a write that fails loses nothing: the next one writes it again,
        at the same offset.
        """
        self._pending.append(record)
        end = self._file_end = self._file_end + len(record)
        if end - self._written >= self.WRITE_BUFFER or len(self._pending) >= _MAX_PIECES:
            self._write_pending(end - end % self.WRITE_BUFFER)

    def _write_pending(self, end: int | None = None) -> None:
        """
        Write the pending records, or their bytes up to file offset C{end}
        if that is past what is written.  Every read of the file comes
        after writing all of them.
        """
        pending = self._pending
        if not pending:
            return
        assert self.openfile is not None
        fd = self.openfile.fileno()
        if self._file_end > self._reserved:
            self._reserve(fd)
        if end is None or end <= self._written:
            end, rest = self._file_end, []
        else:
            pending, rest = _split_tail(pending, self._file_end - end)
        _write_at(fd, pending, self._written, end - self._written)
        self._pending = rest
        self._written = end

    def _reserve(self, fd: int) -> None:
        """
        Once the log holds C{RESERVE_MIN} bytes, reserve disk blocks past
        the end of the file: as much again as it holds, at most
        C{RESERVE_MAX}.  L{finish} gives back what the log did not use.
        """
        if _reserve_blocks is None or self._reserved < 0 or self._file_end < self.RESERVE_MIN:
            return
        ahead = min(self._file_end, self.RESERVE_MAX)
        if _reserve_blocks(fd, self._written, self._file_end + ahead - self._written) == 0:
            self._reserved = self._file_end + ahead
        else:
            self._reserved = -1  # not on this file system: write as it comes

    def addStdout(self, text: str | bytes) -> None:
        self.addEntry(STDOUT, text)

    def addStderr(self, text: str | bytes) -> None:
        self.addEntry(STDERR, text)

    def addHeader(self, text: str | bytes) -> None:
        self.addEntry(HEADER, text)

    def finish(self) -> None:
        """
        Write everything pending and tell watchers, waiters and producers.
        With C{logMaxTailSize}, the kept tail follows a header that says how
        much of it there is.
        """
        if self.finished:
            return
        if self.tailBuffer:
            msg = f"\nFinal {self.tailLength} bytes follow below:\n"
            self._store(HEADER, msg, msg)
            for channel, data in self.tailBuffer:
                self._store(channel, data.decode(), data)
            self.tailBuffer = []
        self._merge()
        if self.openfile is not None:
            self._write_pending()
            if self._reserved > self._file_end:
                os.ftruncate(self.openfile.fileno(), self._file_end)
            for p in self._producers:
                p.own_file()
            self.openfile.close()
            self.openfile = None
        self.finished = True
        self._live = []
        self._observe()
        for p in list(self._producers):
            p.logfileFinished(self)
        watchers, self.finishedWatchers = self.finishedWatchers, []
        for d in watchers:
            d.callback(self)

    def compressLog(self) -> defer.Deferred[None]:
        """
        Compress the finished spool file with C{bz2} or C{gz} in a thread,
        rename it into place, then remove the plain file.  Readers that
        opened the plain file keep reading it.  Other methods keep the file
        as it is.
        """
        suffix = COMPRESSION_SUFFIXES.get(self.compressMethod)
        fn = self.getFilename()
        if suffix is None or not os.path.exists(fn):
            return defer.succeed(None)
        if self._compressing is not None:
            # One compression at a time: both would write the same .tmp file.
            d: defer.Deferred[None] = defer.Deferred()
            self._compressing.addBoth(lambda r: (d.callback(None), r)[1])
            return d
        compressed = fn + suffix + ".tmp"
        opener: Callable[[str, str], IO[bytes]] = (
            bz2.BZ2File if suffix == ".bz2" else gzip.GzipFile  # type: ignore[assignment]
        )

        def compress() -> None:
            with open(fn, "rb") as infile, opener(compressed, "wb") as out:
                while buf := infile.read(1024 * 1024):
                    out.write(buf)
            os.replace(compressed, fn + suffix)
            os.unlink(fn)

        def failed(failure: Any) -> Any:
            log.msg(f"failed to compress {fn}")
            if os.path.exists(compressed):
                os.unlink(compressed)
            return failure

        def done(result: Any) -> Any:
            self._compressing = None
            return result

        self._compressing = threads.deferToThread(compress).addErrback(failed).addBoth(done)
        return self._compressing


class HTMLLogFile(LogFile):
    """An HTML log: the html is one STDERR entry and the log is finished."""

    def __init__(self, parent: Any, name: str, logfilename: str, html: str | bytes) -> None:
        super().__init__(parent, name, logfilename)
        self.addStderr(html)
        self.finish()


class LogFileProducer:
    """
    Streams one L{LogFile} to a consumer, from the start, then live.

    Phase one reads records from the file at this producer's own offset.
    When it reaches the end of what is written it hands over the pending run
    and goes live: the log pushes each new entry through L{logChunk}.
    Pausing in the live phase detaches the producer and keeps just its
    position (file offset plus the bytes of the pending run already sent),
    so resuming re-enters phase one from there.
    """

    paused = False
    subscribed = False
    BUFFERSIZE = LogFile.BUFFERSIZE
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
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.logfile = logfile
        self.consumer: ChunkConsumer | None = consumer
        self._clock = clock
        self._offset = 0
        self._skip = 0
        self._live = False
        self._started = False
        self._records: Iterator[tuple[int, memoryview, int]] | None = None
        self._records_to_eof = False
        self._held: tuple[int, memoryview, int] | None = None
        self._producing = False
        self._call: IDelayedCall | None = None
        self._file: IO[bytes] | None = logfile.getFile()
        # While the log is live the file is the writer's handle, shared by
        # every reader: it must outlive this producer.
        self._owns_file = self._file is not logfile.openfile
        self._decoder = _ChunkDecoder()
        self.subscribed = True
        logfile._producers.append(self)
        consumer.registerProducer(self, True)

    def pauseProducing(self) -> None:
        self.paused = True
        if self._live:
            self._detach()

    def resumeProducing(self) -> None:
        self.paused = False
        if self.consumer is None or self._live or self._call is not None or self._producing:
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
        self.paused = True
        self.consumer = None
        self.done()

    def done(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._live:
            self._detach()
        if self.subscribed:
            self.logfile._producers.remove(self)
            self.subscribed = False
        if self._file is not None and self._owns_file:
            self._file.close()
        self._file = None
        self._records = self._held = None

    def own_file(self) -> None:
        """
        The log is finishing and will close the handle it shared: read on
        through one of this producer's own (reads seek first anyway).
        """
        if self._file is not None and not self._owns_file:
            self._file = open(self.logfile.getFilename(), "rb")
            self._owns_file = True
            self._records = None  # it reads through the handle being closed

    def live_entry(self, channel: int, text: str) -> None:
        """An entry just added to the log; only called while live and unpaused."""
        assert self.consumer is not None
        self.consumer.writeChunk((channel, text))

    def logfileFinished(self, logfile: LogFile) -> None:
        if self._live:
            self._live = False
            self._finish()

    def _detach(self) -> None:
        self._live = False
        self.logfile._live.remove(self)
        self.logfile._observe()
        self._offset = self.logfile._file_end
        self._skip = self.logfile._run_len

    def _produce(self) -> None:
        self._call = None
        self._producing = True
        try:
            self._catch_up()
        except LogFileFormatError:
            log.err(None, "ending a log stream early")
            self._finish()
        finally:
            self._producing = False

    def _catch_up(self) -> None:
        if self.paused or self.consumer is None:
            return
        lf = self.logfile
        budget = self.TURN_BYTES
        # Consecutive records of one channel go out as one chunk: fewer,
        # larger writes.  A record joins the run only once the run before it
        # is written, so the offset never passes unwritten text.
        run: list[bytes] = []
        run_channel = run_len = 0
        while True:
            try:
                record = self._next_record()
            except LogFileFormatError:
                if run:  # the good records before the bad one still go out
                    self._write(run_channel, run)
                raise
            if record is None:
                if run:
                    self._write(run_channel, run)
                if self.consumer is None or self.paused:
                    return
                if lf.finished:
                    for chunk in self._decoder.flush():
                        self.consumer.writeChunk(chunk)
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

    def _next_record(self) -> tuple[int, memoryview, int] | None:
        """
        The record at this producer's offset, or None at the end of what is
        written.  The reader is kept across pauses, so no read is repeated.
        """
        if self._held is not None:
            record, self._held = self._held, None
            return record
        lf = self.logfile
        while True:
            if self._records is None:
                end = None if lf.finished else lf._file_end
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

    def _write(self, channel: int, run: list[bytes]) -> None:
        write_encoded = getattr(self.consumer, "write_encoded", None)
        if write_encoded is not None:
            # A consumer that sends bytes on (the text page) takes them as
            # they are on disk: no decoding to re-encode.
            write_encoded(channel, b"".join(run))
            return
        for chunk in self._decoder.decode(channel, b"".join(run)):
            if self.consumer is None:
                return
            self.consumer.writeChunk(chunk)

    def _go_live(self) -> None:
        lf = self.logfile
        for chunk in self._decoder.flush():
            self.consumer.writeChunk(chunk)  # type: ignore[union-attr]
        if lf._run_len > self._skip:
            # The text already sent ends on an entry, so on a character.
            pending = _utf8(lf._run, lf._run_encoded)[self._skip :].decode()
            self._skip = lf._run_len
            self.consumer.writeChunk((lf._run_channel, pending))  # type: ignore[union-attr]
        if self.paused or self.consumer is None:
            return
        self._live = True
        lf._live.append(self)
        lf._observe()

    def _finish(self) -> None:
        consumer = self.consumer
        self.consumer = None
        self.done()
        if consumer is not None:
            consumer.unregisterProducer()
            consumer.finish()
