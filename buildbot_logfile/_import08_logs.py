"""
0.8 log files into Buildbot 4 log chunks, a piece at a time.

An 0.8 log file (plain, C{.bz2} or C{.gz}) is read record by record
(L{iter_records}); each record's text is cut into lines by Buildbot's rules
for its stream (L{Lines}: carriage returns and cursor codes end lines, a
line over 4096 characters is cut every 4096), so the lines are the ones
Buildbot stores of a worker's output.  The
prefixed lines are packed into chunks as C{compressLog} leaves a finished
log: at most C{MAX_CHUNK_SIZE} bytes and C{MAX_CHUNK_LINES} lines each,
compressed with the master's method where that makes them smaller.
Nothing holds more than a chunk and a record of text.
"""

from __future__ import annotations

import bz2
import io
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from buildbot.db.logs import LogsConnectorComponent
from buildbot.util.lineboundaries import LineBoundaryFinder as _Finder

from buildbot_logfile import _spool
from buildbot_logfile._records import ChunkDecoder, LogFileFormatError, iter_records

STREAM_OF_CHANNEL = {0: "o", 1: "e", 2: "h"}
READ_SIZE = 256 * 1024
MAX_CHUNK_SIZE = LogsConnectorComponent.MAX_CHUNK_SIZE
MAX_CHUNK_LINES = LogsConnectorComponent.MAX_CHUNK_LINES

# StreamLog's prefixing: a stream letter at the start of every line.
_LINE_START = re.compile("^", re.M)

# (first_line, last_line, content, compressed)
Chunk = tuple[int, int, bytes, int]


class LogReadError(Exception):
    """The log file could not be read to its end; what was read stands."""


class LogUnreadable(Exception):
    """The log file cannot be opened (its permissions, the file system): none of it was read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class LogSource:
    """Which file holds a log, and what is odd about its neighbours."""

    path: str | None
    notes: list[tuple[str, str]]  # (file, what is odd about it)


def find_log_file(folder: str, filename: str) -> LogSource:
    """
    The file 0.8 would read for C{filename} (C{.bz2}, then C{.gz}, then
    plain, as 0.8's C{getFile} looked: a compression renamed its whole
    result into place before it removed the plain file), and a note when
    only a C{.bz2.tmp} or C{.gz.tmp} that a compression cut short holds
    it.  Such a leftover beside the log's file is ignored: it holds
    nothing the file does not.  None, with a note, for a link to a file
    outside the builder's folder.
    """
    notes: list[tuple[str, str]] = []
    base = os.path.join(folder, filename)
    for suffix in (".bz2", ".gz", "", ".bz2.tmp", ".gz.tmp"):
        if os.path.isfile(base + suffix):
            found = base + suffix
            # 0.8 wrote its logs into the builder's folder.  A link out of
            # it (to a file of root's, for a run as root) is not read into
            # a database whose pages show it.
            target = os.path.realpath(found)
            home = os.path.realpath(folder)
            if os.path.commonpath([target, home]) != home:
                outside = f"a link to {target}, outside the builder's folder; not read, log skipped"
                notes.append((found, outside))
                return LogSource(None, notes)
            if suffix.endswith(".tmp"):
                notes.append((found, "a compression cut short; read as far as it goes"))
            return LogSource(found, notes)
    return LogSource(None, notes)


def _open(path: str) -> IO[bytes]:
    if path.endswith((".bz2", ".bz2.tmp")):
        return cast(IO[bytes], _Inflating(path, bz2.BZ2Decompressor, b"BZh"))
    if path.endswith((".gz", ".gz.tmp")):
        return cast(IO[bytes], _Inflating(path, _gzip_decompressor, b"\x1f\x8b"))
    return open(path, "rb")


def _gzip_decompressor() -> Any:
    return zlib.decompressobj(16 + zlib.MAX_WBITS)


class _Inflating(io.RawIOBase):
    """
    A compressed log file, read front to back, inflated as far as it is
    whole: what was inflated before damage (a stream cut short, corrupt
    data, garbage after its end) is handed over, then the read raises.
    Python's C{BZ2File} and C{GzipFile} drop what the read that met the
    damage had inflated, up to the whole of a L{READ_SIZE} read; here
    corrupt data costs what one L{PIECE} of it inflates to, a stream cut
    short nothing.  Streams one after another (as C{cat} joins them) are
    read as one, as they are.
    """

    # Compressed bytes inflated at a time, and the most one inflation gives.
    PIECE = 16 * 1024
    MOST = 1024 * 1024

    def __init__(self, path: str, decompressor: Callable[[], Any], magic: bytes) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - its own, closed with it
        self._new = decompressor
        self._magic = magic
        self._blocks: Iterator[bytes] | None = self._inflated()
        self._out = bytearray()
        self._position = 0
        self._failure: Exception | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # to where it is: iter_records seeks before each read

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or offset != self._position:
            raise io.UnsupportedOperation("a compressed log is read front to back")
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        want = -1 if size is None else size
        while (want < 0 or len(self._out) < want) and self._blocks is not None:
            try:
                self._out += next(self._blocks)
            except StopIteration:
                self._blocks = None
            except (OSError, EOFError, zlib.error) as e:
                self._blocks = None
                self._failure = e
        if not self._out and self._failure is not None:
            raise self._failure
        taken = len(self._out) if want < 0 else min(want, len(self._out))
        data = bytes(self._out[:taken])
        del self._out[:taken]
        self._position += taken
        return data

    def _inflated(self) -> Iterator[bytes]:
        """The file inflated, L{MOST} bytes at most at a time; damage raises."""
        inflater = self._new()
        data = b""
        while True:
            if not data:
                # bz2 may hold inflated bytes it has not given yet
                holding = not inflater.eof and not getattr(inflater, "needs_input", True)
                data = self._file.read(self.PIECE)
                if not data and not holding:
                    if not inflater.eof:
                        raise EOFError("compressed stream cut short")
                    return
            if inflater.eof:
                # gzip's own reader takes zeros after a stream as padding
                data = data.lstrip(b"\0")
                if not data:
                    continue
                if not data.startswith(self._magic[: len(data)]):
                    raise OSError("data after the end of the compressed stream")
                inflater = self._new()
            out = inflater.decompress(data, self.MOST)
            # What it did not take: zlib's past the limit, or after the stream.
            data = (
                inflater.unused_data if inflater.eof else getattr(inflater, "unconsumed_tail", b"")
            )
            yield out

    def close(self) -> None:
        if getattr(self, "_file", None) is not None:  # None if it could not be opened
            self._file.close()
        super().close()


class LogFileChunks:
    """
    A log file's C{(channel, text)} entries in order, when iterated.
    Damage (a record cut short, a corrupt record, a broken compressed
    stream) ends the entries with L{LogReadError} after everything before
    it.  C{text_bytes} counts the text's bytes as the file holds them, as
    0.8 counted a log's C{length}.

    Each channel is decoded on its own: the worker's stdout and stderr
    were separate byte streams, and a UTF-8 character of one may be split
    by records of the other.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.text_bytes = 0

    def __iter__(self) -> Iterator[tuple[int, str]]:
        decoders: dict[int, ChunkDecoder] = {}
        try:
            opened = _open(self.path)
        except OSError as e:
            raise LogUnreadable(self.path, f"cannot be opened ({e.strerror or e})") from e
        try:
            with opened as f:
                for channel, data, _ in iter_records(f, 0, None, READ_SIZE, self.path, strict=True):
                    self.text_bytes += len(data)
                    decoder = decoders.get(channel)
                    if decoder is None:
                        decoder = decoders[channel] = ChunkDecoder()
                    yield from decoder.decode(channel, data)
        except LogFileFormatError as e:
            yield from _flushed(decoders)
            raise LogReadError(f"{e.reason} at byte {e.offset}") from e
        except _spool.READ_ERRORS as e:  # a broken compressed stream, the file system
            yield from _flushed(decoders)
            raise LogReadError(f"{type(e).__name__}: {e}") from e
        yield from _flushed(decoders)


def _flushed(decoders: dict[int, ChunkDecoder]) -> Iterator[tuple[int, str]]:
    """What the decoders hold at the end: partial characters, as U+FFFD."""
    for decoder in decoders.values():
        yield from decoder.flush()


class ChunkPacker:
    """
    Whole, prefixed lines in; chunks out to C{emit}, numbered from line 0.
    C{text_bytes} counts the log's text (UTF-8) as the lines carry it.
    """

    def __init__(self, compression: str, emit: Callable[[Chunk], None]) -> None:
        self.compressor_id, self.compressor = LogsConnectorComponent.COMPRESSION_MODE.get(
            compression, (LogsConnectorComponent.NO_COMPRESSION_ID, None)
        )
        if self.compressor is None or not self.compressor.available:
            self.compressor_id, self.compressor = LogsConnectorComponent.NO_COMPRESSION_ID, None
        self.emit = emit
        self.parts: list[bytes] = []
        self.size = 0
        self.lines = 0
        self.first_line = 0

    @property
    def num_lines(self) -> int:
        return self.first_line + self.lines

    def add(self, text: str) -> None:
        """Add whole lines (C{text} ends with a newline)."""
        data = text.encode("utf-8")
        count = data.count(b"\n")
        if self.size + len(data) <= MAX_CHUNK_SIZE and self.lines + count <= MAX_CHUNK_LINES:
            self.parts.append(data)
            self.size += len(data)
            self.lines += count
            return
        start = 0
        while start < len(data):
            end = data.index(b"\n", start) + 1
            if self.lines and (
                self.size + end - start > MAX_CHUNK_SIZE or self.lines >= MAX_CHUNK_LINES
            ):
                self.flush()
            self.parts.append(data[start:end])
            self.size += end - start
            self.lines += 1
            start = end

    def flush(self) -> None:
        """Emit the chunk being packed, if any."""
        if not self.lines:
            return
        raw = b"".join(self.parts)[:-1]  # chunks omit their last newline
        content, compressed = raw, LogsConnectorComponent.NO_COMPRESSION_ID
        if self.compressor is not None:
            packed = self.compressor.dumps(raw)
            if len(packed) < len(raw):
                content, compressed = packed, self.compressor_id
        last = self.first_line + self.lines - 1
        self.emit((self.first_line, last, content, compressed))
        self.first_line = last + 1
        self.parts = []
        self.size = self.lines = 0


class Lines:
    """
    One stream's text cut into whole lines by Buildbot's rules: its line
    ends (C{\\r\\n}, a lone C{\\r}, cursor codes, backspaces) become
    newlines, and a line over C{MAX_LINELENGTH} characters is cut every
    C{MAX_LINELENGTH}, from its start.  Not Buildbot's C{LineBoundaryFinder}
    itself: once a line ran past that length, it took the next text as it
    came and cut it every 4096 characters, newlines or not, so an 0.8
    record after such a line would lose its lines.
    """

    MAX_LINELENGTH = _Finder.MAX_LINELENGTH

    def __init__(self) -> None:
        self.partial = ""

    def append(self, text: str) -> str | None:
        """The lines C{text} completes, each ending in a newline, or None."""
        # Again over the partial line: a line end may straddle two texts.
        text = _Finder.newline_re.sub("\n", self.partial + text)
        end = text.rfind("\n") + 1
        lines, partial = text[:end], text[end:]
        if len(lines) > self.MAX_LINELENGTH:
            split = lines.split("\n")
            if max(map(len, split)) > self.MAX_LINELENGTH:
                lines = "\n".join([self._cut(line) for line in split])
        if len(partial) > self.MAX_LINELENGTH:
            # The pieces of a line this long are known already: out with
            # them (at most a piece waits, whatever the line's length).
            keep = len(partial) - (len(partial) - 1) % self.MAX_LINELENGTH - 1
            lines += self._cut(partial[:keep]) + "\n"
            partial = partial[keep:]
        self.partial = partial
        return lines or None

    def flush(self) -> str | None:
        """The last line, ended, if the text did not end one."""
        return self.append("\n") if self.partial else None

    def _cut(self, line: str) -> str:
        """C{line} as lines of C{MAX_LINELENGTH} characters, the last maybe fewer."""
        size = self.MAX_LINELENGTH
        if len(line) <= size:
            return line
        return "\n".join([line[i : i + size] for i in range(0, len(line), size)])


class StreamLines:
    """
    A stream log as C{StreamLog} builds it: the lines of each stream
    (L{Lines}), prefixed with the stream's letter.
    """

    def __init__(self, packer: ChunkPacker) -> None:
        self.packer = packer
        self.finders: dict[str, Lines] = {}
        self.text_bytes = 0

    def add(self, channel: int, text: str) -> None:
        stream = STREAM_OF_CHANNEL[channel]
        finder = self.finders.get(stream)
        if finder is None:
            finder = self.finders[stream] = Lines()
        self.text_bytes += len(text) if text.isascii() else len(text.encode("utf-8"))
        self._lines(stream, finder.append(text))

    def _lines(self, stream: str, lines: str | None) -> None:
        if lines is not None:
            self.packer.add(_LINE_START.sub(stream, lines)[:-1])

    def finish(self) -> None:
        for stream, finder in self.finders.items():
            self._lines(stream, finder.flush())
        self.packer.flush()


class PlainLines:
    """An HTML (or text) log as C{PlainLog} builds it: lines without a prefix."""

    def __init__(self, packer: ChunkPacker) -> None:
        self.packer = packer
        self.finder = Lines()
        self.text_bytes = 0

    def add(self, text: str) -> None:
        self.text_bytes += len(text.encode("utf-8"))
        lines = self.finder.append(text)
        if lines is not None:
            self.packer.add(lines)

    def finish(self) -> None:
        lines = self.finder.flush()
        if lines is not None:
            self.packer.add(lines)
        self.packer.flush()


def discard(_: Chunk) -> None:
    """An C{emit} for a dry run: chunks are made and dropped."""
