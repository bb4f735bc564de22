"""
The spool file's record format: 0.8's netstrings, C{<len>:<channel><text>,}
where C{len} counts the channel digit and the text's bytes.

Writing a record is one line (L{encode_record}); reading them back, from a
file that a writer and other readers share, is L{iter_records}.
L{ChunkDecoder} turns record bytes into text the way files written by 0.8
need it.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import IO

# A record's length prefix longer than this cannot come from a sane file.
_MAX_LENGTH_DIGITS = 12

COMMA = 44  # ord(",")
ZERO = 48  # ord("0")


class LogFileFormatError(Exception):
    """A spool file holds something that is not a 0.8 netstring record."""

    def __init__(self, filename: str, offset: int, reason: str) -> None:
        super().__init__(f"{filename}: corrupt log record at byte {offset}: {reason}")
        self.filename = filename
        self.offset = offset
        self.reason = reason


def encode_record(channel: int, data: bytes) -> bytes:
    """One record holding C{data} (UTF-8) on C{channel}."""
    return b"%d:%d%s," % (len(data) + 1, channel, data)


def char_boundary(data: bytes | bytearray, end: int) -> int:
    """
    The largest offset <= C{end} (< C{len(data)}) that does not fall inside
    a UTF-8 character, maybe 0; C{end} itself where the bytes before it
    are not UTF-8.
    """
    i = end
    while i > 0 and i > end - 3 and (data[i] & 0xC0) == 0x80:
        i -= 1
    return end if (data[i] & 0xC0) == 0x80 else i


def iter_records(
    f: IO[bytes],
    offset: int,
    end: int | None,
    buffersize: int,
    filename: str,
    *,
    strict: bool = False,
) -> Iterator[tuple[int, memoryview, int]]:
    """
    Parse records from C{f}, yielding C{(channel, data, next_offset)} with
    C{data} a view of the bytes read (no copy per record).

    C{f} may be shared with other readers, so every read seeks to this
    reader's own offset first.  Reading stops at C{end} (when given: where
    the writer's records end) or at end of file, where a record cut short
    by a crash mid-write ends the iteration quietly (unless C{strict}: a
    file that must be whole).  Anything else that is not a record raises
    L{LogFileFormatError}.
    """
    buf = b""
    start = offset  # file offset of buf[0]
    need = 0  # bytes of buf the record at its head needs, when known
    eof = False
    while True:
        pos = 0
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
            channel = buf[colon + 1] - ZERO
            if not 0 <= channel <= 9:
                raise LogFileFormatError(filename, start + pos, "channel is not a digit")
            if buf[stop] != COMMA:
                raise LogFileFormatError(filename, start + pos, "record not terminated by ','")
            yield channel, view[colon + 2 : stop], start + stop + 1
            pos = stop + 1
        buf = buf[pos:]
        start += pos
        if eof:
            if buf and (end is not None or strict):
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


class ChunkDecoder:
    """
    Turns record bytes into C{str}.  A file written by 0.8 may split a
    UTF-8 character between two records of one channel; the incremental
    decoder carries the partial character over, and only bytes that are not
    UTF-8 at all become U+FFFD.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._channel: int | None = None

    def decode(self, channel: int, data: bytes | memoryview) -> list[tuple[int, str]]:
        """The chunks that C{data} completes; a partial character waits."""
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

    @property
    def holding(self) -> bool:
        """Whether the start of a character waits for the bytes that end it."""
        return bool(self._decoder.getstate()[0])

    def flush(self) -> list[tuple[int, str]]:
        """What is left: a partial character at the end, as U+FFFD."""
        rest = self._decoder.decode(b"", True)
        return [(self._channel, rest)] if rest and self._channel is not None else []
