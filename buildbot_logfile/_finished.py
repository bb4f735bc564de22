"""
The pages of a finished log, sent the way twisted.web.static.File sends
a file.

A finished log's spool no longer changes, so its page needs none of
L{LogFileProducer}'s care for a writer.  L{FinishedPage} reads the spool
a block at a time, as static.File reads a file, into a buffer it keeps
(inflating as it reads, if the spool is compressed), and writes the page
bytes of each block's whole records -- the text page copies the stdout
and stderr records out as they are on disk; the HTML page wraps text
that needs no decoding in its span as bytes, and renders the rest as the
live page does.

Measured on the benchmark's two cores, while the client takes the
other one (bench_web):
 - On the reactor thread: a block costs its read, inflate and copies,
   about what static.File's turn costs (ISA-L inflates 64 KiB in a few
   dozen microseconds).  A pool thread that read ahead, as this module
   once did, or that inflated one buffer while the reactor sent the
   other, cost a fifth to a third more CPU -- handoffs and the GIL --
   and the page was no faster.
 - One buffer for every block: a fresh buffer per block cost the kernel
   a page fault per 4 KiB, and the page half as long again.
 - Sending can cost less than static.File's: the same bytes from memory,
   written 1 MiB at a time (L{BIG_BLOCK}) and sent in sends of as much
   (a transport sends at most 128 KiB at a time), took half its time to
   a client on the machine, which leaves room for inflating.  Such a
   page holds two blocks (the one read into, the one on its way out),
   so only L{BIG_PAGES} pages at a time send them; the others send
   L{BLOCK} at a time, as static.File does.
 - Every finished page is a task of one cooperator whose turns take at
   most L{SLICE_SECONDS} of the reactor, all pages together: a hundred
   clients share a slice instead of taking a turn each in one round of
   the reactor (static.File's pages share Twisted's global cooperator,
   whose turns take up to 10 ms).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, cast

from twisted.internet import defer, task
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.python import log

from buildbot_logfile import _spool
from buildbot_logfile._records import ChunkDecoder, LogFileFormatError, split_records
from buildbot_logfile._render import AnsiHTMLRenderer
from buildbot_logfile.logfile import STDERR, STDOUT, HTMLLogFile

if TYPE_CHECKING:
    from buildbot_logfile._consumers import RequestConsumer
    from buildbot_logfile._lookup import OpenLog

# Bytes of records a read takes, as static.File's reads...
BLOCK = 64 * 1024
# ... or, for at most BIG_PAGES pages at a time, this many.
BIG_BLOCK = 1024 * 1024
BIG_PAGES = 4
# The reactor's time that all finished pages together take in one turn,
# however much of what they read is page (not a stretch of headers).
SLICE_SECONDS = 0.002
# The HTML page puts at most this much text in one span, as the live
# producer's runs do (LogFileProducer.RUN_BYTES).
SPAN_BYTES = 256 * 1024

_TEXT_CHANNELS = (STDOUT, STDERR)
_SPAN_END = b"</span>"
_Records = list[tuple[int, int, int]]


class _Readable(Protocol):
    """What a spool opens as: a file, or a gzip or bz2 reader over one."""

    def readinto(self, buffer: memoryview, /) -> int: ...

    def close(self) -> None: ...


class SpoolBlocks:
    """
    A finished spool's whole records, one block at a time, read into one
    buffer that every block reuses (grown for a record larger than it).
    """

    def __init__(self, path: str, block: int | None = None) -> None:
        self.path = path
        self._file: _Readable | None = None
        self._buffer = bytearray(block or BLOCK)
        self._cut = (0, 0)  # where the record the last block cut starts and ends
        self._offset = 0  # the file offset of the buffer's start, for errors
        self._need = 0  # what the cut record needs, when its length is known
        self._damage: LogFileFormatError | None = None  # after the records before it

    def read(self) -> tuple[memoryview, _Records] | None:
        """
        The next block: a view of its whole records in the buffer and the
        C{(channel, start, stop)} of each one's text; None at the end of
        the file.
        The view is good until the next read.  Raises C{_spool.READ_ERRORS}.
        """
        if self._damage is not None:
            raise self._damage
        if self._file is None:
            self._file = cast(_Readable, _spool.open_spool(self.path))
        # The record the last block cut moves to the buffer's start (the
        # caller is done with the last view), into a larger buffer if it
        # needs one: twice as large, not as large as its length says, so
        # that a damaged length meets the end of the file first.
        start, end = self._cut
        cut = self._buffer[start:end]
        if self._need > len(self._buffer):
            self._buffer = bytearray(min(self._need, 2 * len(self._buffer)))
        buffer = self._buffer
        buffer[: len(cut)] = cut
        with memoryview(buffer) as room:
            got = self._file.readinto(room[len(cut) :])
        if not got:
            if cut:
                raise LogFileFormatError(self.path, self._offset, "record runs past the end")
            return None
        end = len(cut) + got
        split = split_records(buffer, 0, end, self.path, self._offset)
        if split.error is not None:
            if not split.records:
                raise split.error
            self._damage = split.error  # the good records first, as 0.8 gave them
        self._cut, self._need = (split.pos, end), split.need
        self._offset += split.pos
        return memoryview(buffer)[: split.pos], split.records

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TextBody:
    """The text page: stdout and stderr as they are on disk."""

    def block(self, view: memoryview, records: _Records) -> bytes:
        return b"".join(
            [view[start:stop] for channel, start, stop in records if channel in _TEXT_CHANNELS]
        )

    def end(self) -> bytes:
        return b""


class HTMLBody:
    """
    The HTML page's spans: a run of one channel's records becomes a span
    (at most L{SPAN_BYTES} of text), as the live page's runs do.  A run
    carries over from block to block, so the page does not depend on
    L{BLOCK}.

    Each block is copied out of the reader's buffer once, so that a run
    can hold views of it from block to block, and looked at once: in a
    block of ASCII with no escape sequence and nothing to escape (most of
    a log) every run is wrapped in its span as the bytes it is.
    """

    def __init__(self) -> None:
        self._renderer = AnsiHTMLRenderer()
        self._decoder = ChunkDecoder()
        self._run: list[memoryview] = []
        self._run_channel = self._run_size = 0
        self._run_plain = True  # every block of the run was plain

    def block(self, view: memoryview, records: _Records) -> bytes:
        data = view.tobytes()
        # Record framing is digits, ':' and ',': the text decides.
        plain = (
            data.isascii()
            and b"\x1b" not in data
            and b"&" not in data
            and b"<" not in data
            and b">" not in data
        )
        block = memoryview(data)
        out: list[bytes | memoryview] = []
        for channel, start, stop in records:
            if self._run and (channel != self._run_channel or self._run_size >= SPAN_BYTES):
                self._end_run(out)
            self._run.append(block[start:stop])
            self._run_channel = channel
            self._run_size += stop - start
            self._run_plain = self._run_plain and plain
        return b"".join(out)

    def end(self) -> bytes:
        out: list[bytes | memoryview] = []
        self._end_run(out)
        for channel, text in self._decoder.flush():
            out.append(self._renderer.render(channel, text).encode())
        return b"".join(out)

    def _end_run(self, out: list[bytes | memoryview]) -> None:
        run, size, channel, plain = self._run, self._run_size, self._run_channel, self._run_plain
        self._run, self._run_size, self._run_plain = [], 0, True
        if plain and not self._decoder.holding:
            if size:
                out += [self._renderer.open_tag(channel), *run, _SPAN_END]
            return
        data = b"".join(run)
        if data.isascii() and not self._decoder.holding and b"\x1b" not in data:
            # Nothing to decode and no colours: escape_text's three
            # characters, escaped as bytes, and the span wraps them.
            if b"&" in data:
                data = data.replace(b"&", b"&amp;")
            if b"<" in data:
                data = data.replace(b"<", b"&lt;")
            if b">" in data:
                data = data.replace(b">", b"&gt;")
            if data:
                out += [self._renderer.open_tag(channel), data, _SPAN_END]
            return
        for chunk_channel, text in self._decoder.decode(channel, data):
            out.append(self._renderer.render(chunk_channel, text).encode())


class _BlockSizes:
    """The finished pages that send large blocks: at most BIG_PAGES at a time."""

    def __init__(self) -> None:
        self.big = 0

    def take(self) -> bool:
        """Whether a page starting now may (then it gives that back)."""
        if self.big < BIG_PAGES:
            self.big += 1
            return True
        return False

    def give_back(self) -> None:
        self.big -= 1


BLOCK_SIZES = _BlockSizes()


def _on_this_machine(peer: object) -> bool:
    """Whether a connection's peer is on the master's machine (loopback or a UNIX socket)."""
    if isinstance(peer, UNIXAddress):
        return True
    if not isinstance(peer, (IPv4Address, IPv6Address)):
        return False
    try:
        address = ipaddress.ip_address(peer.host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


class SlicedProducer:
    """
    A streaming producer registered with a twisted.web request, whose
    steps (L{step}) run in the finished pages' cooperator: it goes on
    until the request pauses it (its client is behind) and stops when
    the client goes.  L{done} fires once all is written (L{step} fires
    it); cancelling it stops.  Each step writes up to L{block} bytes:
    L{BIG_BLOCK} if L{BLOCK_SIZES} allows it (given back once stopped),
    else L{BLOCK}.
    """

    def __init__(self, request: Any) -> None:
        self.request = request
        self._big = BLOCK_SIZES.take()
        self.block = BIG_BLOCK if self._big else BLOCK
        self.done: defer.Deferred[None] = defer.Deferred(self._cancel)
        self.paused = False
        self._stopped = False
        self._task: task.CooperativeTask | None = None
        self._widened: FileDescriptor | None = None

    def start(self) -> defer.Deferred[None]:
        try:
            self.request.registerProducer(self, True)
        except BaseException:
            self.stopProducing()
            raise
        self._widen_sends()
        self._task = _pages.cooperate(self._steps())
        return self.done

    def _widen_sends(self) -> None:
        """
        Let the transport send a block at once if its client is on this
        machine (a browser, a script, a proxy in front of the master):
        there the client takes whatever is sent, and a send costs the
        master about as much whatever its size.  Elsewhere the network
        takes part of a send, and Twisted copies what is left of its
        buffer at every send shorter than its limit: the transport's
        own limit (128 KiB) stays.  Until the page stops, not for the
        connection's later answers.
        """
        transport = getattr(self.request, "transport", None)
        if (
            isinstance(transport, FileDescriptor)
            and self.block > transport.SEND_LIMIT
            and _on_this_machine(transport.getPeer())
        ):
            transport.SEND_LIMIT = self.block
            self._widened = transport

    def pauseProducing(self) -> None:
        if not self.paused and self._task is not None:
            self._task.pause()
        self.paused = True

    def resumeProducing(self) -> None:
        if self.paused and self._task is not None:
            self._task.resume()
        self.paused = False

    def stopProducing(self) -> None:
        if self._big:
            self._big = False
            BLOCK_SIZES.give_back()
        widened, self._widened = self._widened, None
        if widened is not None:
            vars(widened).pop("SEND_LIMIT", None)
        self._stopped = True
        running, self._task = self._task, None
        if running is not None:
            running.stop()
        self.close()

    def step(self) -> None:
        """Write the next block, or end."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of what is read from; called once stopped."""

    def finish(self) -> None:
        """All is written: stop, and fire L{done}."""
        self.stopProducing()
        self.request.unregisterProducer()
        self.done.callback(None)

    def give_up(self) -> None:
        """
        Stop where this is: the request is the caller's to answer, unless
        it is already under way (L{cut_short}).
        """
        self.stopProducing()
        self.request.unregisterProducer()

    def cut_short(self) -> None:
        """
        Give up after part of the answer is out: the client must see it
        unfinished.  Klein cancels L{done} once the connection is gone.
        """
        self.give_up()
        self.request.loseConnection()

    def _steps(self) -> Iterator[None]:
        while not self._stopped:
            self.step()
            yield None

    def _cancel(self, _: defer.Deferred[None]) -> None:
        self.stopProducing()


class FinishedPage(SlicedProducer):
    """
    Sends a finished log's page body (then C{trailer}) to a twisted.web
    request.

    If the spool fails before the first block is written, the log is
    marked so and C{fallback} is called: it streams the page another way
    (from the database) and returns a Deferred that L{done} follows.  So
    does anything else that fails then (logged, the spool not marked).
    """

    def __init__(
        self,
        request: Any,
        spool: str,
        body: TextBody | HTMLBody,
        trailer: bytes,
        fail: Callable[[Exception], None],
        fallback: Callable[[], defer.Deferred[None]],
    ) -> None:
        super().__init__(request)
        self.blocks = SpoolBlocks(spool, self.block)
        self.body = body
        self.trailer = trailer
        self._fail = fail
        self._fallback = fallback
        self._wrote = False
        self._instead: defer.Deferred[None] | None = None

    def close(self) -> None:
        self.blocks.close()

    def step(self) -> None:
        try:
            block = self.blocks.read()
            data = self.body.end() + self.trailer if block is None else self.body.block(*block)
        except _spool.READ_ERRORS as e:
            self._failed(e, damaged=True)
            return
        except Exception as e:
            log.err(None, f"while reading {self.blocks.path} for a page")
            self._failed(e, damaged=False)
            return
        if data:
            self._wrote = True
            self.request.write(data)
        if block is None:
            self.finish()

    def _cancel(self, _: defer.Deferred[None]) -> None:
        if self._instead is not None:
            self._instead.cancel()
        else:
            self.stopProducing()

    def _failed(self, error: Exception, damaged: bool) -> None:
        if damaged:
            self._fail(error)
        if self._wrote:
            self.cut_short()
            return
        self.give_up()
        self._instead = self._fallback()
        self._instead.chainDeferred(self.done)


def _slice() -> Callable[[], bool]:
    end = time.monotonic() + SLICE_SECONDS
    return lambda: time.monotonic() >= end


# The cooperator of every finished page (see the module's docstring).
_pages = task.Cooperator(terminationPredicateFactory=_slice)


def serve(request: Any, opened: OpenLog, consumer: RequestConsumer, html: bool) -> Any:
    """
    Send the page of a finished log whose spool holds it; C{consumer} is
    the page's consumer, for its trailer and for streaming another way if
    the spool fails.  None if the log is not one of those: the caller
    streams it itself.
    """
    lf = opened.logfile
    if lf is None or not lf.isFinished() or not lf.spooled or isinstance(lf, HTMLLogFile):
        return None

    def fallback() -> defer.Deferred[None]:
        opened.stream(consumer)
        return consumer.done

    body = HTMLBody() if html else TextBody()
    page = FinishedPage(
        request,
        lf.getFilename(),
        body,
        consumer.trailer,
        lf.mark_spool_failed,
        fallback,
    )
    return page.start()
