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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

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
# The most build numbers C{builds} lists (0.8 listed every build's file).
BUILD_NUMBERS = 1000
# A slave's recent builds looked at per builder: 0.8's default (its builds
# cache less one), and the most a request may ask for (C{numbuilds}).
SLAVE_BUILDS = 14
MOST_SLAVE_BUILDS = 100


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


# The resources, by endpoint: each gives the data of its answer.
_Data = Callable[..., Awaitable[Any]]
_RESOURCES: dict[str, _Data] = {}


def _resource(app: Klein, path: str) -> Callable[[_Data], Any]:
    """
    A JSON resource at C{path}: its function gives the data, and its
    route answers with it, or with the resources C{?select=} names below
    it (0.8's C{select}, on every resource).
    """

    def register(data: _Data) -> Any:
        _RESOURCES[data.__name__] = data

        async def answer(self: JsonStatus, request: IRequest, **values: Any) -> bytes:
            return await self._respond(request, data.__name__, values)

        answer.__name__ = data.__name__
        return app.route(path, methods=["GET"])(answer)

    return register


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

    async def _respond(self, request: IRequest, endpoint: str, values: dict[str, Any]) -> bytes:
        selected = request.args.get(b"select")
        if selected is None:
            return self._answer(request, await _RESOURCES[endpoint](self, request, **values))
        # 0.8 answered the selected resources below this one, by their
        # path, and not this one; each asks authz for itself.
        adapter = self.app.url_map.bind("localhost")
        here = unquote(adapter.build(endpoint, values)).rstrip("/")
        items = sorted(
            (unquote(v.decode("utf-8", "replace")).strip("/") for v in selected[:MAX_SELECT]),
            key=lambda item: item.count("/"),
            reverse=True,
        )
        data: dict[str, Any] = {}
        for item in items:
            node = data
            for segment in filter(None, item.split("/")):
                node = node.setdefault(segment, {})
            node.update(await self._selected(request, adapter, f"{here}/{item}"))
        return self._answer(request, data)

    async def _selected(self, request: IRequest, adapter: Any, path: str) -> Any:
        """The data of the resource at C{path}; 0.8's error for one there is not."""
        try:
            endpoint, values = adapter.match(path, method="GET")
            found = await _RESOURCES[endpoint](self, request, **values)
        except (NotFound, RequestRedirect, MethodNotAllowed, _NotFound, Forbidden):
            return {"error": "Not available"}
        return found if isinstance(found, dict) else {"value": found}

    @staticmethod
    def _answer(request: IRequest, data: Any) -> bytes:
        """
        0.8's rendering: compact unless as text, text/plain when as text,
        without empty values with C{filter} (as text's default), for any
        origin.
        """
        as_text = bool(_flag(request, b"as_text"))
        compact = _flag(request, b"compact")
        if compact is None:
            compact = not as_text
        filter_out = _flag(request, b"filter")
        if filter_out or (filter_out is None and as_text):
            data = FilterOut(data)
        if compact:
            body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        else:
            body = json.dumps(data, sort_keys=True, indent=2, default=str)
        kind = b"text/plain" if as_text else b"application/json"
        request.setHeader(b"content-type", kind + b"; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        # As 0.8 answered: only what an anonymous user may view is here.
        request.setHeader(b"access-control-allow-origin", b"*")
        return body.encode() + b"\n"

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

    @_resource(app, "/")
    async def root(self, request: IRequest) -> Any:
        await self.authorize(request, ("builders",))
        status = self._status()
        answer = {
            "builders": await _RESOURCES["builders"](self, request),
            "project": self._project(status),
        }
        if await self.authorize.allows(request, ("workers",)):
            answer["slaves"] = await _RESOURCES["slaves"](self, request)
        return answer

    @_resource(app, "/project")
    async def project(self, request: IRequest) -> Any:
        await self.authorize(request, ("builders",))
        return self._project(self._status())

    @staticmethod
    def _project(status: Any) -> dict[str, Any]:
        return dict(status.asDict())

    @_resource(app, "/builders")
    async def builders(self, request: IRequest) -> Any:
        """The builders this request may view, by name."""
        await self.authorize(request, ("builders",))
        status = self._status()
        answer = {}
        for name in status.getBuilderNames():
            builder = status.getBuilder(name)
            if await self.authorize.allows(request, ("builders", str(builder.builderid))):
                answer[name] = builder.asDict()
        return answer

    @_resource(app, "/builders/<path:builder>")
    async def builder(self, request: IRequest, builder: str) -> Any:
        found = await self._builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid)))
        return found.asDict()

    @_resource(app, "/builders/<path:builder>/builds")
    async def builds(self, request: IRequest, builder: str) -> Any:
        """0.8's: the builder's builds by number, each C{null} (see C{select} for their data)."""
        found = await self._builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid), "builds"))
        numbers = await self._status().master.data.get(
            ("builders", found.builderid, "builds"), order=["-number"], limit=BUILD_NUMBERS
        )
        answer: dict[str, None] = {}
        for b in numbers or []:
            path = ("builders", str(found.builderid), "builds", str(b["number"]))
            if not self.authorize.restricted() or await self.authorize.allows(request, path):
                answer[str(b["number"])] = None
        return answer

    @_resource(app, "/builders/<path:builder>/builds/_all")
    async def all_builds(self, request: IRequest, builder: str) -> Any:
        found = await self._builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid), "builds"))
        answer = {}
        for n in range(-1, -ALL_BUILDS - 1, -1):
            build = found.getBuild(n)
            if build is None:
                break
            if await self._may_view_build(request, build):
                answer[str(build.getNumber())] = await self._build_dict(request, build)
        return answer

    @_resource(app, "/builders/<path:builder>/builds/<number>")
    async def build(self, request: IRequest, builder: str, number: str) -> Any:
        # A build's answer holds its steps.
        build = await self._viewable_build(request, builder, number, ())
        await self.authorize(request, (*_build_path(build), "steps"))
        return await self._build_dict(request, build)

    @_resource(app, "/builders/<path:builder>/builds/<number>/steps")
    async def steps(self, request: IRequest, builder: str, number: str) -> Any:
        """0.8's: by index (C{"0"}, C{"1"}...), not by name."""
        build = await self._viewable_build(request, builder, number)
        return {str(i): s.asDict() for i, s in enumerate(build.getSteps())}

    @_resource(app, "/builders/<path:builder>/builds/<number>/steps/<path:step>")
    async def step(self, request: IRequest, builder: str, number: str, step: str) -> Any:
        # Also where .../logs/<log> comes for a log whose name holds a "/".
        build = await self._viewable_build(request, builder, number)
        found = _step_of(build, step)
        if found is None:
            log = _log_below(build, step)
            if log is None:
                raise _NotFound(f"step {step!r}")
            return await self._log_data(request, log)
        await self.authorize(request, _step_path(found))
        await self.authorize(request, (*_step_path(found), "logs"))  # the answer lists them
        return found.asDict()

    @_resource(app, "/builders/<path:builder>/builds/<number>/steps/<path:step>/logs")
    async def logs(self, request: IRequest, builder: str, number: str, step: str) -> Any:
        build = await self._viewable_build(request, builder, number)
        found = _step_of(build, step)
        if found is None:
            raise _NotFound(f"step {step!r}")
        await self.authorize(request, (*_step_path(found), "logs"))
        return {lf.getName(): lf.asDict() for lf in found.getLogs()}

    @_resource(app, "/builders/<path:builder>/builds/<number>/steps/<path:step>/logs/<log>")
    async def log(self, request: IRequest, builder: str, number: str, step: str, log: str) -> Any:
        build = await self._viewable_build(request, builder, number)
        found = _log_below(build, f"{step}/logs/{log}")
        if found is None:
            raise _NotFound(f"log {log!r} of step {step!r}")
        return await self._log_data(request, found)

    async def _log_data(self, request: IRequest, log: Any) -> Any:
        """A log's answer, if this request may view it (by its slug, as the data API names it)."""
        slug = log.slug or identifiers.forceIdentifier(50, log.getName())
        await self.authorize(request, (*_step_path(log.getStep()), "logs", slug))
        return log.asDict()

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

    async def _build_dict(self, request: IRequest, build: BuildStatus) -> dict[str, Any]:
        """
        A build's C{asDict()}, without the logs of the steps whose list of
        logs this request may not view (as a step's own answer needs it).
        """
        answer: dict[str, Any] = build.asDict()
        if not self.authorize.restricted():
            return answer
        hidden = set()
        for i, step in enumerate(build.getSteps()):
            if step.stepid is not None and not await self.authorize.allows(
                request, (*_step_path(step), "logs")
            ):
                hidden.add(id(step))
                answer["steps"][i]["logs"] = []
        answer["logs"] = [
            entry
            for lf, entry in zip(build.getLogs(), answer["logs"])
            if id(lf.getStep()) not in hidden
        ]
        return answer

    async def _may_view_build(self, request: IRequest, build: BuildStatus) -> bool:
        """Whether this request may view C{build} and its steps (its C{asDict()})."""
        path = _build_path(build)
        return await self.authorize.allows(request, path) and await self.authorize.allows(
            request, (*path, "steps")
        )

    @_resource(app, "/builders/<path:builder>/builds/<number>/source_stamp")
    async def source_stamp(self, request: IRequest, builder: str, number: str) -> Any:
        """0.8's: the build's (first) source stamp."""
        return (await self._source_stamp(request, builder, number)).asDict()

    @_resource(app, "/builders/<path:builder>/builds/<number>/source_stamp/changes")
    async def source_stamp_changes(self, request: IRequest, builder: str, number: str) -> Any:
        """0.8's: the source stamp's changes, by number."""
        stamp = await self._source_stamp(request, builder, number)
        await self.authorize(request, ("changes",))
        return {str(c.number): c.asDict() for c in stamp.changes}

    async def _source_stamp(self, request: IRequest, builder: str, number: str) -> Any:
        build = await self._viewable_build(request, builder, number, ())
        stamp = build.getSourceStamp()
        if stamp is None:
            raise _NotFound(f"source stamp of build {number!r}")
        return stamp

    @_resource(app, "/builders/<path:builder>/pendingBuilds")
    async def pending_builds(self, request: IRequest, builder: str) -> Any:
        """0.8's: the builder's requests not started yet."""
        found = await self._builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid)))
        await self.authorize(request, ("buildrequests",))
        pending = await found.getPendingBuildRequestStatuses()
        return [await r.asDict_async() for r in pending]

    @_resource(app, "/builders/<path:builder>/slaves")
    async def builder_slaves(self, request: IRequest, builder: str) -> Any:
        found = await self._builder(request, builder)
        await self.authorize(request, ("builders", str(found.builderid)))
        await self.authorize(request, ("workers",))
        return {s.getName(): await self._slave(request, s) for s in found.getSlaves()}

    @_resource(app, "/slaves")
    async def slaves(self, request: IRequest) -> Any:
        await self.authorize(request, ("workers",))
        status = self._status()
        return {
            name: await self._slave(request, status.getSlave(name))
            for name in status.getSlaveNames()
        }

    async def _slave(self, request: IRequest, slave: Any) -> dict[str, Any]:
        """
        A slave's C{asDict()}, with only the running builds this request
        may view, and, as 0.8's JSON added, C{builders}: for each builder
        it serves that this request may view, the numbers of its newest
        finished builds (C{numbuilds}, 14 by default) that ran on it.
        """
        builds = [b for b in slave.getRunningBuilds() if await self._may_view_build(request, b)]
        answer: dict[str, Any] = slave.asDict(running=builds)
        answer["runningBuilds"] = [await self._build_dict(request, b) for b in builds]
        try:
            numbuilds = int(request.args.get(b"numbuilds", [b"%d" % (SLAVE_BUILDS + 1)])[0])
        except ValueError:
            numbuilds = 10
        # 0.8 looked at the newest numbuilds - 1
        numbuilds = max(0, min(numbuilds - 1, MOST_SLAVE_BUILDS))
        status = self._status()
        answer["builders"] = {}
        for builder in status.builders.running.values():
            if builder.builderid not in slave.builderids:
                continue
            if not await self.authorize.allows(request, ("builders", str(builder.builderid))):
                continue
            recent = await status.master.data.get(
                ("builders", builder.builderid, "builds"), order=["-number"], limit=numbuilds
            )
            numbers = []
            for b in recent or []:
                if not b["complete"]:
                    break  # (0.8: a running one is among runningBuilds)
                path = ("builders", str(builder.builderid), "builds", str(b["number"]))
                if b["workerid"] == slave.workerid and await self.authorize.allows(request, path):
                    numbers.append(b["number"])
            answer["builders"][builder.name] = numbers
        return answer

    @_resource(app, "/slaves/<slave>")
    async def slave(self, request: IRequest, slave: str) -> Any:
        await self.authorize(request, ("workers",))
        status = self._status()
        if slave not in status.getSlaveNames():
            raise _NotFound(f"slave {slave!r}")
        return await self._slave(request, status.getSlave(slave))

    @_resource(app, "/changes")
    async def changes(self, request: IRequest) -> Any:
        await self.authorize(request, ("changes",))
        data = self._status().master.data
        found = await data.get(("changes",), order=["-changeid"], limit=RECENT_CHANGES)
        return _changes(found)

    @_resource(app, "/changes/<number>")
    async def change(self, request: IRequest, number: str) -> Any:
        await self.authorize(request, ("changes",))
        found = await self._change_data(self._status().master.data, number)
        if found is None:
            raise _NotFound(f"change {number!r}")
        return LegacyChange.from_data(found).asDict()

    @staticmethod
    async def _change_data(data: Any, number: str) -> Mapping[str, Any] | None:
        if not number.isascii() or not number.isdigit() or len(number) > 18:
            return None
        found: Mapping[str, Any] | None = await data.get(("changes", int(number)))
        return found


def _step_of(build: BuildStatus, step: str) -> Any:
    """A build's step by index (as 0.8 tried first) or name."""
    steps = build.getSteps()
    if step.isascii() and step.isdigit() and int(step) < len(steps):
        return steps[int(step)]
    return build.getStep(step)


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
