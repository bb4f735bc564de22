"""
The pages' end of 0.8's consumer protocol: a log rendered into a
twisted.web request, as HTML or text, with the request's backpressure.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from twisted.internet import defer
from twisted.internet.abstract import FileDescriptor
from twisted.python import log
from twisted.web.iweb import IRequest

from buildbot_logfile._producer import LogFileProducer
from buildbot_logfile._render import AnsiHTMLRenderer
from buildbot_logfile.logfile import STDERR, STDOUT

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime


class WriteGate(Protocol):
    """What a consumer asks before each write (see L{RequestConsumer.gate})."""

    def holds(self) -> bool:
        """Whether writes may go on unasked."""

    def recheck(self) -> defer.Deferred[bool]:
        """Whether they may go on at all: asked when L{holds} says no."""


class _Ticker:
    """
    One timer for all the consumers of a clock that hold writes back:
    each flushes at the next tick.  A timer of each consumer's own would
    make a thousand timers for a chunk that a thousand clients follow,
    each living until it fires: enough of those objects outlive Python's
    young collections to bring on full ones, which stall the reactor for
    a large master's whole heap.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._waiting: dict[RequestConsumer, None] = {}  # in the order they came
        self._call: IDelayedCall | None = None

    def add(self, consumer: RequestConsumer) -> None:
        """Flush C{consumer} at the next tick, L{RequestConsumer.WRITE_INTERVAL} at most."""
        self._waiting[consumer] = None
        if self._call is None:
            self._call = self._clock.callLater(RequestConsumer.WRITE_INTERVAL, self._tick)

    def discard(self, consumer: RequestConsumer) -> None:
        self._waiting.pop(consumer, None)
        if not self._waiting and self._call is not None:
            self._call.cancel()
            self._call = None

    def _tick(self) -> None:
        self._call = None
        waiting = list(self._waiting)
        self._waiting.clear()
        for consumer in waiting:
            # One page's failure must not leave the others' bundles behind:
            # a consumer with a bundle waits for a tick it is not due.
            try:
                consumer._flush()
                _send_at_once(consumer.request)
            except Exception:
                log.err(None, "LegacyStatus: writing to a live log page")


_tickers: weakref.WeakKeyDictionary[Any, _Ticker] = weakref.WeakKeyDictionary()


def _ticker(clock: IReactorTime) -> _Ticker:
    found = _tickers.get(clock)
    if found is None:
        found = _tickers[clock] = _Ticker(clock)
    return found


def _send_at_once(request: Any) -> None:
    """
    Send what C{request} has just been given now, not at the reactor's
    next poll.

    A socket's transport keeps what it is given until the reactor's next
    poll finds the socket writable, and sends it then: for pages that
    follow a live log, each write waits for the rest of the reactor's turn
    and a poll that finds every client's socket writable, and serves them
    all.  A client that keeps up has room in its socket, which takes the
    bytes at once.  With a thousand clients following one log
    (C{bench_fanout}) sending at once took the master's own C{appendLog}
    from a p50 of 52-80 ms to 9-15 ms, as its reactor's turns shrank: it
    took the log's appends at nearly the rate meant, where it had managed
    two thirds of it.

    Only a socket's own transport (TLS wraps it in a protocol, which is
    left alone), only while it streams as usual (a transport that has
    paused its producer is full, one that is closing ends itself, and only
    a streaming producer is left alone by the send), only when all it had
    before went out (otherwise the reactor already waits for the socket
    to take more, and a send now would find it full), and not for C{HEAD}
    (whose body twisted.web drops).  A send that finds the connection gone
    leaves the transport to the reactor, which finds it closed at its next
    poll (the request ends with C{ConnectionDone}, the reset being taken
    by the send, rather than C{ConnectionLost}).
    """
    transport = getattr(getattr(request, "channel", None), "transport", None)
    if not isinstance(transport, FileDescriptor) or request.method == b"HEAD":
        return
    if (
        transport.producerPaused
        or not transport.streamingProducer
        or transport.disconnecting
        or not transport.connected
        or len(transport.dataBuffer) > transport.offset
    ):
        return
    transport.doWrite()


class RequestConsumer:
    """
    0.8's C{IStatusLogConsumer} over a twisted.web request: registers the
    producer with the request and renders each chunk into it.  L{done}
    fires when the log has been sent whole, or is cancelled (stopping the
    producer) when the client goes away.

    Writes reach the request about every L{WRITE_INTERVAL} at most: the
    first after a quiet spell at once, those that follow it closely
    bundled into one, sent at the next tick of a timer all consumers
    share (see L{_Ticker}).  Each write to a client costs the reactor a
    send and two changes of its poll set, and a log that grows in many
    small appends costs that per append and per client: with a thousand
    clients following one log, the reactor would spend its time on them
    and answer new clients late.  What those two kinds of writes give the
    request is sent at once, not at the reactor's next poll (see
    L{_send_at_once}); a full bundle's write is not, as the transport
    pauses the producer for it.  A bundle holds at most L{WRITE_BYTES};
    what a producer writes is bounded as before, since it is held back by
    the request, not by this.
    """

    WRITE_INTERVAL = 0.05
    WRITE_BYTES = 64 * 1024

    def __init__(
        self,
        request: IRequest,
        render: Callable[[int, str], bytes],
        trailer: bytes = b"",
        clock: IReactorTime | None = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = cast("IReactorTime", reactor)
        # A twisted.web request: also an IConsumer, which IRequest does not say.
        self.request: Any = request
        self.render = render
        self.trailer = trailer
        self.producer: LogFileProducer | None = None
        self.done: defer.Deferred[None] = defer.Deferred(self._cancel)
        self._clock = clock
        self._ticker = _ticker(clock)
        # Kept across flushes, emptied in place: a new list per flush
        # would outlive young collections as the timers did.
        self._bundle: list[bytes] = []
        self._bundle_bytes = 0
        self._last_write = float("-inf")
        # Asked before each write, if set: while it is asked again (see
        # WriteGate), writes, and the log's end, wait in the bundle.
        self.gate: WriteGate | None = None
        self._rechecking = False
        self._finish_due = False
        # Whether the request has paused the producer (see pauseProducing).
        self._request_paused = False

    def _cancel(self, _: defer.Deferred[None]) -> None:
        self._drop_bundle()
        if self.producer is not None:
            self.producer.stopProducing()

    def registerProducer(self, producer: LogFileProducer, streaming: bool) -> None:
        self.producer = producer
        self.request.registerProducer(self, streaming)

    # The request pauses and resumes the producer through the consumer,
    # which keeps it paused while the request or the gate (being asked
    # again) wants it so: what it produces meanwhile would pile up here.

    def pauseProducing(self) -> None:
        self._request_paused = True
        if self.producer is not None:
            self.producer.pauseProducing()

    def resumeProducing(self) -> None:
        self._request_paused = False
        if self.producer is not None and not self._rechecking:
            self.producer.resumeProducing()

    def stopProducing(self) -> None:
        if self.producer is not None:
            self.producer.stopProducing()

    def unregisterProducer(self) -> None:
        self._flush()
        self.request.unregisterProducer()
        self.producer = None

    def writeChunk(self, chunk: tuple[int, str]) -> None:
        data = self.render(*chunk)
        if data:
            self._write(data)

    def finish(self) -> None:
        if self._rechecking:
            self._finish_due = True
            return
        self._flush()
        if self.trailer:
            self.request.write(self.trailer)
        if not self.done.called:
            self.done.callback(None)

    def _write(self, data: bytes) -> None:
        """Write C{data} now, or bundled with what follows (see L{WRITE_INTERVAL})."""
        if self._rechecking or (self.gate is not None and not self.gate.holds()):
            self._hold(data)
            return
        now = self._clock.seconds()
        if not self._bundle and now >= self._last_write + self.WRITE_INTERVAL:
            self._last_write = now
            self.request.write(data)
            _send_at_once(self.request)
            return
        if not self._bundle:
            self._ticker.add(self)
        self._bundle.append(data)
        self._bundle_bytes += len(data)
        if self._bundle_bytes >= self.WRITE_BYTES:
            self._flush()

    def _hold(self, data: bytes) -> None:
        """Keep C{data} back until the gate has been asked again."""
        self._ticker.discard(self)
        self._bundle.append(data)
        self._bundle_bytes += len(data)
        if self.producer is not None:
            self.producer.pauseProducing()
        if not self._rechecking:
            self._ask_gate()

    def _ask_gate(self) -> None:
        assert self.gate is not None
        self._rechecking = True
        self.gate.recheck().addCallback(self._rechecked)

    def _rechecked(self, allowed: bool) -> None:
        self._rechecking = False
        if self.done.called:  # the client went away meanwhile
            return
        if not allowed:
            self.cut_off()
            return
        if self.gate is not None and not self.gate.holds():  # new rules again meanwhile
            self._ask_gate()
            return
        self._flush()
        if self._finish_due:
            self.finish()
        elif self.producer is not None and not self._request_paused:
            self.producer.resumeProducing()

    def cut_off(self) -> None:
        """The client may no longer see this log: nothing more goes to it."""
        self._drop_bundle()
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.stopProducing()
            self.request.unregisterProducer()
        self._end_early(403, b"You may not view this.\n", {})

    def _flush(self) -> None:
        """Write the bundle, if any (not while the gate is asked again)."""
        if self._bundle and not self._rechecking:
            self._ticker.discard(self)
            data = b"".join(self._bundle)
            self._bundle.clear()
            self._bundle_bytes = 0
            self._last_write = self._clock.seconds()
            self.request.write(data)

    def _drop_bundle(self) -> None:
        """The client is gone: nothing more goes to it."""
        self._ticker.discard(self)
        self._bundle.clear()
        self._bundle_bytes = 0

    def abort(self, reason: Exception) -> None:
        """The log cannot be sent whole: say so rather than end as if it had been."""
        self._flush()  # what the client was due to get, it gets
        self._end_early(
            503,
            b"This log cannot be read just now; try again.\n",
            {b"retry-after": b"1"},
        )

    def _end_early(self, code: int, message: bytes, headers: dict[bytes, bytes]) -> None:
        """
        End an answer that cannot be whole: before its first byte with
        C{code} and C{message}; after it by dropping the connection, so
        the client sees an unfinished answer.
        """
        request = self.request
        if request.startedWriting:
            # Klein finishes the answer when done fires: it must not.  It
            # cancels done itself once the connection is gone.
            request.loseConnection()
            return
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        for name, value in headers.items():
            request.setHeader(name, value)
        request.write(message)
        request.finish()
        if not self.done.called:
            self.done.callback(None)


def _text_only(channel: int, text: str) -> bytes:
    return text.encode() if channel in (STDOUT, STDERR) else b""


class TextRequestConsumer(RequestConsumer):
    """The text page's consumer: stdout and stderr, as UTF-8 bytes."""

    def __init__(self, request: IRequest, clock: IReactorTime | None = None) -> None:
        super().__init__(request, _text_only, clock=clock)

    def write_encoded(self, channel: int, data: bytes) -> None:
        """Phase one's records, as bytes: the spool file holds UTF-8 already."""
        if channel in (STDOUT, STDERR) and data:
            self._write(data)


def html_renderer() -> Callable[[int, str], bytes]:
    """Chunks as 0.8's HTML spans, ANSI colours carried across chunks."""
    renderer = AnsiHTMLRenderer()
    return lambda channel, text: renderer.render(channel, text).encode()


def raw_html(channel: int, text: str) -> bytes:
    """An HTML log's text, as it is."""
    return text.encode()
