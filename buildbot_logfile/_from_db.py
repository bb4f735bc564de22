"""
Serving a log from the database when its spool file cannot: a producer for
the pages' consumers, and text pages by byte offset.

The spool is a cache; when it fails (a full disk, a read-only directory, a
damaged file) the log's mirror goes on reading the database, and these
read the same lines the mirror does, up to where it has read, so a page
never shows more than receivers have been told, nor less.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.python import log

from buildbot_logfile._producer import end_stream
from buildbot_logfile._text_index import page_of

if TYPE_CHECKING:
    from buildbot_logfile._mirror import LogMirror
    from buildbot_logfile._producer import ChunkConsumer

_TEXT_CHANNELS = (0, 1)  # stdout and stderr

# Text pages leave a mark (line, text offset) about this often.
MARK_SPACING = 1024 * 1024


class DatabaseLogProducer:
    """
    Streams one log's lines from the database to a consumer, as
    C{LogFileProducer} streams a spool file: from the start, then as the
    mirror reads more, until the log is complete.  It reads a batch of
    lines at a time and holds at most one batch, paused or not.
    """

    paused = False

    def __init__(self, mirror: LogMirror, consumer: ChunkConsumer) -> None:
        self._mirror = mirror
        self.consumer: ChunkConsumer | None = consumer
        self._line = 0  # the next line to read
        self._chunks: deque[tuple[int, str]] = deque()
        self._busy: defer.Deferred[Any] | None = None  # a read or a wait
        consumer.registerProducer(self, True)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._pump()

    def stopProducing(self) -> None:
        self.consumer = None
        if self._busy is not None:
            busy, self._busy = self._busy, None
            busy.cancel()

    def _pump(self) -> None:
        mirror = self._mirror
        while self.consumer is not None and not self.paused:
            if self._chunks:
                self.consumer.writeChunk(self._chunks.popleft())
                continue
            if self._busy is not None:
                return
            if self._line < mirror.lines:
                d = mirror.reader.read_lines(mirror.logid, self._line, mirror.lines - 1)
                self._wait(d.addCallback(self._read))
                return
            if mirror.complete:
                consumer, self.consumer = self.consumer, None
                assert mirror.logfile is not None
                end_stream(consumer, mirror.logfile.cut)
                return
            self._wait(mirror.wait_for_progress())
            return

    def _wait(self, d: defer.Deferred[Any]) -> None:
        self._busy = d

        def done(result: Any) -> None:
            if self._busy is d:
                self._busy = None
                self._pump()

        def failed(failure: Any) -> None:
            if self._busy is d:
                self._busy = None
                self._abort(failure)

        d.addCallbacks(done, failed)

    def _read(self, text: str) -> None:
        count = text.count("\n")
        if not count:
            raise RuntimeError(
                f"log {self._mirror.logid}: line {self._line} is not in the database"
            )
        self._line += count
        self._chunks.extend(self._mirror.chunks_of(text))

    def _abort(self, failure: Any) -> None:
        log.err(failure, f"ending the stream of log {self._mirror.logid} from the database")
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            end_stream(consumer, failure.value)


class DatabaseText:
    """
    Pages of a log's stdout and stderr text by byte offset, read from the
    database; marks left along the way let a poll start near its offset.
    """

    def __init__(self) -> None:
        self._marks: list[tuple[int, int]] = []  # (text offset, line)

    async def text_bytes(
        self, mirror: LogMirror, start: int, limit: int
    ) -> tuple[bytes, int, bool]:
        """As C{LogFile.text_bytes}, up to the lines the mirror has read."""
        i = bisect.bisect_right(self._marks, (start, float("inf"))) - 1
        text_pos, line = self._marks[i] if i >= 0 else (0, 0)
        next_mark = (self._marks[-1][0] if self._marks else 0) + MARK_SPACING
        wanted = bytearray()
        last = mirror.lines
        while line < last and len(wanted) <= limit + 3:
            text = await mirror.reader.read_lines(mirror.logid, line, last - 1)
            count = text.count("\n")
            if not count:
                raise RuntimeError(f"log {mirror.logid}: line {line} is not in the database")
            for channel, chunk in mirror.chunks_of(text):
                if channel in _TEXT_CHANNELS:
                    data = chunk.encode()
                    if text_pos + len(data) > start:
                        wanted += data[max(0, start - text_pos) :]
                    text_pos += len(data)
            line += count
            if text_pos >= next_mark:
                self._marks.append((text_pos, line))
                next_mark = text_pos + MARK_SPACING
        return page_of(wanted, start, text_pos, limit, unread=line < last)
