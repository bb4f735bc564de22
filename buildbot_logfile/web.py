"""
0.8's log pages, served with Klein through L{LogFileProducer}, and the
listener of their standalone port.

A page registers the log's producer with the request as a streaming
producer: a slow client pauses it, a closed connection stops it, and a live
log streams until it finishes.  Logs come from a L{LogSource}, so a log
whose spool is gone is rebuilt from the database and served whole.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from buildbot.www.authz import Forbidden
from klein import Klein
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Site

from buildbot_logfile._lookup import LogSource, OpenLog
from buildbot_logfile._producer import LogFileProducer
from buildbot_logfile._render import PAGE_FOOTER, AnsiHTMLRenderer, listing, page_header, quote
from buildbot_logfile.logfile import STDERR, STDOUT, HTMLLogFile
from buildbot_logfile.status import BuildStatus, BuildStepStatus

# Where a build's logs are, for the master's www authz: the data API path of
# the same log, by builder id and step number (step names need not be
# identifiers, which the data API's name paths require).
DataPath = tuple[str, ...]
Authorize = Callable[[IRequest, DataPath], Awaitable[None]]

FINISHED_CACHE = "max-age=604800"
LIVE_CACHE = "no-cache"

# A ?start= answer carries at most this much text; X-More-Data says that
# more follows and X-Text-Size where to ask for it.
START_LIMIT = 1024 * 1024


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
            request.loseConnection()
        else:
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


def _html_renderer() -> Callable[[int, str], bytes]:
    renderer = AnsiHTMLRenderer()
    return lambda channel, text: renderer.render(channel, text).encode()


def _raw_html(channel: int, text: str) -> bytes:
    return text.encode()


class _ValidPathResource(Resource):
    """
    Answers 400 for a path that is not UTF-8 once percent-decoded: Klein
    would fail on it with a 500.
    """

    isLeaf = True

    def __init__(self, pages: Resource) -> None:
        super().__init__()
        self.pages = pages

    def render(self, request: IRequest) -> Any:
        try:
            unquote_to_bytes(request.path).decode("utf-8")
        except UnicodeDecodeError:
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"The path is not UTF-8.\n"
        return self.pages.render(request)


class _NotFound(Exception):
    """A builder, build, step or log that does not exist."""


class _Unavailable(Exception):
    """The master has no LegacyStatus service to serve logs from."""


class LegacyLogPages:
    """
    The pages, as a Klein app.  C{get_source} returns where logs come from
    (None when the master has no running C{LegacyStatus}); C{authorize}
    raises C{buildbot.www.authz.Forbidden} for a user who may not view the
    given data API path.
    """

    app = Klein()

    def __init__(self, get_source: Callable[[], LogSource | None], authorize: Authorize) -> None:
        self.get_source = get_source
        self.authorize = authorize

    def resource(self) -> Resource:
        return _ValidPathResource(self.app.resource())

    @app.handle_errors(_NotFound)
    def not_found(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"No such {failure.value.args[0]}\n".encode()

    @app.handle_errors(_Unavailable)
    def unavailable(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(503)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Old-style log pages need reporters.LegacyStatus in c['services'].\n"

    @app.handle_errors(Forbidden)
    def forbidden(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(403)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"You may not view this log.\n"

    def _source(self) -> LogSource:
        source = self.get_source()
        if source is None:
            raise _Unavailable()
        return source

    async def _build(self, builder: str, number: int) -> BuildStatus:
        build = await self._source().locate_build(builder, number)
        if build is None:
            raise _NotFound(f"build {builder} #{number}")
        return build

    async def _step(self, builder: str, number: int, step_name: str) -> BuildStepStatus:
        build = await self._build(builder, number)
        step = build.getStep(step_name)
        if step is None:
            raise _NotFound(f"step {step_name!r} in build {builder} #{number}")
        return step

    async def _log(
        self,
        request: IRequest,
        path: tuple[str, int, str, str],
        content_type: bytes,
    ) -> OpenLog:
        """
        The log at C{path} (builder, number, step, log), if this user may
        view it, opened, with the answer's type and caching set.
        """
        builder, number, step_name, log_name = path
        source = self._source()
        found = await source.locate_log(builder, number, step_name, log_name)
        if found is None:
            raise _NotFound(f"log {log_name!r} in step {step_name!r} of build {builder} #{number}")
        step, log_data = found
        await self.authorize(request, (
            "builders", str(step.build.builder.builderid), "builds", str(number),
            "steps", str(step.number), "logs", log_data["slug"],
        ))  # fmt: skip
        opened = await source.open_log(step, log_data)
        if opened is None or opened.logfile is None:
            raise _NotFound(f"log {log_name!r} (an HTML log still being written)")
        finished = opened.logfile.isFinished()
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", FINISHED_CACHE if finished else LIVE_CACHE)
        return opened

    @staticmethod
    def _stream(request: IRequest, opened: OpenLog, consumer: RequestConsumer) -> Any:
        if request.method == b"HEAD":
            return b""
        opened.stream(consumer)
        return consumer.done

    @app.route(
        "/builders/<builder>/builds/<int:number>/steps/<step>/logs/<log_name>",
        methods=["GET", "HEAD"],
    )
    async def log_page(
        self, request: IRequest, builder: str, number: int, step: str, log_name: str
    ) -> Any:
        path = (builder, number, step, log_name)
        opened = await self._log(request, path, b"text/html; charset=utf-8")
        lf = opened.logfile
        assert lf is not None
        if isinstance(lf, HTMLLogFile):
            # Build-made HTML must not run script on the master's origin.
            request.setHeader(b"content-security-policy", b"sandbox")
            return self._stream(request, opened, RequestConsumer(request, _raw_html))
        if request.method != b"HEAD":
            request.write(page_header(f"{quote(log_name)}/text", live=not lf.isFinished()))
        consumer = RequestConsumer(request, _html_renderer(), PAGE_FOOTER)
        return self._stream(request, opened, consumer)

    @app.route(
        "/builders/<builder>/builds/<int:number>/steps/<step>/logs/<log_name>/text",
        methods=["GET", "HEAD"],
    )
    async def text_page(
        self, request: IRequest, builder: str, number: int, step: str, log_name: str
    ) -> Any:
        path = (builder, number, step, log_name)
        opened = await self._log(request, path, b"text/plain; charset=utf-8")
        start = request.args.get(b"start")
        if start is None:
            return self._stream(request, opened, TextRequestConsumer(request))
        try:
            offset = int(start[0])
            if offset < 0:
                raise ValueError(offset)
        except ValueError:
            request.setResponseCode(400)
            return b"start must be a byte offset (a whole number >= 0)\n"
        body, size, more = await opened.text_bytes(offset, START_LIMIT)
        request.setHeader(b"x-text-size", str(size).encode())
        assert opened.logfile is not None
        if more or not opened.logfile.isFinished():
            request.setHeader(b"x-more-data", b"true")
        return body

    @app.route("/builders/<builder>/builds/<int:number>", methods=["GET", "HEAD"])
    async def build_page(self, request: IRequest, builder: str, number: int) -> bytes:
        build = await self._build(builder, number)
        await self.authorize(
            request, ("builders", str(build.builder.builderid), "builds", str(number))
        )
        items = []
        for step in build.getSteps():
            logs = await self._source().step_logs(step)
            links = "".join(
                f' <a href="{number}/steps/{quote(step.name)}/logs/{quote(entry["name"])}">'
                f"{html.escape(entry['name'])}</a>"
                for entry in logs
            )
            items.append(f"<li>{html.escape(step.name)}{links}</li>")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return listing(f"Build {builder} #{number}", items)

    @app.route(
        "/builders/<builder>/builds/<int:number>/steps/<step>/logs/", methods=["GET", "HEAD"]
    )
    async def logs_page(self, request: IRequest, builder: str, number: int, step: str) -> bytes:
        step_status = await self._step(builder, number, step)
        await self.authorize(request, (
            "builders", str(step_status.build.builder.builderid), "builds", str(number),
            "steps", str(step_status.number), "logs",
        ))  # fmt: skip
        logs = await self._source().step_logs(step_status)
        items = [
            f'<li><a href="{quote(entry["name"])}">{html.escape(entry["name"])}</a>'
            f' (<a href="{quote(entry["name"])}/text">text</a>)</li>'
            for entry in logs
        ]
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return listing(f"Logs of step {step} in build {builder} #{number}", items)


def authorize_anonymous(master: Any) -> Authorize:
    """The standalone port's rule: what the master's www authz lets anyone see."""

    async def authorize(request: IRequest, path: DataPath) -> None:
        authz = getattr(master.www, "authz", None)
        if authz is not None:
            await authz.assertUserAllowed(path, "get", {}, {"anonymous": True})

    return authorize


def authorize_www_user(master: Any) -> Authorize:
    """Under the master's www: what its authz lets this request's user see."""

    async def authorize(request: IRequest, path: DataPath) -> None:
        if getattr(master.www, "authz", None) is not None:
            await master.www.assertUserAllowed(request, path, "get", {})

    return authorize


class PagesListener:
    """
    The standalone port of the pages: listens on a strports description
    and stops listening, whatever the description becomes on reconfig.
    """

    def __init__(self, pages: LegacyLogPages) -> None:
        self.pages = pages
        self.description: str | None = None
        self.port: IListeningPort | None = None

    async def listen_on(self, description: str | None) -> None:
        """Listen on C{description} (None: nowhere), unless already there."""
        if description == self.description:
            return
        await self.stop()
        if description is not None:
            from twisted.internet import reactor

            endpoint = serverFromString(reactor, description)
            self.port = await endpoint.listen(Site(self.pages.resource()))
            self.description = description

    async def stop(self) -> None:
        self.description = None
        if self.port is not None:
            port, self.port = self.port, None
            await defer.maybeDeferred(port.stopListening)
