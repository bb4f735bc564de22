"""
The pages of a finished log, made off the reactor thread.

A finished log's spool file no longer changes, so its page needs none of
L{LogFileProducer}'s care for a writer: a pool thread reads the file in
large blocks, inflates it (C{_spool.GzipReader}), parses the records and
makes the page's bytes -- the text page copies the stdout and stderr
records out as they are on disk; the HTML page wraps text that holds
nothing to escape in its span as bytes, and renders the rest as the live
page does.  The reactor only writes each block: its turn per block costs
the same however the log is compressed or coloured.

One block is read ahead while the client takes the one before, so reading
and sending overlap on two cores; no more, so a client holds at most two
blocks and the transport's buffer, whatever the log's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from twisted.internet import defer, threads
from twisted.python import log

from buildbot_logfile import _spool
from buildbot_logfile._records import ChunkDecoder, iter_records
from buildbot_logfile._render import AnsiHTMLRenderer
from buildbot_logfile.logfile import STDERR, STDOUT, HTMLLogFile

if TYPE_CHECKING:
    from buildbot_logfile._consumers import RequestConsumer
    from buildbot_logfile._lookup import OpenLog

# Bytes of records a thread turn reads: large enough that the reactor's
# turn per block (one write) is noise, small enough for a hundred clients.
BLOCK = 1024 * 1024
# The HTML page puts at most this much text in one span, as the live
# producer's runs do (LogFileProducer.RUN_BYTES).
SPAN_BYTES = 256 * 1024

_TEXT_CHANNELS = (STDOUT, STDERR)
_SPAN_END = b"</span>"


class PageBlocks:
    """
    A finished log's page body, block by block; used by one thread at a
    time.  C{renderer} None makes the text page (stdout and stderr as
    they are), else the HTML page's spans.
    """

    def __init__(self, path: str, renderer: AnsiHTMLRenderer | None) -> None:
        self.path = path
        self.renderer = renderer
        self._decoder = ChunkDecoder()
        self._file: IO[bytes] | None = None
        self._records: Iterator[tuple[int, memoryview, int]] | None = None
        self._ended = False
        self._run: list[memoryview] = []
        self._run_channel = self._run_size = 0

    def next_block(self) -> bytes:
        """The next block of the body, C{b""} at its end.  Raises C{_spool.READ_ERRORS}."""
        if self._ended:
            return b""
        if self._records is None:
            self._file = _spool.open_spool(self.path)
            self._records = iter_records(self._file, 0, None, BLOCK, self.path, strict=True)
        # A block of records may hold no text for the page (headers only).
        while True:
            if self.renderer is None:
                block = self._text_block(self._records)
            else:
                block = self._html_block(self._records, self.renderer)
            if block or self._ended:
                return block

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._records = None
        self._ended = True

    def _text_block(self, records: Iterator[tuple[int, memoryview, int]]) -> bytes:
        pieces: list[memoryview] = []
        size = 0
        for channel, data, _ in records:
            if channel in _TEXT_CHANNELS:
                pieces.append(data)
            size += len(data)
            if size >= BLOCK:
                break
        else:
            self._ended = True
        return b"".join(pieces)

    def _html_block(
        self, records: Iterator[tuple[int, memoryview, int]], renderer: AnsiHTMLRenderer
    ) -> bytes:
        # A run of one channel's records becomes a span; the run carries
        # over from block to block, so the spans do not depend on BLOCK.
        out: list[bytes | memoryview] = []
        size = 0
        for channel, data, _ in records:
            if self._run and (channel != self._run_channel or self._run_size >= SPAN_BYTES):
                size += self._end_run(out, renderer)
            self._run.append(data)
            self._run_channel = channel
            self._run_size += len(data)
            if size >= BLOCK:
                return b"".join(out)
        self._end_run(out, renderer)
        for channel, text in self._decoder.flush():
            out.append(renderer.render(channel, text).encode())
        self._ended = True
        return b"".join(out)

    def _end_run(self, out: list[bytes | memoryview], renderer: AnsiHTMLRenderer) -> int:
        """Append the run's spans to C{out}; the run's size."""
        data, channel, size = b"".join(self._run), self._run_channel, self._run_size
        self._run, self._run_size = [], 0
        if not data:
            return 0
        if (
            data.isascii()
            and not self._decoder.holding
            and b"\x1b" not in data
            and b"&" not in data
            and b"<" not in data
            and b">" not in data
        ):
            # Nothing to decode, parse or escape (escape_text's three
            # characters): the span wraps the bytes as they are.
            out += [renderer.open_tag(channel), data, _SPAN_END]
            return size
        for chunk_channel, text in self._decoder.decode(channel, data):
            out.append(renderer.render(chunk_channel, text).encode())
        return size


class FinishedPage:
    """
    Sends a finished log's page body (then C{trailer}) to a twisted.web
    request, as a streaming producer registered with it: the request
    pauses it while the client is behind and stops it when the client
    goes.  L{done} fires once all is written; cancelling it stops.

    If the spool fails before the first block is written, the log is
    marked so and C{fallback} is called: it streams the page another way
    (from the database) and returns a Deferred that L{done} follows.
    """

    def __init__(
        self,
        request: Any,
        blocks: PageBlocks,
        trailer: bytes,
        fail: Callable[[Exception], None],
        fallback: Callable[[], defer.Deferred[None]],
    ) -> None:
        self.request = request
        self.blocks = blocks
        self.trailer = trailer
        self._fail = fail
        self._fallback = fallback
        self.done: defer.Deferred[None] = defer.Deferred(self._cancel)
        self.paused = False
        self._stopped = False
        self._reading = False
        self._held: bytes | None = None
        self._wrote = False
        self._instead: defer.Deferred[None] | None = None

    def start(self) -> defer.Deferred[None]:
        self.request.registerProducer(self, True)
        self._read_ahead()
        return self.done

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        held, self._held = self._held, None
        if held is not None:
            self._deliver(held)

    def stopProducing(self) -> None:
        self._stopped = True
        self._held = None
        if not self._reading:
            self.blocks.close()

    def _cancel(self, _: defer.Deferred[None]) -> None:
        if self._instead is not None:
            self._instead.cancel()
        else:
            self.stopProducing()

    def _read_ahead(self) -> None:
        if self._reading or self._held is not None or self._stopped:
            return
        self._reading = True
        threads.deferToThread(self.blocks.next_block).addCallbacks(self._got, self._failed)

    def _got(self, block: bytes) -> None:
        self._reading = False
        if self._stopped:
            self.blocks.close()
        elif self.paused:
            self._held = block
        else:
            self._deliver(block)

    def _deliver(self, block: bytes) -> None:
        if not block:
            self._end()
            return
        self._wrote = True
        self.request.write(block)
        # Even when the write paused this producer: the next block is made
        # while the transport sends this one.
        self._read_ahead()

    def _end(self) -> None:
        self._stopped = True
        self.blocks.close()
        self.request.unregisterProducer()
        if self.trailer:
            self.request.write(self.trailer)
        if not self.done.called:
            self.done.callback(None)

    def _failed(self, failure: Any) -> None:
        self._reading = False
        self.blocks.close()
        if self._stopped:
            return
        self._stopped = True
        self.request.unregisterProducer()
        if not failure.check(*_spool.READ_ERRORS):
            log.err(failure, f"while reading {self.blocks.path} for a page")
        else:
            self._fail(failure.value)
        if self._wrote:
            # Part of the page is out: the client must see it unfinished.
            # Klein cancels done once the connection is gone.
            self.request.loseConnection()
            return
        self._instead = self._fallback()
        self._instead.chainDeferred(self.done)


def serve(request: Any, opened: OpenLog, consumer: RequestConsumer, html: bool) -> Any:
    """
    Send the page of a finished log whose spool holds it off the reactor
    thread; C{consumer} is the page's consumer, for its trailer and for
    streaming another way if the spool fails.  None if the log is not
    one of those: the caller streams it itself.
    """
    lf = opened.logfile
    if lf is None or not lf.isFinished() or not lf.spooled or isinstance(lf, HTMLLogFile):
        return None

    def fallback() -> defer.Deferred[None]:
        opened.stream(consumer)
        return consumer.done

    blocks = PageBlocks(lf.getFilename(), AnsiHTMLRenderer() if html else None)
    return FinishedPage(request, blocks, consumer.trailer, lf.mark_spool_failed, fallback).start()
