"""
0.8's WebStatus on a real master: its pages, 0.8-style add-ons mounted
with putChild, 0.8's /json, and authz, over real HTTP.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import treq
from buildbot.plugins import util
from buildbot.process.results import FAILURE, SUCCESS, Results
from twisted.internet import defer, endpoints, protocol, reactor
from twisted.web import resource

import buildbot_logfile  # noqa: F401  (0.8's import paths)
from buildbot_logfile.bridge import LegacyStatus
from tests.authz_rules import BuilderMatcher, EndpointsMatcher
from tests.masters import (
    LiveLog,
    MasterTestCase,
    Recorder,
    live_log_step,
    named_logs_step,
    python_step,
)

# isort: off
from buildbot.status.html import WebStatus
from buildbot.status.web.authz import Authz
from buildbot.status.web.base import (
    ActionResource,
    HtmlResource,
    build_get_class,
    path_to_build,
    path_to_builder,
    path_to_step,
)

# isort: on


class LastBuildBadge(resource.Resource):
    """Written as 0.8 badge add-ons were: the last build of a builder, as text."""

    isLeaf = True

    def __init__(self, webstatus: Any) -> None:
        resource.Resource.__init__(self)
        self.webstatus = webstatus

    def render_GET(self, request: Any) -> bytes:
        name = request.args[b"builder"][0].decode()
        build = self.webstatus.getStatus().getBuilder(name).getBuild(-1)
        assert request.site.buildbot_service is self.webstatus
        request.setHeader(b"content-type", b"text/plain")
        return f"{name} #{build.getNumber()}: {Results[build.getResults()]}".encode()


class Summary(HtmlResource):
    """Written as 0.8 HtmlResource add-ons were: every builder's last build, linked."""

    pageTitle = "Summary"

    def content(self, request: Any, ctx: dict[str, Any]) -> str:
        status = self.getStatus(request)
        rows = []
        for name in status.getBuilderNames():
            builder = status.getBuilder(name)
            build = builder.getLastFinishedBuild()
            if build is None:
                continue
            rows.append(
                f'<li><a href="{path_to_builder(request, builder)}">{name}</a>'
                f' <a href="{path_to_build(request, build)}">#{build.getNumber()}</a>'
                f" {Results[build.getResults()]}</li>"
            )
        return (
            f"<html><title>{ctx['pageTitle']} of {ctx['title']}</title>"
            f"<ul>{''.join(rows)}</ul></html>"
        )


class Py2Style(resource.Resource):
    """An add-on as 0.8 wrote them under Python 2: render returns a str."""

    isLeaf = True

    def render_GET(self, request: Any) -> Any:
        return "plain str"


class Slashed(HtmlResource):
    """An 0.8 page with addSlash: 0.8 answered it with or without the slash."""

    addSlash = True

    def content(self, request: Any, ctx: dict[str, Any]) -> str:
        return f"root {ctx['path_to_root']} x={request.args.get(b'x')}"


class Bodied(HtmlResource):
    """As 0.8.14's pages that only had a body, and asked the WebStatus for more."""

    pageTitle = "Who <am> I"

    def body(self, request: Any) -> str:
        master = self.getBuildmaster(request)
        view = self.getAuthz(request).actionAllowed("view", request)
        return f"{master.config.title}: {view.result} {build_get_class(last_build(request))}"


def last_build(request: Any) -> Any:
    return request.site.buildbot_service.getStatus().getBuilder("fails").getBuild(-1)


class Go(ActionResource):
    """An 0.8 action: does its thing, then sends the user on."""

    def performAction(self, request: Any) -> Any:
        return defer.succeed(("../summary", "done & dusted"))


class Broken(resource.Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> Any:
        raise ValueError("an add-on with a bug")


class KeptAlive(protocol.Protocol):
    """An HTTP/1.1 client connection left open after its answer."""

    def __init__(self) -> None:
        self.answered: defer.Deferred[None] = defer.Deferred()
        self.lost: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        if b"plain str" in data and not self.answered.called:
            self.answered.callback(None)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)


class WebStatusTestCase(MasterTestCase):
    @defer.inlineCallbacks
    def start_webstatus(self, authz: Any = None, **master: Any) -> defer.Generator:
        recorder = Recorder()
        self.web = WebStatus(http_port="tcp:0:interface=127.0.0.1", authz=authz, allowForce=True)
        self.web.putChild("badge", LastBuildBadge(self.web))
        self.web.putChild(b"summary", Summary())
        self.web.putChild("py2", Py2Style())
        self.web.putChild("broken", Broken())
        self.web.putChild("slashed", Slashed())
        self.web.putChild("bodied", Bodied())
        self.web.putChild("go", Go())
        yield self.start_master(
            {
                "passes": [python_step("emit", "print('fine')")],
                "fails": [python_step("emit", "import sys; print('bad'); sys.exit(1)")],
            },
            receivers=[recorder, self.web],
            **master,
        )
        self.recorder = recorder
        self.base = f"http://127.0.0.1:{self.web.port.getHost().port}"

    @defer.inlineCallbacks
    def two_builds_each(self) -> defer.Generator:
        for n in (1, 2):
            for builder in ("passes", "fails"):
                yield self.force(builder)
            yield self.recorder.wait_for_builds(2 * n)

    @defer.inlineCallbacks
    def get(self, path: str) -> defer.Generator:
        response = yield treq.get(self.base + path, persistent=False)
        body = yield treq.content(response)
        return response, body

    @defer.inlineCallbacks
    def get_as_is(self, path: str) -> defer.Generator:
        """C{path}, answered as it is (no redirect followed), asked with a foreign Host."""
        response = yield treq.get(
            self.base + path, headers={"Host": "evil.example"}, allow_redirects=False,
            persistent=False,
        )  # fmt: skip
        body = yield treq.content(response)
        return response, body

    @defer.inlineCallbacks
    def get_json(self, path: str) -> defer.Generator:
        response, body = yield self.get(path)
        self.assertEqual(response.code, 200, body)
        return json.loads(body)


class WebStatusTests(WebStatusTestCase):
    @defer.inlineCallbacks
    def test_add_ons_and_pages(self) -> defer.Generator:
        yield self.start_webstatus()
        yield self.two_builds_each()
        response, body = yield self.get("/badge?builder=fails")
        self.assertEqual((response.code, body), (200, b"fails #2: failure"))
        response, body = yield self.get("/summary")
        self.assertEqual(response.code, 200)
        self.assertIn(b'<a href="./builders/passes">passes</a>', body)
        self.assertIn(b'<a href="./builders/fails/builds/2">#2</a> failure', body)
        self.assertIn(b"<title>Summary of Buildbot</title>", body)  # 0.8.14's context
        response, body = yield self.get("/bodied")
        self.assertEqual(
            body,
            b"<!DOCTYPE html><html><head><title>Who &lt;am&gt; I</title></head>"
            b"<body>Buildbot: True failure</body></html>",
        )
        response = yield treq.head(self.base + "/bodied", persistent=False)
        self.assertEqual(response.headers.getRawHeaders("content-length"), [str(len(body))])
        response, _ = yield self.get_as_is("/go")
        self.assertEqual(
            (response.code, response.headers.getRawHeaders("location")),
            (302, ["../summary?alert_msg=done%20%26%20dusted"]),
        )
        # Twisted's answers: a method the add-on has no render_ for, a HEAD
        response = yield treq.post(self.base + "/badge?builder=fails", persistent=False)
        self.assertEqual(response.code, 405)
        self.assertIn("GET", response.headers.getRawHeaders("allow")[0])
        response = yield treq.head(self.base + "/py2", persistent=False)
        self.assertEqual(
            (response.code, response.headers.getRawHeaders("content-length")), (200, ["9"])
        )
        # the same pages as LegacyStatus's own port
        response, body = yield self.get("/builders/fails/builds/2/steps/emit/logs/stdio/text")
        self.assertEqual((response.code, body), (200, b"bad\n"))
        response, body = yield self.get("/builders/fails/builds/2")
        self.assertEqual(response.code, 200)
        self.assertIn(b"failure", body)
        response, _ = yield self.get("/builders/nope")
        self.assertEqual(response.code, 404)
        response, body = yield self.get("/py2")
        self.assertEqual((response.code, body), (200, b"plain str"))
        response, body = yield self.get("/broken")
        self.assertEqual(response.code, 500)  # the add-on's bug, answered, not a hang
        self.assertNotIn(b"an add-on with a bug", body)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertIs(self.web.getStatus(), self.legacy_status())

    @defer.inlineCallbacks
    def test_a_reconfig_replaces_the_webstatus_and_closes_its_connections(
        self,
    ) -> defer.Generator:
        yield self.start_webstatus()
        port = self.web.port.getHost().port
        kept_alive = yield endpoints.connectProtocol(
            endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port), KeptAlive()
        )
        kept_alive.transport.write(b"GET /py2 HTTP/1.1\r\nHost: x\r\n\r\n")
        yield kept_alive.answered
        # As in 0.8, a WebStatus never compares equal to another: what
        # putChild mounted cannot be compared.
        new = WebStatus(http_port=f"tcp:{port}:interface=127.0.0.1")
        new.putChild("v2", Py2Style())
        yield self.reconfig(services=[LegacyStatus(receivers=[self.recorder, new])])
        yield kept_alive.lost
        response, body = yield self.get("/v2")
        self.assertEqual((response.code, body), (200, b"plain str"))
        response, _ = yield self.get("/py2")
        self.assertEqual(response.code, 404)
        self.assertIs(self.web.getStatus(), self.legacy_status())  # kept for late requests

    @defer.inlineCallbacks
    def test_json_answers_as_the_data_api(self) -> defer.Generator:
        yield self.start_webstatus()
        yield self.two_builds_each()
        data = self.master.data
        builders = yield self.get_json("/json/builders")
        self.assertEqual(sorted(builders), ["fails", "passes"])
        self.assertEqual(builders["fails"]["state"], "idle")
        selected = yield self.get_json("/json/builders?select=passes&select=nope")
        self.assertEqual(selected["nope"], {"error": "Not available"})  # as 0.8 said
        self.assertEqual(selected["passes"], builders["passes"])
        # 0.8's select on any resource: paths below it, nested
        picked = yield self.get_json("/json?select=project&select=builders/fails/builds/-1/steps/1")
        self.assertEqual(sorted(picked), ["builders", "project"])
        emit = picked["builders"]["fails"]["builds"]["-1"]["steps"]["1"]
        self.assertEqual((emit["name"], emit["results"][0]), ("emit", FAILURE))
        self.assertEqual(
            (yield self.get_json("/json/builders/fails/builds")), {"2": None, "1": None}
        )
        steps = yield self.get_json("/json/builders/fails/builds/1/steps")
        self.assertEqual(
            {k: v["name"] for k, v in steps.items()}, {"0": "worker_preparation", "1": "emit"}
        )
        self.assertEqual((yield self.get_json("/json/builders/fails/builds/1/steps/1")), steps["1"])
        stamp = yield self.get_json("/json/builders/fails/builds/1/source_stamp")
        self.assertEqual((stamp["revision"], stamp["hasPatch"]), ("", False))
        self.assertEqual(
            (yield self.get_json("/json/builders/fails/builds/1/source_stamp/changes")), {}
        )
        self.assertEqual((yield self.get_json("/json/builders/fails/pendingBuilds")), [])
        # as_text, or filter, drops what is empty or false, as 0.8's FilterOut
        response, body = yield self.get("/json/builders/passes/builds/1?as_text=1")
        self.assertNotIn("eta", json.loads(body))
        self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"), ["*"])
        self.assertIn("eta", (yield self.get_json("/json/builders/passes/builds/1")))
        self.assertNotIn("eta", (yield self.get_json("/json/builders/passes/builds/1?filter=1")))
        for builder, results in (("passes", SUCCESS), ("fails", FAILURE)):
            db_builds = yield data.get(("builders", builder, "builds"))
            newest = max(db_builds, key=lambda b: b["number"])
            last = yield self.get_json(f"/json/builders/{builder}/builds/-1")
            self.assertEqual(
                (last["number"], last["results"], last["builderName"]),
                (newest["number"], results, builder),
            )
            self.assertEqual(
                last["times"], [newest["started_at"].timestamp(), newest["complete_at"].timestamp()]
            )
            self.assertEqual([s["name"] for s in last["steps"]], ["worker_preparation", "emit"])
            both = yield self.get_json(f"/json/builders/{builder}/builds?select=1&select=-1")
            self.assertEqual(sorted(both), ["-1", "1"])
            self.assertEqual(both["1"]["number"], 1)
            every = yield self.get_json(f"/json/builders/{builder}/builds/_all")
            self.assertEqual(sorted(every), sorted(str(b["number"]) for b in db_builds))
        step = yield self.get_json("/json/builders/fails/builds/1/steps/emit")
        db_step = yield data.get(("builders", "fails", "builds", 1, "steps", "emit"))
        self.assertEqual(
            (step["results"][0], step["step_number"], step["isFinished"]),
            (db_step["results"], db_step["number"], True),
        )
        logs = yield self.get_json("/json/builders/fails/builds/1/steps/emit/logs")
        self.assertEqual(list(logs), ["stdio"])
        self.assertEqual(logs["stdio"]["step"], "emit")
        slaves = yield self.get_json("/json/slaves")
        workers = yield data.get(("workers",))
        self.assertEqual(sorted(slaves), sorted(w["name"] for w in workers))
        self.assertTrue(slaves["local1"]["connected"])
        # 0.8's: each builder's newest finished builds that ran on the slave
        self.assertEqual(slaves["local1"]["builders"], {"fails": [2, 1], "passes": [2, 1]})
        self.assertEqual(slaves["local1"]["info"], workers[0]["workerinfo"])
        project = yield self.get_json("/json/project")
        self.assertEqual(project["buildbotURL"], self.master.config.buildbotURL)
        yield self.master.data.updates.addChange(
            author="a", files=["f"], comments="c", revision="r1", codebase=""
        )
        (change,) = yield data.get(("changes",))
        changes = yield self.get_json("/json/changes")
        self.assertEqual(changes[str(change["changeid"])]["rev"], "r1")
        one = yield self.get_json(f"/json/changes/{change['changeid']}")
        self.assertEqual(one["who"], "a")
        # 0.8's forms: compact by default; as_text indents, as text/plain
        response, body = yield self.get("/json/project")
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["application/json; charset=utf-8"]
        )
        self.assertNotIn(b"\n  ", body)
        response, body = yield self.get("/json/project?as_text=1")
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"]
        )
        self.assertIn(b'\n  "buildbotURL"', body)
        response, body = yield self.get("/json/project?as_text=1&compact=1")
        self.assertNotIn(b"\n  ", body)
        for path in ("/json/builders/nope", "/json/builders/fails/builds/9",
                     "/json/builders/fails/builds/x", "/json/changes/999", "/json/slaves/nope",
                     "/json/builders/fails/builds/1/steps/nope"):  # fmt: skip
            response, body = yield self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertIn(b"Not available", body)

    @defer.inlineCallbacks
    def test_with_or_without_a_trailing_slash(self) -> defer.Generator:
        # 0.8's WebStatus answered /json and /json/ alike (and every /json
        # resource and addSlash page); nothing is a redirect made from Host.
        yield self.start_webstatus()
        yield self.two_builds_each()
        for path in ("/json", "/json/builders", "/json/builders/fails/builds/1/steps/emit",
                     "/json/slaves"):  # fmt: skip
            for query in ("", "?as_text=1", "?as_text=1&compact=1"):
                slashed = yield self.get_as_is(path + "/" + query)
                answer = yield self.get_as_is(path + query)
                for response, _ in (answer, slashed):
                    self.assertEqual(response.code, 200, path + query)
                    self.assertIsNone(response.headers.getRawHeaders("location"))
                    self.assertEqual(
                        response.headers.getRawHeaders("content-type"),
                        [("text/plain" if query else "application/json") + "; charset=utf-8"],
                    )
                self.assertEqual(answer[1], slashed[1], path + query)
        response, body = yield self.get_as_is("/json?as_text=1")
        self.assertTrue(body.startswith(b'{\n  "builders": {\n'), body[:40])
        self.assertEqual(json.loads(body)["project"]["buildbotURL"], self.master.config.buildbotURL)
        response, body = yield self.get_as_is("/json/builders/?select=passes")
        self.assertEqual(list(json.loads(body)), ["passes"])
        for path in ("/json/builders", "/json"):
            response = yield treq.post(self.base + path, persistent=False)
            body = yield treq.content(response)
            self.assertEqual(
                (response.code, json.loads(body)),
                (405, {"error": "Only GET and HEAD are answered."}),
            )
            self.assertEqual(response.headers.getRawHeaders("allow"), ["GET, HEAD"])
        no_such = {"error": "Not available: no such resource"}
        for path in ("/json/nope", "/json/nope/", "/json/builders//fails"):
            response, body = yield self.get_as_is(path)
            self.assertEqual((response.code, json.loads(body)), (404, no_such), path)
            self.assertIsNone(response.headers.getRawHeaders("location"))
        # an addSlash page, as 0.8 served it: the same page either way
        response, body = yield self.get_as_is("/slashed?x=1")
        self.assertEqual((response.code, body), (200, b"root ./ x=[b'1']"))
        response, body = yield self.get_as_is("/slashed/?x=1")
        self.assertEqual((response.code, body), (200, b"root ../ x=[b'1']"))
        # the pages answer as on LegacyStatus's port
        response, body = yield self.get_as_is("/")
        self.assertEqual(
            (response.code, body), (404, b"No such page '/': the pages start at /builders\n")
        )
        response, body = yield self.get_as_is("/builders/fails/builds/x")
        self.assertEqual(
            (response.code, body),
            (404, b"No such build fails #x: a build number is a whole number\n"),
        )
        response, body = yield self.get_as_is("/builders/fails/builds/1/steps/emit/logs")
        self.assertEqual(
            (response.code, response.headers.getRawHeaders("location")), (301, ["logs/"])
        )


class WebStatusAuthzTests(WebStatusTestCase):
    PATHS = (
        "/badge?builder=passes",
        "/summary",
        "/json/builders",
        "/json/builders/passes/builds/-1",
        "/builders/passes/builds/1/steps/emit/logs/stdio/text",
        "/builders",
    )

    @defer.inlineCallbacks
    def check(self, expected: int) -> defer.Generator:
        yield self.force("passes")
        yield self.recorder.wait_for_builds(1)
        for path in self.PATHS:
            response, body = yield self.get(path)
            self.assertEqual(response.code, expected, (path, body))
            if expected == 403:
                self.assertNotIn(b"fine", body)

    @defer.inlineCallbacks
    def test_the_masters_authz_refuses(self) -> defer.Generator:
        authz = util.Authz(allowRules=[util.AnyEndpointMatcher(role="admins")], roleMatchers=[])
        yield self.start_webstatus(www={"port": None, "authz": authz})
        yield self.check(403)
        # what does not exist answers as what does: nothing to learn
        for path in ("/json/project", "/json/builders/nope", "/json/builders/passes/builds/99",
                     "/json/builders/nope/builds/1/steps"):  # fmt: skip
            response, _ = yield self.get(path)
            self.assertEqual(response.code, 403, path)

    @defer.inlineCallbacks
    def test_the_masters_authz_allows(self) -> defer.Generator:
        yield self.start_webstatus(www={"port": None, "authz": util.Authz()})
        yield self.check(200)

    @defer.inlineCallbacks
    def test_an_08_authz_that_keeps_viewers_out(self) -> defer.Generator:
        yield self.start_webstatus(authz=Authz(view=False, forceBuild=True))
        yield self.check(403)


class JsonAuthzTests(WebStatusTestCase):
    @defer.inlineCallbacks
    def test_collections_hold_only_what_this_user_may_view(self) -> defer.Generator:
        # Builder "hidden" and build 2 of "shown" are for admins.
        hidden = LiveLog()
        authz = util.Authz(
            allowRules=[
                BuilderMatcher(role="admins", builder="hidden"),
                BuilderMatcher(role="admins", builder="shown", number=2),
            ],
            roleMatchers=[],
        )
        self.web = WebStatus(http_port="tcp:0:interface=127.0.0.1")
        recorder = Recorder()
        yield self.start_master(
            {"shown": [python_step("emit", "print('fine')")], "hidden": [live_log_step(hidden)]},
            receivers=[recorder, self.web],
            www={"port": None, "authz": authz},
        )
        self.recorder = recorder
        self.base = f"http://127.0.0.1:{self.web.port.getHost().port}"
        for n in (1, 2):
            yield self.force("shown")
            yield self.recorder.wait_for_builds(n)
        yield self.force("hidden")
        yield hidden.opened  # a build of "hidden" runs on local1
        self.addCleanup(lambda: hidden.end() if not hidden._end.called else None)
        slave = {"builders": {"shown": [1]}, "runningBuilds": []}
        root = yield self.get_json("/json")
        self.assertEqual(list(root["builders"]), ["shown"])
        self.assertEqual(list(root["slaves"]), ["local1"])
        for answer in (
            root["slaves"]["local1"],
            (yield self.get_json("/json/slaves"))["local1"],
            (yield self.get_json("/json/slaves/local1")),
            (yield self.get_json("/json/builders/shown/slaves"))["local1"],
        ):
            self.assertEqual({key: answer[key] for key in slave}, slave)
        self.assertEqual(list((yield self.get_json("/json/builders"))), ["shown"])
        self.assertEqual(list((yield self.get_json("/json/builders/shown/builds/_all"))), ["1"])
        selected = yield self.get_json("/json/builders/shown/builds?select=1&select=2")
        self.assertEqual(selected["2"], {"error": "Not available"})  # as one that is not there
        self.assertEqual(selected["1"]["number"], 1)
        for path in ("/json/builders/shown/builds/2", "/json/builders/hidden",
                     "/json/builders/hidden/builds/1", "/json/builders/hidden/slaves"):  # fmt: skip
            response, _ = yield self.get(path)
            self.assertEqual(response.code, 403, path)
        hidden.end()
        yield self.recorder.wait_for_builds(3)


class JsonLogNamesTests(WebStatusTestCase):
    @defer.inlineCallbacks
    def test_a_log_whose_name_holds_a_slash(self) -> defer.Generator:
        # 0.8 allowed any log name; its /json named a log in one segment.
        self.web = WebStatus(http_port="tcp:0:interface=127.0.0.1")
        recorder = Recorder()
        yield self.start_master(
            {"b1": [named_logs_step({"a/b log": ("out\n", ""), "b log": ("b\n", "")})]},
            receivers=[recorder, self.web],
        )
        self.base = f"http://127.0.0.1:{self.web.port.getHost().port}"
        yield self.force("b1")
        yield recorder.wait_for_builds(1)
        step = "/json/builders/b1/builds/1/steps/slash%20logs"
        for path, name in (("/logs/a%2Fb%20log", "a/b log"), ("/logs/b%20log", "b log")):
            answer = yield self.get_json(step + path)
            self.assertEqual(answer["name"], name, path)
        response, body = yield self.get(step + "/logs/a%2Fnope")
        self.assertEqual(response.code, 404)
        self.assertEqual(
            json.loads(body), {"error": "Not available: step 'slash logs/logs/a/nope'"}
        )


class JsonStepAndLogAuthzTests(WebStatusTestCase):
    # As the data API asks: a step's answer needs the step and the list of
    # its logs, a log's the log.
    STEP = "/json/builders/passes/builds/1/steps/emit"
    LOG = STEP + "/logs/stdio"

    @defer.inlineCallbacks
    def check(self, hidden: str, refused: list[str], allowed: list[str]) -> defer.Generator:
        rule = EndpointsMatcher("admins", hidden)
        authz = util.Authz(allowRules=[rule], roleMatchers=[])
        yield self.start_webstatus(www={"port": None, "authz": authz})
        yield self.force("passes")
        yield self.recorder.wait_for_builds(1)
        for path, code in [(p, 403) for p in refused] + [(p, 200) for p in allowed]:
            response, _ = yield self.get(path)
            self.assertEqual(response.code, code, path)

    def test_a_rule_on_a_step(self) -> defer.Deferred[None]:
        return self.check("StepEndpoint", [self.STEP], [self.LOG, self.STEP + "/logs"])

    @defer.inlineCallbacks
    def test_a_rule_on_the_list_of_a_steps_logs(self) -> defer.Generator:
        yield self.check("LogsEndpoint", [self.STEP, self.STEP + "/logs"], [self.LOG])
        # nor does the build name them, in /json or on its pages
        build = yield self.get_json("/json/builders/passes/builds/1")
        self.assertEqual((build["logs"], [s["logs"] for s in build["steps"]]), ([], [[], []]))
        for page in ("/builders/passes/builds/1", "/builders/passes/builds/1/steps/emit"):
            response, body = yield self.get(page)
            self.assertEqual(response.code, 200, page)
            self.assertNotIn(b"stdio", body, page)

    def test_a_rule_on_a_log(self) -> defer.Deferred[None]:
        return self.check("LogEndpoint", [self.LOG], [self.STEP, self.STEP + "/logs"])


def test_paths_to_names_of_dots_only_are_the_pages_links() -> None:
    # A browser resolves "." and ".." in a link: the pages link them as "_"
    # and "__", and read those back.
    request = SimpleNamespace(prepath=[b"waterfall"])
    builder = SimpleNamespace(getName=lambda: "..")
    build = SimpleNamespace(getBuilder=lambda: builder, getNumber=lambda: 3)
    step = SimpleNamespace(getName=lambda: ".", getBuild=lambda: build)
    assert path_to_builder(request, builder) == "./builders/__"
    assert path_to_step(request, step) == "./builders/__/builds/3/steps/_"
    builder = SimpleNamespace(getName=lambda: "a/b ..")
    assert path_to_builder(request, builder) == "./builders/a%2Fb%20.."
