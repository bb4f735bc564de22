"""
0.8's JSON status (C{/json/...} on a C{WebStatus} port): builders, builds,
steps, logs, slaves, changes and the project, in the shapes of the status
objects' C{asDict()}, with 0.8's query arguments: C{select} (repeatable;
build numbers may be negative, counting from the newest), C{as_text=1}
(indented, as text/plain) and C{compact=1}.

Work per request is bounded: at most L{MAX_SELECT} selected items and
L{ALL_BUILDS} builds for C{builds/_all}, L{RECENT_CHANGES} changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from buildbot.util import identifiers
from buildbot.www.authz import Forbidden
from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from buildbot_logfile._authz import AnonymousAuthorizer
from buildbot_logfile.status import BuilderStatus, BuildStatus, LegacyChange

MAX_SELECT = 50
ALL_BUILDS = 100
RECENT_CHANGES = 50


_EMPTY: tuple[Any, ...] = ("", False, None, [], {}, ())


def FilterOut(data: Any) -> Any:
    """
    0.8's C{FilterOut}: a copy of C{data} without the dict entries whose
    value is empty (C{""}, C{None}, C{[]}, C{{}}, C{()}) or false, which in
    0.8's comparison includes C{0}: a result of C{SUCCESS} goes too.  A
    list is kept whole unless all it holds is empty, and then is C{None};
    tuples become lists.
    """
    if isinstance(data, (list, tuple)):
        items = [FilterOut(item) for item in data]
        return items if any(item not in _EMPTY for item in items) else None
    if isinstance(data, dict):
        pairs = ((key, FilterOut(value)) for key, value in data.items())
        return {key: value for key, value in pairs if value not in _EMPTY}
    return data


class _NotFound(Exception):
    """What a JSON path names does not exist."""


class _WithOrWithoutSlash(Resource):
    """
    0.8's JSON resources answered with or without a trailing slash:
    C{/json} as C{/json/}, C{/json/builders/} as C{/json/builders}.  The
    routes see the path without it, so werkzeug never redirects (it would
    build the address from the C{Host} header, and drop the query).
    """

    isLeaf = True

    def __init__(self, routes: Resource) -> None:
        super().__init__()
        self.routes = routes

    def render(self, request: IRequest) -> Any:
        if not request.postpath:
            request.postpath.append(b"")
        elif len(request.postpath) > 1 and request.postpath[-1] == b"":
            request.postpath.pop()
        return self.routes.render(request)


def _flag(request: IRequest, name: bytes) -> bool | None:
    values = request.args.get(name)
    if not values:
        return None
    return values[-1].lower() in (b"1", b"true", b"yes", b"on")


class JsonStatus:
    """
    The C{/json} resources, as a Klein app.  C{get_status} returns the 0.8
    C{Status} (None while the master has no running C{LegacyStatus});
    C{authorize} asks the master's authz, as for the pages.
    """

    app = Klein()

    def __init__(self, get_status: Callable[[], Any], authorize: AnonymousAuthorizer) -> None:
        self.get_status = get_status
        self.authorize = authorize

    def resource(self) -> Any:
        return _WithOrWithoutSlash(self.app.resource())

    @app.handle_errors(_NotFound)
    def not_found(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(404)
        return self._answer(request, {"error": f"Not available: {failure.value.args[0]}"})

    @app.handle_errors(Forbidden)
    def forbidden(self, request: IRequest, failure: Any) -> bytes:
        request.setResponseCode(403)
        return self._answer(request, {"error": "You may not view this."})

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(self, request: IRequest, failure: Any) -> bytes:
        # werkzeug would answer with an HTML page.
        request.setResponseCode(405)
        request.setHeader(b"allow", b"GET, HEAD")
        return self._answer(request, {"error": "Only GET and HEAD are answered."})

    @app.handle_errors(NotFound, RequestRedirect)
    def no_route(self, request: IRequest, failure: Any) -> bytes:
        # werkzeug's redirect (to the path with slashes merged) would be
        # built from the Host header: that path is no resource either.
        request.setResponseCode(404)
        return self._answer(request, {"error": "Not available: no such resource"})

    def _status(self) -> Any:
        status = self.get_status()
        if status is None:
            raise _NotFound("the status (reporters.LegacyStatus is not running)")
        return status

    @staticmethod
    def _answer(request: IRequest, data: Any) -> bytes:
        """0.8's rendering: compact unless as text, text/plain when as_text."""
        as_text = bool(_flag(request, b"as_text"))
        compact = _flag(request, b"compact")
        if compact is None:
            compact = not as_text
        if compact:
            body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        else:
            body = json.dumps(data, sort_keys=True, indent=2, default=str)
        kind = b"text/plain" if as_text else b"application/json"
        request.setHeader(b"content-type", kind + b"; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        return body.encode() + b"\n"

    @staticmethod
    def _selected(request: IRequest) -> list[str] | None:
        values = request.args.get(b"select")
        if values is None:
            return None
        return [v.decode("utf-8", "replace") for v in values[:MAX_SELECT]]

    async def _builder(self, request: IRequest, name: str) -> BuilderStatus:
        """
        A builder by name.  Whether it exists is told only to those who may
        view builders: as the pages do, a 404 must tell nothing to someone
        who would get a 403.
        """
        await self.authorize(request, ("builders",))
        status = self._status()
        if name not in status.getBuilderNames():
            raise _NotFound(f"builder {name!r}")
        return status.getBuilder(name)

    @staticmethod
    def _build(builder: BuilderStatus, number: str) -> BuildStatus:
        try:
            n = int(number)
        except ValueError:
            raise _NotFound(f"build {number!r}") from None
        build = builder.getBuild(n) if -(2**31) < n < 2**63 else None
        if build is None:
            raise _NotFound(f"build {number!r} of {builder.name!r}")
        return build

    # The resources

    @app.route("/", methods=["GET"])
    async def root(self, request: IRequest) -> bytes:
        await self.authorize(request, ("builders",))
        status = self._status()
        answer = {
            "builders": await self._builders(request, status, None),
            "project": self._project(status),
        }
        if await self.authorize.allows(request, ("workers",)):
            answer["slaves"] = await self._slaves(request, status, None)
        return self._answer(request, answer)

    @app.route("/project", methods=["GET"])
    async def project(self, request: IRequest) -> bytes:
        await self.authorize(request, ("builders",))
        return self._answer(request, self._project(self._status()))

    @staticmethod
    def _project(status: Any) -> dict[str, Any]:
        return dict(status.asDict())

    @app.route("/builders", methods=["GET"])
    async def builders(self, request: IRequest) -> bytes:
        await self.authorize(request, ("builders",))
        return self._answer(
            request, await self._builders(request, self._status(), self._selected(request))
        )

    async def _builders(
        self, request: IRequest, status: Any, selected: list[str] | None
    ) -> dict[str, Any]:
        """The builders this request may view (those C{selected}, if given), by name."""
        answer = {}
        for name in _chosen(status.getBuilderNames(), selected):
            builder = status.getBuilder(name)
            if await self.authorize.allows(request, ("builders", str(builder.builderid))):
                answer[name] = builder.asDict()
        return answer

    @app.route("/builders/<path:builder>", methods=["GET"])
    async def builder(self, request: IRequest, builder: str) -> bytes:
        found = await self._builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid)))
        return self._answer(request, found.asDict())

    @app.route("/builders/<path:builder>/builds", methods=["GET"])
    async def builds(self, request: IRequest, builder: str) -> bytes:
        found = await self._builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid), "builds"))
        answer = {}
        for number in self._selected(request) or []:
            try:
                build = self._build(found, number)
            except _NotFound:
                continue  # 0.8 left out what it could not find
            if await self._may_view_build(request, build):
                answer[number] = build.asDict()
        return self._answer(request, answer)

    @app.route("/builders/<path:builder>/builds/_all", methods=["GET"])
    async def all_builds(self, request: IRequest, builder: str) -> bytes:
        found = await self._builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid), "builds"))
        answer = {}
        for n in range(-1, -ALL_BUILDS - 1, -1):
            build = found.getBuild(n)
            if build is None:
                break
            if await self._may_view_build(request, build):
                answer[str(build.getNumber())] = build.asDict()
        return self._answer(request, answer)

    @app.route("/builders/<path:builder>/builds/<number>", methods=["GET"])
    async def build(self, request: IRequest, builder: str, number: str) -> bytes:
        # A build's answer holds its steps.
        build = await self._viewable_build(request, builder, number, ())
        await self.authorize(request, (*_build_path(build), "steps"))
        return self._answer(request, build.asDict())

    @app.route("/builders/<path:builder>/builds/<number>/steps", methods=["GET"])
    async def steps(self, request: IRequest, builder: str, number: str) -> bytes:
        build = await self._viewable_build(request, builder, number)
        selected = self._selected(request)
        return self._answer(
            request,
            {
                s.getName(): s.asDict()
                for s in build.getSteps()
                if selected is None or s.getName() in selected
            },
        )

    @app.route("/builders/<path:builder>/builds/<number>/steps/<path:step>", methods=["GET"])
    async def step(self, request: IRequest, builder: str, number: str, step: str) -> bytes:
        # Also where .../logs/<log> comes for a log whose name holds a "/".
        build = await self._viewable_build(request, builder, number)
        found = build.getStep(step)
        if found is None:
            log = _log_below(build, step)
            if log is None:
                raise _NotFound(f"step {step!r}")
            return await self._log_answer(request, log)
        await self.authorize(request, _step_path(found))
        await self.authorize(request, (*_step_path(found), "logs"))  # the answer lists them
        return self._answer(request, found.asDict())

    @app.route("/builders/<path:builder>/builds/<number>/steps/<path:step>/logs", methods=["GET"])
    async def logs(self, request: IRequest, builder: str, number: str, step: str) -> bytes:
        build = await self._viewable_build(request, builder, number)
        found = build.getStep(step)
        if found is None:
            raise _NotFound(f"step {step!r}")
        await self.authorize(request, (*_step_path(found), "logs"))
        return self._answer(request, {lf.getName(): lf.asDict() for lf in found.getLogs()})

    @app.route(
        "/builders/<path:builder>/builds/<number>/steps/<path:step>/logs/<log>", methods=["GET"]
    )
    async def log(self, request: IRequest, builder: str, number: str, step: str, log: str) -> bytes:
        build = await self._viewable_build(request, builder, number)
        found = _log_below(build, f"{step}/logs/{log}")
        if found is None:
            raise _NotFound(f"log {log!r} of step {step!r}")
        return await self._log_answer(request, found)

    async def _log_answer(self, request: IRequest, log: Any) -> bytes:
        """A log's answer, if this request may view it (by its slug, as the data API names it)."""
        slug = log.slug or identifiers.forceIdentifier(50, log.getName())
        await self.authorize(request, (*_step_path(log.getStep()), "logs", slug))
        return self._answer(request, log.asDict())

    async def _viewable_build(
        self, request: IRequest, builder: str, number: str, below: tuple[str, ...] = ("steps",)
    ) -> BuildStatus:
        """
        A build by number (its 404 only for those who may view the
        builder's builds), if this request may view C{below} it.
        """
        found = await self._builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid), "builds"))
        build = self._build(found, number)
        await self.authorize(request, (*_build_path(build), *below))
        return build

    async def _may_view_build(self, request: IRequest, build: BuildStatus) -> bool:
        """Whether this request may view C{build} and its steps (its C{asDict()})."""
        path = _build_path(build)
        return await self.authorize.allows(request, path) and await self.authorize.allows(
            request, (*path, "steps")
        )

    @app.route("/builders/<path:builder>/slaves", methods=["GET"])
    async def builder_slaves(self, request: IRequest, builder: str) -> bytes:
        found = await self._builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid)))
        await self.authorize(request, ("workers",))
        return self._answer(
            request, {s.getName(): await self._slave(request, s) for s in found.getSlaves()}
        )

    @app.route("/slaves", methods=["GET"])
    async def slaves(self, request: IRequest) -> bytes:
        await self.authorize(request, ("workers",))
        return self._answer(
            request, await self._slaves(request, self._status(), self._selected(request))
        )

    async def _slaves(
        self, request: IRequest, status: Any, selected: list[str] | None
    ) -> dict[str, Any]:
        return {
            name: await self._slave(request, status.getSlave(name))
            for name in _chosen(status.getSlaveNames(), selected)
        }

    async def _slave(self, request: IRequest, slave: Any) -> dict[str, Any]:
        """
        A slave's C{asDict()}, with only the builders and running builds
        this request may view: the workers' data API path says nothing of
        what runs on them.
        """
        builds = [b for b in slave.getRunningBuilds() if await self._may_view_build(request, b)]
        answer: dict[str, Any] = slave.asDict(running=builds)
        builders = []
        for entry in answer["builders"]:
            builder = self._status().getBuilder(entry["name"])
            if await self.authorize.allows(request, ("builders", str(builder.builderid))):
                builders.append(entry)
        answer["builders"] = builders
        return answer

    @app.route("/slaves/<slave>", methods=["GET"])
    async def slave(self, request: IRequest, slave: str) -> bytes:
        await self.authorize(request, ("workers",))
        status = self._status()
        if slave not in status.getSlaveNames():
            raise _NotFound(f"slave {slave!r}")
        return self._answer(request, await self._slave(request, status.getSlave(slave)))

    @app.route("/changes", methods=["GET"])
    async def changes(self, request: IRequest) -> bytes:
        await self.authorize(request, ("changes",))
        data = self._status().master.data
        selected = self._selected(request)
        if selected is None:
            found = await data.get(("changes",), order=["-changeid"], limit=RECENT_CHANGES)
        else:
            found = [await self._change_data(data, n) for n in selected]
        return self._answer(request, _changes(found))

    @app.route("/changes/<number>", methods=["GET"])
    async def change(self, request: IRequest, number: str) -> bytes:
        await self.authorize(request, ("changes",))
        found = await self._change_data(self._status().master.data, number)
        if found is None:
            raise _NotFound(f"change {number!r}")
        return self._answer(request, LegacyChange.from_data(found).asDict())

    @staticmethod
    async def _change_data(data: Any, number: str) -> Mapping[str, Any] | None:
        if not number.isascii() or not number.isdigit() or len(number) > 18:
            return None
        found: Mapping[str, Any] | None = await data.get(("changes", int(number)))
        return found


def _chosen(names: list[str], selected: list[str] | None) -> list[str]:
    """C{names}, or those of them C{selected}, in the order asked."""
    return names if selected is None else [n for n in selected if n in names]


def _log_below(build: BuildStatus, path: str) -> Any:
    """
    The log that C{path} (below C{steps/}) names as C{S/logs/L}, or None:
    the route cannot take a log's name that holds a C{/} (0.8 allowed any
    name), so the names of the build's steps and their logs are tried.
    """
    for step in sorted(build.getSteps(), key=lambda s: len(s.getName()), reverse=True):
        head = step.getName() + "/logs/"
        if path.startswith(head):
            for lf in step.getLogs():
                if lf.getName() == path[len(head) :]:
                    return lf
    return None


def _build_path(build: BuildStatus) -> tuple[str, ...]:
    return ("builders", str(build.builder.builderid), "builds", str(build.getNumber()))


def _step_path(step: Any) -> tuple[str, ...]:
    return (*_build_path(step.getBuild()), "steps", str(step.number))


def _changes(found: list[Mapping[str, Any] | None]) -> dict[str, Any]:
    return {str(c["changeid"]): LegacyChange.from_data(c).asDict() for c in found if c is not None}
