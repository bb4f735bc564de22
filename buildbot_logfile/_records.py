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
from typing import IO, NamedTuple

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


class Split(NamedTuple):
    """What L{split_records} found."""

    # (channel, start, stop) of each whole record's text
    records: list[tuple[int, int, int]]
    # where the whole records end: the start of a record cut short, or end
    pos: int
    # bytes the cut record needs from pos; 0 while its length is unknown
    need: int
    # a damaged record at pos; the records before it are good
    error: LogFileFormatError | None = None


def split_records(buf: bytes | bytearray, pos: int, end: int, filename: str, offset: int) -> Split:
    """
    The whole records in C{buf[pos:end]}; C{offset} is the file offset of
    C{buf[0]}, for errors.  Records before a damaged one are still given,
    as 0.8's reader gave them, and the error with them.
    """
    records: list[tuple[int, int, int]] = []
    add, find = records.append, buf.find  # a log has a record per 10 KB or less

    def damaged(reason: str) -> Split:
        return Split(records, pos, 0, LogFileFormatError(filename, offset + pos, reason))

    while True:
        prefix_end = pos + _MAX_LENGTH_DIGITS + 1
        colon = find(b":", pos, prefix_end if prefix_end < end else end)
        if colon < 0:
            rest = buf[pos : min(end, prefix_end)]
            if rest and (len(rest) > _MAX_LENGTH_DIGITS or not rest.isdigit()):
                return damaged("no length prefix")
            return Split(records, pos, 0)
        digits = buf[pos:colon]
        if not digits.isdigit() or digits[0] == ZERO:
            return damaged(f"bad length {bytes(digits)!r}")
        stop = colon + 1 + int(digits)
        if stop >= end:
            return Split(records, pos, stop + 1 - pos)
        channel = buf[colon + 1] - ZERO
        if not 0 <= channel <= 9:
            return damaged("channel is not a digit")
        if buf[stop] != COMMA:
            return damaged("record not terminated by ','")
        add((channel, colon + 2, stop))
        pos = stop + 1


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
    eof = False
    while True:
        view = memoryview(buf)
        split = split_records(buf, 0, len(buf), filename, start)
        for channel, text_start, stop in split.records:
            yield channel, view[text_start:stop], start + stop + 1
        if split.error is not None:
            raise split.error
        pos, need = split.pos, split.need
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
        # A record longer than the buffer: read up to twice what is held,
        # not what its length says, so that a damaged length meets the end
        # of the file before it sets aside that much memory.
        want = max(buffersize, min(need - len(buf), max(len(buf), buffersize)))
        if end is not None:
            want = min(want, end - start - len(buf))
        more = b""
        if want > 0:
            f.seek(start + len(buf))
            more = f.read(want)
        eof = not more
        buf += more


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
