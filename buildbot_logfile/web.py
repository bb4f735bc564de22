"""
0.8's log pages, served with Klein through L{LogFileProducer}, and the
listener of their standalone port.

A page registers the log's producer with the request as a streaming
producer: a slow client pauses it, a closed connection stops it, and a live
log streams until it finishes.  Logs come from a L{LogSource}, so a log
whose spool is gone is rebuilt from the database, or served from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

import sqlalchemy as sa
from buildbot.www.authz import Forbidden
from klein import Klein
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.policies import WrappingFactory
from twisted.python import log
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Site
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, RequestRedirect

from buildbot_logfile import _encoded, _finished
from buildbot_logfile import _page_set as page_set
from buildbot_logfile._authz import AnonymousAuthorizer, DataPath, ViewGate, WwwUserAuthorizer
from buildbot_logfile._consumers import (
    RequestConsumer,
    TextRequestConsumer,
    html_renderer,
    raw_html,
)
from buildbot_logfile._lookup import LogSource, OpenLog
from buildbot_logfile._lru import LRU
from buildbot_logfile._render import PAGE_FOOTER, dotted_name, link_name, page_header, quote
from buildbot_logfile.logfile import HTMLLogFile
from buildbot_logfile.status import BuilderStatus, BuildStatus, BuildStepStatus

__all__ = ["AnonymousAuthorizer", "LegacyLogPages", "PagesListener", "WwwUserAuthorizer"]

FINISHED_CACHE = "max-age=604800"
LIVE_CACHE = "no-cache"

# A ?start= answer carries at most this much text; X-More-Data says that
# more follows and X-Text-Size where to ask for it.
START_LIMIT = 1024 * 1024
# The finished builds a builder's page lists.
RECENT_BUILDS = 20

# Logs of running steps whose location a page keeps (see LegacyLogPages).
RUNNING_LOGS_CACHE_SIZE = 1024

# A path under builders/ that names no builder: how many of the builder
# names it may begin with are looked up (shortest first) to tell what is
# wrong with it.
MAX_NAMES_TRIED = 4

# On every answer: no guessing a type from log text, no framing elsewhere.
_SAFETY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"SAMEORIGIN",
}


class _NumberConverter(BaseConverter):
    """A build number in ASCII digits (werkzeug's C{int} takes any Unicode digit)."""

    regex = r"[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        return int(value)


class _GuardedResource(Resource):
    """
    In front of the Klein pages: the safety headers on every answer, and a
    400 for what Klein would fail on with a 500 (a path that is not UTF-8
    once percent-decoded, a C{Host} header that is not ASCII).
    """

    isLeaf = True

    def __init__(self, pages: Resource) -> None:
        super().__init__()
        self.pages = pages

    def render(self, request: IRequest) -> Any:
        for name, value in _SAFETY_HEADERS.items():
            request.setHeader(name, value)
        try:
            unquote_to_bytes(request.path).decode("utf-8")
            (request.getHeader(b"host") or b"").decode("ascii")
        except UnicodeDecodeError:
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"The path or the Host header is not valid.\n"
        return self.pages.render(request)


def guarded(pages: Resource) -> Resource:
    """C{pages} (a Klein app's resource) behind the safety headers and checks of every page."""
    return _GuardedResource(pages)


def relative_redirect(request: IRequest, location: bytes) -> bytes:
    """
    A 301 to C{location}, relative to the page asked for, with the
    request's query string: never built from the C{Host} header.
    """
    query = request.uri.partition(b"?")[2]
    target = location + (b"?" + query if query else b"")
    request.setResponseCode(301)
    request.setHeader(b"location", target)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"Moved to " + target + b"\n"


def routed_path(request: IRequest) -> str:
    """The path a Klein app routes on, below where it is mounted."""
    return "/" + "/".join(segment.decode("utf-8", "replace") for segment in request.postpath)


def _build_number_problem(text: str) -> str | None:
    """
    Why C{text} (the segment after C{builds/}) is no build number, or None
    if it is one.  As in 0.8 (C{int()}), leading zeros are allowed.
    """
    if re.fullmatch(r"[0-9]{1,19}", text):
        return None
    if text.isascii() and text.isdigit():
        return ""  # a number, beyond any build's
    return ": a build number is a whole number"


def url_segments(request: IRequest) -> list[str]:
    """The segments of the URL's path, each unquoted (a C{%2F} is in its segment)."""
    return [s.decode("utf-8", "replace") for s in (*request.prepath, *request.postpath)]


def builder_depth(request: IRequest, builder: str, after: int = 0) -> int:
    """
    How many of the URL's own C{/} the builder's name took (a name with a
    C{/}, reached with it as it is, not as C{%2F}), C{after} segments
    following it: the page's relative links climb as many more.
    """
    segments = url_segments(request)
    tail = "/".join([builder, *segments[len(segments) - after :]])
    return sum(1 for i in url_separators(request, tail) if i < len(builder))


def url_separators(request: IRequest, tail: str) -> frozenset[int]:
    """
    Where in C{tail}, the end of the path a page's route matched, the
    URL's own C{/} are.  Twisted splits a path at them before it unquotes
    each segment, so a C{%2F} stays in its segment, as part of a name;
    the routes see both as C{/}.
    """
    segments = url_segments(request)
    joined = "/".join(segments)
    if not joined.endswith(tail):  # not the path routed: take every "/" as the URL's
        return frozenset(i for i, c in enumerate(tail) if c == "/")
    start = len(joined) - len(tail)
    found = set()
    offset = -1  # of the "/" after each segment
    for segment in segments[:-1]:
        offset += len(segment) + 1
        if offset >= start:
            found.add(offset - start)
    return frozenset(found)


def _url_names(step: BuildStepStatus) -> list[str]:
    """The names a URL may give C{step} by: its own, and its link's if that differs."""
    linked = link_name(step.name)
    return [step.name] if linked == step.name else [step.name, linked]


class _FoundLog(NamedTuple):
    """The log a path below C{steps/} names, and which of its pages."""

    step: BuildStepStatus
    log_data: Any
    text: bool  # its text page, not its HTML page
    name: str  # the log as the path names it: its name or its slug
    exact: bool  # each part one segment of the URL: the only reading 0.8 had


class _NotFound(Exception):
    """A builder, build, step or log that does not exist."""


class _Unavailable(Exception):
    """The master has no LegacyStatus service to serve logs from."""


class LegacyLogPages:
    """
    The pages, as a Klein app.  C{get_source} returns where logs come from
    (None when the master has no running C{LegacyStatus}); C{authorize} is
    an L{AnonymousAuthorizer} or a L{WwwUserAuthorizer}.
    """

    app = Klein()
    app.url_map.converters["number"] = _NumberConverter

    def __init__(self, get_source: Any, authorize: AnonymousAuthorizer | WwwUserAuthorizer) -> None:
        self.get_source = get_source
        self.authorize = authorize
        # Logs of running steps, as located: while a step runs its logs
        # keep their id, name, slug and type, and a page opened on a live
        # log then asks the database nothing (a thousand readers arriving
        # would otherwise queue their queries behind the build's appends).
        # Only the step object that was located is trusted, so a step that
        # finished or a new source looks again.
        self._running_logs: LRU[tuple[int, str, frozenset[int]], _FoundLog] = LRU(
            RUNNING_LOGS_CACHE_SIZE
        )
        self.encoded = _encoded.PAGES

    def resource(self) -> Resource:
        return guarded(self.app.resource())

    @app.handle_errors(_NotFound)
    def not_found(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"No such {failure.value.args[0]}\n".encode()

    @app.handle_errors(NotFound, RequestRedirect)
    def no_route(self, request: IRequest, failure: Any) -> bytes:
        """
        A path no page's route matches.  werkzeug answers one that would
        match with slashes merged (or with one more) with a redirect built
        from the C{Host} header: here it is not a page either.
        """
        path = routed_path(request)
        hint = "" if path.startswith("/builders/") else ": the pages start at /builders"
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"No such page {path!r}{hint}\n".encode()

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(self, request: IRequest, failure: Any) -> bytes:
        """The pages only read: werkzeug would answer other methods with an HTML page."""
        request.setResponseCode(405)
        request.setHeader(b"allow", b"GET, HEAD")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"The pages only answer GET and HEAD.\n"

    @app.handle_errors(_Unavailable)
    def unavailable(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(503)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Old-style log pages need reporters.LegacyStatus in c['services'].\n"

    @app.handle_errors(sa.exc.SQLAlchemyError)
    def database_failed(self, request: IRequest, failure: Any) -> bytes:
        """The database away (restarting, say): the next request is answered once it is back."""
        log.msg(f"legacy log pages: {request.uri!r} not answered: {failure.getErrorMessage()}")
        request.setResponseCode(503)
        request.setHeader(b"retry-after", b"1")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"The database did not answer; try again.\n"

    @app.handle_errors(Forbidden)
    def forbidden(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(403)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"You may not view this.\n"

    def _source(self) -> LogSource:
        source = self.get_source()
        if source is None:
            raise _Unavailable()
        return source

    async def _missing(self, request: IRequest, what: str, parent: DataPath) -> _NotFound:
        """
        A 404 for C{what}, unless this user may not view C{parent} (the
        data API path of the collection it would be in): then a 403, as
        the data API answers, so that a 404 tells nothing to someone who
        may not look.
        """
        await self.authorize(request, parent)
        return _NotFound(what)

    async def _builder(self, segment: str) -> BuilderStatus | None:
        """
        The builder a URL's C{segment} names: by its name, but for the link
        of a name of dots only (see L{link_name}) where no builder has it
        as its own name; None if none.
        """
        source = self._source()
        found = await source.locate_builder(segment)
        dotted = dotted_name(segment)
        if found is None and dotted is not None:
            found = await source.locate_builder(dotted)
        return found

    @staticmethod
    def _step_named(build: BuildStatus, segment: str) -> BuildStepStatus | None:
        """The step of C{build} that a URL's C{segment} names, as L{_builder}."""
        step = build.getStep(segment)
        dotted = dotted_name(segment)
        if step is None and dotted is not None:
            step = build.getStep(dotted)
        return step

    async def _build(self, request: IRequest, builder: str, number: int) -> BuildStatus:
        found = await self._builder(builder)
        if found is None:
            raise await self._missing(request, f"builder {builder}", ("builders",))
        build = await self._source().locate_build(found.name, number)
        if build is None:
            # Asked by the builder's id, as for its builds that exist (a
            # matcher may know builders by id only).
            parent = ("builders", str(found.builderid), "builds")
            raise await self._missing(request, f"build {found.name} #{number}", parent)
        return build

    async def _step(
        self, request: IRequest, builder: str, number: int, step_name: str
    ) -> BuildStepStatus:
        build = await self._build(request, builder, number)
        step = self._step_named(build, step_name)
        if step is None:
            raise await self._no_step(request, build, step_name)
        return step

    async def _no_step(
        self, request: IRequest, build: BuildStatus, path: str, below: bool = False
    ) -> _NotFound:
        """
        The 404 (or 403) for C{path}, which names no step of C{build}.
        C{below}: the path may go on below a step, as the step page's
        route sends any path under C{steps/} that is not a page
        (C{S/logs/L/text/extra}): then, if it begins with a step's name,
        what follows is named.
        """
        steps = ("builders", str(build.builder.builderid), "builds", str(build.number), "steps")
        of_build = f"build {build.builder.name} #{build.number}"
        name = path
        if below:
            # The longest name of a step that the path begins with (then a "/").
            names = ((step, name) for step in build.getSteps() for name in _url_names(step))
            for step, step_name in sorted(names, key=lambda n: len(n[1]), reverse=True):
                if path.startswith(step_name + "/"):
                    rest = path[len(step_name) :]
                    what = f"page {rest!r} in step {step.name!r} of {of_build}"
                    return await self._missing(request, what, (*steps, str(step.number)))
            name = re.split(r"/logs(?=/|$)", path, maxsplit=1)[0]
        return await self._missing(request, f"step {name!r} in {of_build}", steps)

    async def _no_builder(self, request: IRequest, path: str) -> _NotFound:
        """
        The 404 (or 403) for C{path}, which names no builder.  The builder
        page's route sends any path under C{builders/} that is not a page:
        if one begins with a builder's name then C{/builds}, or then a
        last C{/}, what follows is named (a build number that is none, a
        segment too many).
        """
        ends = sorted(
            {m.start() for m in re.finditer(r"/builds(?=/|$)", path)}
            | ({len(path) - 1} if path.endswith("/") else set())
        )[:MAX_NAMES_TRIED]
        source = self._source()
        for end in ends:
            found = await source.locate_builder(path[:end])
            if found is not None:
                break
        else:
            name = path[: ends[0]] if ends else path
            return await self._missing(request, f"builder {name}", ("builders",))
        name, rest = path[:end], path[end:]
        parent = ("builders", str(found.builderid), "builds")
        number = re.match(r"/builds/([^/]+)", rest)
        problem = _build_number_problem(number.group(1)) if number else None
        if number and problem is not None:
            return await self._missing(request, f"build {name} #{number.group(1)}{problem}", parent)
        return await self._missing(request, f"page {rest!r} in builder {name}", parent)

    async def _find_log(self, request: IRequest, build: BuildStatus, tail: str) -> _FoundLog | None:
        """
        The log page that C{tail}, the path below C{steps/} (C{S/logs/L} or
        C{S/logs/L/text}), names in C{build}, or None.  A step's or a log's
        name may hold a C{/} (0.8 allowed any name, and so does Buildbot
        4), which the routes cannot tell from the C{/} between the parts:
        every reading of the path as the name of a step there is, C{logs},
        the name (or slug) of one of its logs and perhaps C{text} is tried.
        """
        separators = url_separators(request, tail)
        key = (build.buildid, tail, separators)
        cached = self._running_logs.get(key)
        if (
            cached is not None
            and build.getStep(cached.step.name) is cached.step
            and not cached.step.isFinished()
        ):
            return cached
        readings = []
        # A build's step names are unique; a name of dots only is also
        # read as its link names it (see link_name), after the names.
        for step in build.getSteps():
            for linked, name in enumerate(_url_names(step)):
                head = name + "/logs/"
                if not tail.startswith(head) or len(tail) == len(head):
                    continue
                # Where the parts of the path end in tail, as each reads it.
                ends = frozenset({len(name), len(head) - 1})
                readings.append((step, tail[len(head) :], False, ends, linked))
                if tail.endswith("/text") and len(tail) - len("/text") > len(head):
                    text_ends = ends | {len(tail) - len("/text")}
                    readings.append(
                        (step, tail[len(head) : -len("/text")], True, text_ends, linked)
                    )
        # The reading whose parts are the URL's segments first: what 0.8
        # served, as its resources took one segment each (a %2F in a name,
        # a "/" between the parts).  So ".../logs/x/text" is the text of a
        # log "x" and ".../logs/x%2Ftext" the page of a log "x/text", as
        # 0.8 served them and linked them, when the step has both.  Then
        # readings further from the segments (a plain "/" in a name, a %2F
        # between parts: 0.8 answered those with a 404), then the longest
        # step name.
        readings.sort(key=lambda r: (len(r[3] ^ separators), r[4], -len(r[0].name)))
        source = self._source()
        logs_of: dict[int | None, list[Any]] = {}
        for step, log_name, text, ends, _ in readings:
            if step.stepid not in logs_of:
                logs_of[step.stepid] = list(await source.step_logs(step))
            matches = (
                d for by in ("name", "slug") for d in logs_of[step.stepid] if d[by] == log_name
            )
            log_data = next(matches, None)
            if log_data is None:
                continue
            found = _FoundLog(step, log_data, text, log_name, exact=ends == separators)
            # Only the reading of the segments is kept: no log or step
            # that comes later can come before it.
            if found.exact and not step.isFinished():
                self._running_logs.put(key, found)
            return found
        return None

    async def _log(
        self, request: IRequest, build: BuildStatus, tail: str, route: tuple[str, str] | None
    ) -> tuple[_FoundLog, OpenLog, ViewGate]:
        """
        The log page at C{tail}, the path below C{build}'s C{steps/}, if
        this user may view the log, with the log opened and the answer's
        type and caching set.  C{route}: the step and log that the page's
        route read in the path, for the 404; None: a path under C{steps/}
        that no log page's route matched.
        """
        found = await self._find_log(request, build, tail)
        if found is None:
            if route is None:
                raise await self._no_step(request, build, tail, below=True)
            step_name, log_name = route
            step = self._step_named(build, step_name)
            if step is None:
                raise await self._no_step(request, build, step_name)
            of_build = f"build {build.builder.name} #{build.number}"
            what = f"log {log_name!r} in step {step_name!r} of {of_build}"
            raise await self._missing(request, what, self._logs_path(step))
        gate = ViewGate(self.authorize, request, self._view_paths(found))
        await gate.check()
        opened = await self._source().open_log(found.step, found.log_data)
        if opened is None or opened.logfile is None:
            raise _NotFound(f"log {found.name!r} (an HTML log still being written)")
        content_type = b"text/plain" if found.text else b"text/html"
        request.setHeader(b"content-type", content_type + b"; charset=utf-8")
        if opened.logfile.isFinished():
            private = b"private, " if self.authorize.restricted() else b""
            request.setHeader(b"cache-control", private + FINISHED_CACHE.encode())
            request.setHeader(b"vary", b"accept-encoding")
        else:
            request.setHeader(b"cache-control", LIVE_CACHE.encode())
        return found, opened, gate

    @classmethod
    def _view_paths(cls, found: _FoundLog) -> tuple[DataPath, DataPath]:
        """
        What a user must be let view to see a log's page: the log, and its
        text (the data API serves that apart, at .../contents, and a site
        may let only some users read it).
        """
        log_path = (*cls._logs_path(found.step), found.log_data["slug"])
        return log_path, (*log_path, "contents")

    @staticmethod
    def _logs_path(step: BuildStepStatus) -> DataPath:
        """The data API path of C{step}'s logs."""
        build = step.build
        build_path = ("builders", str(build.builder.builderid), "builds", str(build.number))
        return (*build_path, "steps", str(step.number), "logs")

    def _encoded(
        self, request: IRequest, opened: OpenLog, page: str, head: bytes, trailer: bytes
    ) -> Any:
        """
        The answer to a client that accepts gzip, for a finished log: its
        encoded C{page} (see L{_encoded}), when it is ready, else None (and
        it is made for the next client).
        """
        lf = opened.logfile
        assert lf is not None
        accepted = request.requestHeaders.getRawHeaders(b"accept-encoding")
        if not (lf.isFinished() and lf.spooled and _encoded.accepts_gzip(accepted)):
            return None
        ready = self.encoded.open(lf.getFilename(), page)
        if ready is None:
            self.encoded.make(lf.getFilename(), page, head, trailer)
            return None
        f, size = ready
        request.setHeader(b"content-encoding", b"gzip")
        request.setHeader(b"content-length", str(size).encode())
        if request.method == b"HEAD":
            f.close()
            return b""
        return _encoded.FileSender(request, f, self.encoded.path(lf.getFilename(), page)).start()

    @staticmethod
    def _stream(
        request: IRequest,
        gate: ViewGate,
        opened: OpenLog,
        consumer: RequestConsumer,
        html: bool = False,
    ) -> Any:
        if request.method == b"HEAD":
            return b""
        consumer.gate = gate
        # A finished log's page is read from its spool as a file is (_finished).
        served = _finished.serve(request, opened, consumer, html)
        if served is not None:
            return served
        opened.stream(consumer)
        return consumer.done

    @app.route(
        "/builders/<path:builder>/builds/<number:number>/steps/<path:step>/logs/<log_name>",
        methods=["GET", "HEAD"],
    )
    async def log_page(
        self, request: IRequest, builder: str, number: int, step: str, log_name: str
    ) -> Any:
        build = await self._build(request, builder, number)
        return await self._log_page(request, build, f"{step}/logs/{log_name}", (step, log_name))

    @app.route(
        "/builders/<path:builder>/builds/<number:number>/steps/<path:step>/logs/<log_name>/text",
        methods=["GET", "HEAD"],
    )
    async def text_page(
        self, request: IRequest, builder: str, number: int, step: str, log_name: str
    ) -> Any:
        build = await self._build(request, builder, number)
        tail = f"{step}/logs/{log_name}/text"
        return await self._log_page(request, build, tail, (step, log_name))

    async def _log_page(
        self, request: IRequest, build: BuildStatus, tail: str, route: tuple[str, str] | None
    ) -> Any:
        """A log's HTML page or text page, whichever C{tail} names (see L{_log})."""
        found, opened, gate = await self._log(request, build, tail, route)
        if found.text:
            return await self._text(request, gate, opened)
        return self._html(request, found, gate, opened)

    def _html(self, request: IRequest, found: _FoundLog, gate: ViewGate, opened: OpenLog) -> Any:
        lf = opened.logfile
        assert lf is not None
        if isinstance(lf, HTMLLogFile):
            # Build-made HTML must not run script on the master's origin.
            request.setHeader(b"content-security-policy", b"sandbox")
            return self._stream(request, gate, opened, RequestConsumer(request, raw_html))
        # Relative, as 0.8's childLink("text") was: the page's own last
        # segment, then text (".../logs/a/b%20log" links "b%20log/text").
        last = (request.postpath or request.prepath)[-1].decode("utf-8", "replace")
        head = page_header(f"{quote(last)}/text", live=not lf.isFinished())
        # The encoded page holds the head of the page that made it, whose
        # link leads to the text from a page whose last segment is the
        # log's whole name or slug (as every link names it), and only from
        # such a page.
        whole = last == found.name
        encoded = self._encoded(request, opened, "html", head, PAGE_FOOTER) if whole else None
        if encoded is not None:
            return encoded
        if request.method != b"HEAD":
            request.write(head)
        consumer = RequestConsumer(request, html_renderer(), PAGE_FOOTER)
        return self._stream(request, gate, opened, consumer, html=True)

    async def _text(self, request: IRequest, gate: ViewGate, opened: OpenLog) -> Any:
        start = request.args.get(b"start")
        if start is None:
            encoded = self._encoded(request, opened, "text", b"", b"")
            if encoded is not None:
                return encoded
            return self._stream(request, gate, opened, TextRequestConsumer(request))
        if not re.fullmatch(rb"[0-9]{1,19}", start[0]):
            request.setResponseCode(400)
            # The log's own headers are set by now: no cache may keep this.
            request.setHeader(b"cache-control", b"no-store")
            return b"start must be a byte offset: a whole number from 0 to 19 digits long\n"
        body, size, more = await opened.text_bytes(int(start[0]), START_LIMIT)
        request.setHeader(b"x-text-size", str(size).encode())
        assert opened.logfile is not None
        if more or not opened.logfile.isFinished():
            request.setHeader(b"x-more-data", b"true")
        return body

    @app.route("/builders", methods=["GET", "HEAD"])
    async def builders_page(self, request: IRequest) -> bytes:
        await self.authorize(request, ("builders",))
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return page_set.builders_page(self._source().builder_names())

    @app.route("/builders/", methods=["GET", "HEAD"])
    async def builders_page_with_slash(self, request: IRequest) -> bytes:
        # The same page, its links relative to where it is.
        await self.authorize(request, ("builders",))
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return page_set.builders_page(self._source().builder_names(), prefix="")

    @app.route("/builders/<path:builder>", methods=["GET", "HEAD"])
    async def builder_page(self, request: IRequest, builder: str) -> bytes:
        # Also where any path under builders/ that is not a page comes.
        source = self._source()
        found = await self._builder(builder)
        if found is None:
            raise await self._no_builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid)))
        await self.authorize(request, ("builders", str(found.builderid), "builds"))  # listed
        recent = await source.recent_builds(found, RECENT_BUILDS)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return page_set.builder_page(
            found, found.getCurrentBuilds(), recent, builder_depth(request, builder)
        )

    @app.route("/builders/<path:builder>/builds/<number:number>", methods=["GET", "HEAD"])
    async def build_page(self, request: IRequest, builder: str, number: int) -> bytes:
        build = await self._build(request, builder, number)
        build_path = ("builders", str(build.builder.builderid), "builds", str(number))
        await self.authorize(request, build_path)
        await self.authorize(request, (*build_path, "steps"))  # the page lists them
        logs_of = {step.stepid: await self._listed_logs(request, step) for step in build.getSteps()}
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return page_set.build_page(build, logs_of, builder_depth(request, builder, after=2))

    async def _listed_logs(self, request: IRequest, step: BuildStepStatus) -> list[Any]:
        """A step's logs, or none if this request may not view the list of them."""
        if (
            step.stepid is not None
            and self.authorize.restricted()
            and not await self.authorize.allows(request, self._logs_path(step))
        ):
            return []
        return list(await self._source().step_logs(step))

    @app.route(
        "/builders/<path:builder>/builds/<number:number>/steps/<path:step>", methods=["GET", "HEAD"]
    )
    async def step_page(self, request: IRequest, builder: str, number: int, step: str) -> Any:
        # Also where any path under steps/ that no other route matches
        # comes: a log page whose log's name holds a "/" is one.
        build = await self._build(request, builder, number)
        step_status = self._step_named(build, step)
        if step_status is None:
            return await self._log_page(request, build, step, None)
        await self.authorize(request, (
            "builders", str(step_status.build.builder.builderid), "builds", str(number),
            "steps", str(step_status.number),
        ))  # fmt: skip
        logs = await self._listed_logs(request, step_status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return page_set.step_page(step_status, logs, len(url_separators(request, step)))

    @app.route(
        "/builders/<path:builder>/builds/<number:number>/steps/<path:step>/logs",
        methods=["GET", "HEAD"],
    )
    async def logs_page_without_slash(
        self, request: IRequest, builder: str, number: int, step: str
    ) -> bytes:
        # Relative, unlike werkzeug's own redirect, which trusts the Host;
        # and only to the logs of a step there is (not of "..").
        step_status = await self._step(request, builder, number, step)
        await self.authorize(request, self._logs_path(step_status))
        return relative_redirect(request, b"logs/")

    @app.route(
        "/builders/<path:builder>/builds/<number:number>/steps/<path:step>/logs/",
        methods=["GET", "HEAD"],
    )
    async def logs_page(self, request: IRequest, builder: str, number: int, step: str) -> bytes:
        step_status = await self._step(request, builder, number, step)
        await self.authorize(request, self._logs_path(step_status))
        logs = await self._source().step_logs(step_status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        build = step_status.build
        title = f"Logs of step {step_status.name} in build {build.builder.name} #{number}"
        return page_set.logs_page(title, logs)


class PagesListener:
    """
    The standalone port of the pages: listens on a strports description
    and stops listening, whatever the description becomes on reconfig.
    """

    def __init__(
        self,
        pages: LegacyLogPages,
        root: Callable[[], tuple[Resource, dict[str, Any]]] | None = None,
        closes_connections: bool = False,
    ) -> None:
        """
        @param root: makes the site's root resource and the attributes of
            its C{Site} (a WebStatus serves more than the pages); without
            it the root is the pages.
        @param closes_connections: whether L{close} closes the connections
            open: a WebStatus's, as 0.8's did when it was replaced.
        """
        self.pages = pages
        self.closes_connections = closes_connections
        self._root = root or (lambda: (pages.resource(), {}))
        self.description: str | None = None
        self.port: IListeningPort | None = None
        # What was listened on, with the connections it keeps open.
        self._factories: list[WrappingFactory] = []

    async def listen_on(self, description: str | None) -> None:
        """Listen on C{description} (None: nowhere), unless already there."""
        if description == self.description:
            return
        await self.stop()
        if description is not None:
            from twisted.internet import reactor

            endpoint = serverFromString(reactor, description)
            root, attributes = self._root()
            site = Site(root)
            for name, value in attributes.items():
                setattr(site, name, value)
            if self.closes_connections:
                # Wrapped, to know its open connections (a call more per write).
                factory = WrappingFactory(site)
                self._factories.append(factory)
                self.port = await endpoint.listen(factory)
            else:
                self.port = await endpoint.listen(site)
            self.description = description

    async def stop(self) -> None:
        """Stop listening."""
        self.description = None
        if self.port is not None:
            port, self.port = self.port, None
            await defer.maybeDeferred(port.stopListening)

    async def close(self) -> None:
        """Stop listening, and close the connections open (see C{closes_connections})."""
        await self.stop()
        for factory in self._factories:
            for connection in list(factory.protocols):
                # At once, even from a client that stopped reading.
                connection.transport.abortConnection()
        self._factories.clear()
