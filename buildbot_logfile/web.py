"""
0.8's log pages, served with Klein through L{LogFileProducer}.

A page registers the log's producer with the request as a streaming
producer: a slow client pauses it, a closed connection stops it, and a live
log streams until it finishes.  Logs come from L{LegacyStatus}'s lookup, so
a log whose spool is gone is rebuilt from the database and served whole.
"""

from __future__ import annotations

import html
import re
from typing import Any, Awaitable, Callable
from urllib.parse import quote as url_quote
from urllib.parse import unquote_to_bytes

from klein import Klein
from buildbot.www.authz import Forbidden
from twisted.internet import defer
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from buildbot_logfile.logfile import STDERR, STDOUT, ChunkTypes, HTMLLogFile, LogFile

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

# The palette follows the channel rules with equal specificity, so a
# colour code wins over the channel's own colour.
STYLE = """
body.log { font-family: monospace; }
pre { white-space: pre-wrap; }
span.stdout { color: black; }
span.stderr { color: #c00; }
span.header { color: #00c; }
span.ansi1 { font-weight: bold; } span.ansi3 { font-style: italic; } span.ansi4 { text-decoration: underline; }
span.ansi30 { color: black; } span.ansi31 { color: #c00; } span.ansi32 { color: #070; } span.ansi33 { color: #a60; }
span.ansi34 { color: #00c; } span.ansi35 { color: #a0a; } span.ansi36 { color: #088; } span.ansi37 { color: #888; }
span.ansi90 { color: #555; } span.ansi91 { color: #f33; } span.ansi92 { color: #3c3; } span.ansi93 { color: #cc3; }
span.ansi94 { color: #66f; } span.ansi95 { color: #f6f; } span.ansi96 { color: #3cc; } span.ansi97 { color: #ccc; }
span.ansi40 { background: black; } span.ansi41 { background: #fcc; } span.ansi42 { background: #cfc; }
span.ansi43 { background: #ffc; } span.ansi44 { background: #ccf; } span.ansi45 { background: #fcf; }
span.ansi46 { background: #cff; } span.ansi47 { background: #eee; }
"""

# While a live log streams, keep the window at its end unless the reader
# scrolled up; the document's load event (the log finished) ends it.
FOLLOW_SCRIPT = """<script>
(function () {
  var follow = true;
  window.addEventListener("scroll", function () {
    follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  });
  var timer = setInterval(function () {
    if (follow) { window.scrollTo(0, document.body.scrollHeight); }
  }, 250);
  window.addEventListener("load", function () { clearInterval(timer); });
})();
</script>
"""


def page_header(text_url: str, live: bool) -> bytes:
    """0.8's page head; C{text_url} is relative, as 0.8's childLink made it."""
    return (
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\">"
        "<title>Log File contents</title>\n"
        f"<style>{STYLE}</style>\n"
        f"{FOLLOW_SCRIPT if live else ''}"
        "</head>\n<body class=\"log\">\n"
        f"<a href=\"{text_url}\">(view as text)</a><br/>\n<pre>"
    ).encode()


PAGE_FOOTER = b"</pre>\n</body>\n</html>\n"

def escape_text(text: str) -> str:
    """
    Log text for an HTML text node.  Most log text holds no markup: three
    substring searches (memchr, unlike a regex character class) settle it,
    where html.escape would make five replacing passes.
    """
    if "&" in text or "<" in text or ">" in text:
        return html.escape(text, quote=False)
    return text


_ESCAPE = re.compile(r"\x1b\[([0-9;]*)m|\x1b\[[0-9;?]*[A-Za-z]")


class AnsiHTMLRenderer:
    """
    Renders chunks as 0.8 did, one C{<span class="stdout|stderr|header">}
    per run of text, with ANSI SGR codes as extra classes (C{ansi1},
    C{ansi32}...).  SGR state carries across the chunks of one channel;
    other escape sequences are dropped from the HTML.
    """

    def __init__(self) -> None:
        self._codes: dict[int, list[str]] = {}

    def render(self, channel: int, text: str) -> str:
        kind = ChunkTypes[channel] if channel < len(ChunkTypes) else "stdout"
        codes = self._codes.setdefault(channel, [])
        if "\x1b" not in text:  # most chunks: no escape sequence to parse
            return self._span(kind, codes, text)
        out = []
        pos = 0
        for match in _ESCAPE.finditer(text):
            out.append(self._span(kind, codes, text[pos : match.start()]))
            if match.group(1) is not None:
                self._apply(codes, match.group(1))
            pos = match.end()
        out.append(self._span(kind, codes, text[pos:]))
        return "".join(out)

    @staticmethod
    def _span(kind: str, codes: list[str], text: str) -> str:
        if not text:
            return ""
        classes = " ".join([kind] + [f"ansi{c}" for c in codes])
        return f'<span class="{classes}">{escape_text(text)}</span>'

    @staticmethod
    def _apply(codes: list[str], params: str) -> None:
        parts = params.split(";") if params else ["0"]
        i = 0
        while i < len(parts):
            code = parts[i] or "0"
            if code in ("38", "48") and i + 1 < len(parts):
                # extended colours: 38;5;n or 38;2;r;g;b, one class each
                width = 3 if parts[i + 1] == "5" else 5
                code = "-".join(parts[i : i + width])
                i += width
            else:
                i += 1
            if not code.replace("-", "").isdigit():
                continue
            if code == "0":
                codes.clear()
            elif code not in codes:
                codes.append(code)


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
        self.request = request
        self.render = render
        self.trailer = trailer
        self.producer: Any = None
        self.done: defer.Deferred[None] = defer.Deferred(self._cancel)

    def _cancel(self, _: defer.Deferred[None]) -> None:
        if self.producer is not None:
            self.producer.stopProducing()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
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


def text_only(channel: int, text: str) -> bytes:
    return text.encode() if channel in (STDOUT, STDERR) else b""


class TextRequestConsumer(RequestConsumer):
    """The text page's consumer: stdout and stderr, as UTF-8 bytes."""

    def __init__(self, request: IRequest) -> None:
        super().__init__(request, text_only)

    def write_encoded(self, channel: int, data: bytes) -> None:
        """Phase one's records, as bytes: the spool file holds UTF-8 already."""
        if channel in (STDOUT, STDERR) and data:
            self.request.write(data)


def html_renderer() -> Callable[[int, str], bytes]:
    renderer = AnsiHTMLRenderer()
    return lambda channel, text: renderer.render(channel, text).encode()


def raw_html(channel: int, text: str) -> bytes:
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


class NotFound(Exception):
    """A builder, build, step or log that does not exist."""


class Unavailable(Exception):
    """The master has no LegacyStatus service to serve logs from."""


class LegacyLogPages:
    """
    The pages, as a Klein app.  C{get_status} returns the master's
    L{LegacyStatus}; C{authorize} raises C{buildbot.www.authz.Forbidden}
    for a user who may not view the given data API path.
    """

    app = Klein()

    def __init__(self, get_status: Callable[[], Any], authorize: Authorize) -> None:
        self.get_status = get_status
        self.authorize = authorize

    def resource(self) -> Any:
        return _ValidPathResource(self.app.resource())

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"No such {failure.value.args[0]}\n".encode()

    @app.handle_errors(Unavailable)
    def unavailable(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(503)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Old-style log pages need reporters.LegacyStatus in c['services'].\n"

    @app.handle_errors(Forbidden)
    def forbidden(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(403)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"You may not view this log.\n"

    def _status(self) -> Any:
        status = self.get_status()
        if status is None:
            raise Unavailable()
        return status

    async def _build(self, builder: str, number: int) -> Any:
        build = await self._status().locate_build(builder, number)
        if build is None:
            raise NotFound(f"build {builder} #{number}")
        return build

    async def _step(self, builder: str, number: int, step_name: str) -> Any:
        build = await self._build(builder, number)
        step = build.getStep(step_name)
        if step is None:
            raise NotFound(f"step {step_name!r} in build {builder} #{number}")
        return step

    async def _log(self, request: IRequest, builder: str, number: int, step_name: str, log_name: str) -> LogFile:
        status = self._status()
        found = await status.locate_log(builder, number, step_name, log_name)
        if found is None:
            raise NotFound(f"log {log_name!r} in step {step_name!r} of build {builder} #{number}")
        step, log_data = found
        await self.authorize(request, (
            "builders", str(step.build.builder.builderid), "builds", str(number),
            "steps", str(step.number), "logs", log_data["slug"],
        ))
        lf = await status.open_log(step, log_data)
        if lf is None:
            raise NotFound(f"log {log_name!r} (an HTML log still being written)")
        return lf

    @staticmethod
    def _cache_headers(request: IRequest, lf: LogFile) -> None:
        request.setHeader(b"cache-control", FINISHED_CACHE if lf.isFinished() else LIVE_CACHE)

    @staticmethod
    def _stream(request: IRequest, lf: LogFile, consumer: RequestConsumer) -> Any:
        if request.method == b"HEAD":
            return b""
        lf.subscribeConsumer(consumer)
        return consumer.done

    @app.route("/builders/<builder>/builds/<int:number>/steps/<step>/logs/<log_name>",
               methods=["GET", "HEAD"])
    async def log_page(self, request: IRequest, builder: str, number: int, step: str, log_name: str) -> Any:
        lf = await self._log(request, builder, number, step, log_name)
        self._cache_headers(request, lf)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        if isinstance(lf, HTMLLogFile):
            # Build-made HTML must not run script on the master's origin.
            request.setHeader(b"content-security-policy", b"sandbox")
            return self._stream(request, lf, RequestConsumer(request, raw_html))
        if request.method != b"HEAD":
            request.write(page_header(f"{quote(log_name)}/text", live=not lf.isFinished()))
        return self._stream(request, lf, RequestConsumer(request, html_renderer(), PAGE_FOOTER))

    @app.route("/builders/<builder>/builds/<int:number>/steps/<step>/logs/<log_name>/text",
               methods=["GET", "HEAD"])
    async def text_page(self, request: IRequest, builder: str, number: int, step: str, log_name: str) -> Any:
        lf = await self._log(request, builder, number, step, log_name)
        self._cache_headers(request, lf)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        start = request.args.get(b"start")
        if start is None:
            return self._stream(request, lf, TextRequestConsumer(request))
        try:
            offset = int(start[0])
            if offset < 0:
                raise ValueError(offset)
        except ValueError:
            request.setResponseCode(400)
            return b"start must be a byte offset (a whole number >= 0)\n"
        body, size, more = lf.text_bytes(offset, START_LIMIT)
        request.setHeader(b"x-text-size", str(size).encode())
        if more or not lf.isFinished():
            request.setHeader(b"x-more-data", b"true")
        return body

    @app.route("/builders/<builder>/builds/<int:number>", methods=["GET", "HEAD"])
    async def build_page(self, request: IRequest, builder: str, number: int) -> bytes:
        build = await self._build(builder, number)
        await self.authorize(request, ("builders", str(build.builder.builderid), "builds", str(number)))
        items = []
        for step in build.getSteps():
            logs = await self._status().step_logs(step)
            links = "".join(
                f' <a href="{number}/steps/{quote(step.name)}/logs/{quote(entry["name"])}">'
                f"{html.escape(entry['name'])}</a>"
                for entry in logs
            )
            items.append(f"<li>{html.escape(step.name)}{links}</li>")
        return listing(f"Build {builder} #{number}", items, request)

    @app.route("/builders/<builder>/builds/<int:number>/steps/<step>/logs/", methods=["GET", "HEAD"])
    async def logs_page(self, request: IRequest, builder: str, number: int, step: str) -> bytes:
        step_status = await self._step(builder, number, step)
        await self.authorize(request, (
            "builders", str(step_status.build.builder.builderid), "builds", str(number),
            "steps", str(step_status.number), "logs",
        ))
        logs = await self._status().step_logs(step_status)
        items = [
            f'<li><a href="{quote(entry["name"])}">{html.escape(entry["name"])}</a>'
            f' (<a href="{quote(entry["name"])}/text">text</a>)</li>'
            for entry in logs
        ]
        return listing(f"Logs of step {step} in build {builder} #{number}", items, request)


def quote(name: str) -> str:
    return html.escape(url_quote(name, safe=""))


def listing(title: str, items: list[str], request: IRequest) -> bytes:
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"</head>\n<body>\n<h1>{html.escape(title)}</h1>\n<ul>\n" + "\n".join(items) + "\n</ul>\n</body></html>\n"
    ).encode()


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
