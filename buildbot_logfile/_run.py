"""
0.8's "run": the entries of one channel that wait in memory to become a
record, and how they become one.
"""

from __future__ import annotations

from typing import Any, Protocol

from buildbot_logfile._records import char_boundary
from buildbot_logfile._spool import SpoolWriter
from buildbot_logfile._text_index import TextIndex

# A record's channel is one decimal digit.
CHANNELS = range(10)


def as_text(text: Any) -> str:
    """Log text as C{str}: bytes are UTF-8, undecodable ones replaced."""
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text).decode("utf-8", "replace")
    raise TypeError(f"log text must be str or bytes, not {type(text).__name__}")


class _Settings(Protocol):
    chunkSize: int
    TEXT_MARK_SPACING: int


class RecordRun:
    """
    Entries of one channel accumulate until the channel changes or the run
    reaches C{settings.chunkSize} bytes (read at each entry, as 0.8 did);
    then they become records of C{chunkSize} bytes and what remains, handed
    to the spool writer: 0.8's records, byte for byte.

    The run keeps ASCII text as it is, being its own UTF-8 (a run of it is
    encoded once, as a whole), and other text encoded as it arrives, so
    that it is encoded only once; either way a piece's length is its size.

    Each stdout and stderr record it writes may leave a mark in
    C{text_index}, for paging through the text later.
    """

    def __init__(self, writer: SpoolWriter, settings: _Settings, text_index: TextIndex) -> None:
        self.writer = writer
        self._settings = settings
        self._text_index = text_index
        self._text_merged = 0  # bytes of stdout and stderr text made records
        # No channel: the first entry starts a run.
        self.channel = -1
        self.merged = 0  # bytes of text already made records
        self._pieces: list[str | bytes] = []
        self._encoded = False  # some piece is bytes
        # Bytes of text in the run: those that count towards chunkSize
        # (0.8's runLength), and those held (see append).
        self._counted = self._held = 0

    @property
    def size(self) -> int:
        """Bytes of text in the run."""
        return self._counted + self._held

    def append(self, channel: int, text: str | bytes, hold: bool = False) -> None:
        """
        Add C{text} on C{channel}, or start a new run with it.  This is all
        that appending to an unobserved log costs, so it is kept short.
        C{hold}: text that does not count towards the run's size until it
        becomes records, as 0.8 held its truncation header.
        """
        if text.__class__ is str:
            if not text.isascii():
                text = text.encode()
                self._encoded = True
        else:
            text = as_text(text).encode()
            self._encoded = True
        if channel != self.channel:
            self._start(channel, text)
        else:
            self._pieces.append(text)
        if hold:
            self._held += len(text)
        else:
            counted = self._counted = self._counted + len(text)
            if counted >= self._settings.chunkSize:
                self.merge()

    def _start(self, channel: int, piece: str | bytes) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"channel number must be a single decimal digit, not {channel!r}")
        if self._pieces:
            self.merge()
        self.channel = channel
        self._pieces = [piece]
        self._encoded = piece.__class__ is bytes
        self._counted = self._held = 0

    def merge(self) -> None:
        """Turn the run into records (0.8's C{_merge}); empty text makes none."""
        pieces = self._pieces
        if not pieces:
            return
        channel = self.channel
        encoded = self._encoded
        size = self.size
        chunk_size = max(1, self._settings.chunkSize)
        self.merged += size
        self._pieces = []
        self._encoded = False
        self._counted = self._held = 0
        self.channel = -1
        if not size:
            return
        if size <= chunk_size:
            # The record in one join: the run's text is copied once.
            pieces.insert(0, "%d:%d" % (size + 1, channel))
            pieces.append(",")
            self.writer.add(_join(pieces, encoded))
        else:
            self.writer.add(_join(_records(channel, pieces, size, chunk_size), encoded))
        if channel < 2:  # stdout, stderr
            self._text_merged += size
            self._text_index.passed(
                self._text_merged, self.writer.end, self._settings.TEXT_MARK_SPACING
            )

    def text(self, sent: int = 0) -> bytes:
        """The run's text as UTF-8, after its first C{sent} bytes."""
        return _join(self._pieces, self._encoded)[sent:] if self._pieces else b""


def _join(pieces: list[str | bytes], encoded: bool) -> bytes:
    """Pieces as one UTF-8 string; C{encoded}: some are bytes."""
    if not encoded:
        return "".join(pieces).encode()  # type: ignore[arg-type]
    return b"".join([p if p.__class__ is bytes else p.encode() for p in pieces])  # type: ignore[union-attr]


def _records(
    channel: int, pieces: list[str | bytes], size: int, chunk_size: int
) -> list[str | bytes]:
    """
    Records of C{chunk_size} bytes of C{pieces}' C{size} bytes of text, the
    last maybe fewer, as pieces for one join, headers and commas included:
    a piece is cut only where a record ends, and between characters (a
    record ends short of one that would not fit, or holds one whole
    character when C{chunk_size} is smaller).  ASCII pieces are C{str},
    others UTF-8.
    """
    last = pieces[-1]
    before = size - len(last)
    if before < chunk_size and last.__class__ is str:
        # The usual run: its last entry took it past chunk_size, and may
        # be cut anywhere.
        cut = chunk_size - before
        out: list[str | bytes] = [
            "%d:%d" % (chunk_size + 1, channel),
            *pieces[:-1],
            last[:cut],
            ",",
        ]
        for start in range(cut, len(last), chunk_size):
            more = last[start : start + chunk_size]
            out += ["%d:%d" % (len(more) + 1, channel), more, ","]
        return out
    out = []
    record: list[str | bytes] = []
    used = 0
    for piece in pieces:
        while used + len(piece) > chunk_size:
            room = chunk_size - used
            cut = room if piece.__class__ is str else char_boundary(piece, room)  # type: ignore[arg-type]
            if cut == 0 and used == 0:
                cut = 1
                while cut < len(piece) and (piece[cut] & 0xC0) == 0x80:  # type: ignore[operator]
                    cut += 1
            if cut:
                record.append(piece[:cut])
                used += cut
                piece = piece[cut:]
            out += ["%d:%d" % (used + 1, channel), *record, ","]
            record, used = [], 0
        if piece:
            record.append(piece)
            used += len(piece)
    if record:
        out += ["%d:%d" % (used + 1, channel), *record, ","]
    return out
