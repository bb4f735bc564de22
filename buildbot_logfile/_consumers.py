"""
The pages' end of 0.8's consumer protocol: a log rendered into a
twisted.web request, as HTML or text, with the request's backpressure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.web.iweb import IRequest

from buildbot_logfile._producer import LogFileProducer
from buildbot_logfile._render import AnsiHTMLRenderer
from buildbot_logfile.logfile import STDERR, STDOUT


class RequestConsumer:
    """
    0.8's C{IStatusLogConsumer} over a twisted.web request: registers the
    producer with the request and renders each chunk into it.  L{done}
    fires when the log has been sent whole, or is cancelled (stopping the
    producer) when the client goes away.
    """

    def __init__(
        self, request: IRequest, render: Callable[[int, str], bytes], trailer: bytes = b""
    ) -> None:
        # A twisted.web request: also an IConsumer, which IRequest does not say.
        self.request: Any = request
        self.render = render
        self.trailer = trailer
        self.producer: LogFileProducer | None = None
        self.done: defer.Deferred[None] = defer.Deferred(self._cancel)

    def _cancel(self, _: defer.Deferred[None]) -> None:
        if self.producer is not None:
            self.producer.stopProducing()

    def registerProducer(self, producer: LogFileProducer, streaming: bool) -> None:
        self.producer = producer
        self.request.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.request.unregisterProducer()
        self.producer = None

    def writeChunk(self, chunk: tuple[int, str]) -> None:
        data = self.render(*chunk)
        if data:
            self.request.write(data)

    def finish(self) -> None:
        if self.trailer:
            self.request.write(self.trailer)
        if not self.done.called:
            self.done.callback(None)

    def abort(self, reason: Exception) -> None:
        """
        The log cannot be sent whole: say so rather than end as if it had
        been.  Before the first byte that is a 503; after it, the
        connection is dropped, so the client sees an unfinished answer.
        """
        request = self.request
        if request.startedWriting:
            # Klein finishes the answer when done fires: it must not.  It
            # cancels done itself once the connection is gone.
            request.loseConnection()
            return
        request.setResponseCode(503)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"retry-after", b"1")
        request.write(b"This log cannot be read just now; try again.\n")
        request.finish()
        if not self.done.called:
            self.done.callback(None)


def _text_only(channel: int, text: str) -> bytes:
    return text.encode() if channel in (STDOUT, STDERR) else b""


class TextRequestConsumer(RequestConsumer):
    """The text page's consumer: stdout and stderr, as UTF-8 bytes."""

    def __init__(self, request: IRequest) -> None:
        super().__init__(request, _text_only)

    def write_encoded(self, channel: int, data: bytes) -> None:
        """Phase one's records, as bytes: the spool file holds UTF-8 already."""
        if channel in (STDOUT, STDERR) and data:
            self.request.write(data)


def html_renderer() -> Callable[[int, str], bytes]:
    """Chunks as 0.8's HTML spans, ANSI colours carried across chunks."""
    renderer = AnsiHTMLRenderer()
    return lambda channel, text: renderer.render(channel, text).encode()


def raw_html(channel: int, text: str) -> bytes:
    """An HTML log's text, as it is."""
    return text.encode()
