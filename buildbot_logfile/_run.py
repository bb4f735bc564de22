"""
0.8's "run": the entries of one channel that wait in memory to become a
record, and how they become one.
"""

from __future__ import annotations

from typing import Any, Protocol

from buildbot_logfile._records import char_boundary, encode_record
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
        self.size = 0  # bytes of text in the run
        self._held = 0  # of which held (see append)

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
            self.size += len(text)
        if hold:
            self._held += len(text)
        elif self.size - self._held >= self._settings.chunkSize:
            self.merge()

    def _start(self, channel: int, piece: str | bytes) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"channel number must be a single decimal digit, not {channel!r}")
        self.merge()
        self.channel = channel
        self._pieces = [piece]
        self._encoded = piece.__class__ is bytes
        self.size = len(piece)
        self._held = 0

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
        self.size = self._held = 0
        self.channel = -1
        if not size:
            return
        if size <= chunk_size:
            # The record in one join: the run's text is copied once.
            pieces.insert(0, "%d:%d" % (size + 1, channel))
            pieces.append(",")
            self.writer.add(_join(pieces, encoded))
        else:
            self._split(channel, _join(pieces, encoded), size, chunk_size)
        if channel < 2:  # stdout, stderr
            self._text_merged += size
            self._text_index.passed(
                self._text_merged, self.writer.end, self._settings.TEXT_MARK_SPACING
            )

    def _split(self, channel: int, data: bytes, size: int, chunk_size: int) -> None:
        """Records of C{chunk_size} bytes, cut between characters, and what remains."""
        pos = 0
        while pos < size:
            end = pos + chunk_size
            end = size if end >= size else char_boundary(data, end)
            if end <= pos:  # a chunk_size smaller than one character
                end = pos + 1
                while end < size and (data[end] & 0xC0) == 0x80:
                    end += 1
            self.writer.add(encode_record(channel, data[pos:end]))
            pos = end

    def text(self, sent: int = 0) -> bytes:
        """The run's text as UTF-8, after its first C{sent} bytes."""
        return _join(self._pieces, self._encoded)[sent:] if self._pieces else b""


def _join(pieces: list[str | bytes], encoded: bool) -> bytes:
    """Pieces as one UTF-8 string; C{encoded}: some are bytes."""
    if not encoded:
        return "".join(pieces).encode()  # type: ignore[arg-type]
    return b"".join([p if p.__class__ is bytes else p.encode() for p in pieces])  # type: ignore[union-attr]
