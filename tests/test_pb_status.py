"""
0.8's PB status listener on a real master: real PB clients log in,
subscribe as 0.8's C{buildbot statuslog} did, and hear real builds; what
they hear and what the references they are sent answer is checked against
the database.
"""

from __future__ import annotations

import os
import shutil
import socket
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
import twisted.test
from buildbot.process.results import SUCCESS
from twisted.cred import credentials
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, error, reactor, ssl
from twisted.python import log
from twisted.spread import banana, pb

from buildbot_logfile import _pb_status
from buildbot_logfile._pb_status import (
    MODES,
    IRemote,
    PBListener,
    RemoteBuilder,
    StatusClientPerspective,
    _listening_portstr,
    _pieces,
)
from buildbot_logfile.bridge import LegacyStatus
from tests.masters import (
    LiveLog,
    MasterTestCase,
    Recorder,
    Waiters,
    db_chunks,
    db_text,
    live_log_step,
    merged,
    poll,
    python_step,
)

EMIT = textwrap.dedent(
    r"""
    import sys
    print("hello from the build"); sys.stdout.flush()
    sys.stderr.write("a warning\n"); sys.stderr.flush()
    print("h\u00e9llo \u2603, bye")
    """
)

# More text in one go than PB carries in one string.
FLOOD = "import sys\nsys.stdout.write(('x' * 99 + '\\n') * 8000)\n"

# The events as 0.8's status client (buildbot/clients/base.py) took them.
EVENT_ARGS = {
    "builderAdded": ("buildername", "builder"),
    "builderRemoved": ("buildername",),
    "builderChangedState": ("buildername", "state", "eta"),
    "buildStarted": ("buildername", "build"),
    "buildFinished": ("buildername", "build", "results"),
    "buildETAUpdate": ("buildername", "build", "eta"),
    "stepStarted": ("buildername", "build", "stepname", "step"),
    "stepFinished": ("buildername", "build", "stepname", "step", "results"),
    "stepETAUpdate": ("buildername", "build", "stepname", "step", "eta", "expectations"),
    "logStarted": ("buildername", "build", "stepname", "step", "logname", "log"),
    "logFinished": ("buildername", "build", "stepname", "step", "logname", "log"),
    "logChunk": (
        "buildername", "build", "stepname", "step", "logname", "log", "channel", "text",
    ),
}  # fmt: skip


class Client(pb.Referenceable):
    """
    A 0.8 status client: a C{remote_} method per event, each recorded as
    C{(event, names...)} (one C{logChunk} entry per run of chunks), with
    the arguments of the last of each kind in C{last}.
    """

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.chunks: list[tuple[int, str]] = []
        self.last: dict[str, dict[str, Any]] = {}
        self._waiting = Waiters()

    def wait_until(self, check: Callable[[], bool]) -> defer.Deferred[None]:
        return self._waiting.wait_until(check)

    def saw(self, kind: str) -> bool:
        return any(e[0] == kind for e in self.events)

    def kinds(self) -> set[str]:
        return {e[0] for e in self.events}

    def text(self) -> str:
        return "".join(text for _, text in self.chunks)

    def _event(self, kind: str, *args: Any) -> None:
        named = self.last[kind] = dict(zip(EVENT_ARGS[kind], args))
        entry: tuple[Any, ...] = (kind, named["buildername"])
        if kind == "builderChangedState":
            entry += (named["state"], named["eta"])
        for name in ("stepname", "logname"):
            if name in named:
                entry += (named[name],)
        if kind in ("stepFinished",):
            entry += (named["results"][0],)
        if kind == "buildFinished":
            entry += (named["results"],)
        if kind == "logChunk":
            self.chunks.append((named["channel"], named["text"]))
        if not (kind == "logChunk" and self.events and self.events[-1] == entry):
            self.events.append(entry)
        self._waiting.check()

    def remote_builderAdded(self, *args: Any) -> None:
        self._event("builderAdded", *args)

    def remote_builderRemoved(self, *args: Any) -> None:
        self._event("builderRemoved", *args)

    def remote_builderChangedState(self, *args: Any) -> None:
        self._event("builderChangedState", *args)

    def remote_buildStarted(self, *args: Any) -> None:
        self._event("buildStarted", *args)

    def remote_buildFinished(self, *args: Any) -> None:
        self._event("buildFinished", *args)

    def remote_buildETAUpdate(self, *args: Any) -> None:
        self._event("buildETAUpdate", *args)

    def remote_stepStarted(self, *args: Any) -> None:
        self._event("stepStarted", *args)

    def remote_stepFinished(self, *args: Any) -> None:
        self._event("stepFinished", *args)

    def remote_stepETAUpdate(self, *args: Any) -> None:
        self._event("stepETAUpdate", *args)

    def remote_logStarted(self, *args: Any) -> None:
        self._event("logStarted", *args)

    def remote_logFinished(self, *args: Any) -> None:
        self._event("logFinished", *args)

    def remote_logChunk(self, *args: Any) -> None:
        self._event("logChunk", *args)


class ClientFactory(pb.PBClientFactory):
    """A PB client factory that tells when its connection has ended."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: defer.Deferred[None] = defer.Deferred()

    def clientConnectionLost(self, connector: Any, reason: Any, reconnecting: int = 0) -> None:
        super().clientConnectionLost(connector, reason, reconnecting)
        if not self.ended.called:
            self.ended.callback(None)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        super().clientConnectionFailed(connector, reason)
        if not self.ended.called:
            self.ended.callback(None)


class PBStatusTests(MasterTestCase):
    @defer.inlineCallbacks
    def start(self, build_steps: list[Any]) -> defer.Generator:
        self.listener = PBListener("tcp:0:interface=127.0.0.1")
        recorder = Recorder()
        yield self.start_master({"b1": build_steps}, receivers=[self.listener, recorder])
        self.recorder = recorder
        self.port = self.listener.listening_port
        # Subscribing once the worker is there, a client hears one state.
        yield poll(lambda: self.legacy_status().getBuilder("b1").getState()[0] == "idle", "idle")

    @defer.inlineCallbacks
    def connect(
        self, client: Any = None, user: bytes = b"statusClient", passwd: bytes = b"clientpw"
    ) -> defer.Generator:
        """A logged-in perspective; the connection ends with the test."""
        factory = ClientFactory()
        reactor.connectTCP("127.0.0.1", self.port, factory)
        self.addCleanup(self.disconnect, factory)
        perspective = yield factory.login(credentials.UsernamePassword(user, passwd), client)
        return factory, perspective

    @defer.inlineCallbacks
    def disconnect(self, factory: ClientFactory) -> defer.Generator:
        factory.disconnect()
        yield factory.ended
        yield poll(lambda: not self.listener.perspectives, "the master to see the client go")

    @defer.inlineCallbacks
    def subscribe(self, mode: str | bytes, interval: float | None = None) -> defer.Generator:
        client = Client()
        factory, perspective = yield self.connect(client)
        yield perspective.callRemote("subscribe", mode, interval, client)
        client.events.append(("subscribed",))
        return client, factory, perspective

    @defer.inlineCallbacks
    def test_a_full_subscription_hears_a_build_in_08_order(self) -> defer.Generator:
        yield self.start([python_step("emit", EMIT)])
        client, _, perspective = yield self.subscribe("full")
        yield self.force("b1")
        done = ("builderChangedState", "b1", "idle", None)
        yield client.wait_until(lambda: client.saw("buildFinished") and client.events[-1] == done)
        self.assertEqual(
            client.events,
            [
                ("subscribed",),
                ("builderAdded", "b1"),
                ("builderChangedState", "b1", "idle", None),
                ("builderChangedState", "b1", "building", None),
                ("buildStarted", "b1"),
                ("stepStarted", "b1", "worker_preparation"),
                ("stepFinished", "b1", "worker_preparation", SUCCESS),
                ("stepStarted", "b1", "emit"),
                ("logStarted", "b1", "emit", "stdio"),
                ("logChunk", "b1", "emit", "stdio"),
                ("logFinished", "b1", "emit", "stdio"),
                ("stepFinished", "b1", "emit", SUCCESS),
                ("buildFinished", "b1", SUCCESS),
                ("builderChangedState", "b1", "idle", None),
            ],
        )
        log_data, content = yield self.db_log("b1", 1, "emit", "stdio")
        self.assertIn("h\u00e9llo \u2603, bye", content)
        self.assertEqual(merged(client.chunks), db_chunks(log_data["type"], content))
        # One reference per object while it runs: every event of the build
        # names the same build.
        build = client.last["buildFinished"]["build"]
        self.assertEqual(client.last["buildStarted"]["build"].luid, build.luid)
        self.assertEqual(
            client.last["logChunk"]["log"].luid, client.last["logFinished"]["log"].luid
        )

        # The references answer with the database's values.
        db_build = yield self.master.data.get(("builders", "b1", "builds", 1))
        db_steps = yield self.master.data.get(("builds", db_build["buildid"], "steps"))
        self.assertEqual((yield build.callRemote("getNumber")), 1)
        self.assertEqual((yield build.callRemote("getBuilderName")), "b1")
        self.assertEqual((yield build.callRemote("getResults")), db_build["results"])
        self.assertEqual((yield build.callRemote("getText")), db_build["state_string"].split())
        self.assertTrue((yield build.callRemote("isFinished")))
        started, finished = yield build.callRemote("getTimes")
        self.assertEqual(
            (started, finished),
            (db_build["started_at"].timestamp(), db_build["complete_at"].timestamp()),
        )
        self.assertEqual((yield build.callRemote("waitUntilFinished")).luid, build.luid)
        steps = yield build.callRemote("getSteps")
        names = yield defer.gatherResults([s.callRemote("getName") for s in steps])
        self.assertEqual(names, [s["name"] for s in db_steps])
        step = client.last["stepFinished"]["step"]
        db_step = db_steps[-1]
        self.assertEqual((yield step.callRemote("getName")), "emit")
        result, _text2 = yield step.callRemote("getResults")
        self.assertEqual(result, db_step["results"])
        self.assertEqual((yield step.callRemote("getText")), db_step["state_string"].split())
        self.assertEqual((yield (yield step.callRemote("getBuild")).callRemote("getNumber")), 1)
        logs = yield step.callRemote("getLogs")
        self.assertEqual(list(logs), ["stdio"])
        log = client.last["logFinished"]["log"]
        self.assertEqual((yield log.callRemote("getName")), "stdio")
        self.assertTrue((yield log.callRemote("isFinished")))
        self.assertEqual((yield log.callRemote("getText")), db_text(content))
        chunks = yield log.callRemote("getChunks")
        self.assertEqual(merged([tuple(c) for c in chunks]), db_chunks("s", content))
        self.assertEqual(
            (yield log.callRemote("getTextWithHeaders")), "".join(t for _, t in chunks)
        )

        builder = client.last["builderAdded"]["builder"]
        self.assertEqual((yield builder.callRemote("getName")), "b1")
        state, eta, current = yield builder.callRemote("getState")
        self.assertEqual((state, eta, current), ("idle", None, []))
        last = yield builder.callRemote("getLastFinishedBuild")
        self.assertEqual((yield last.callRemote("getNumber")), 1)
        (slave,) = yield builder.callRemote("getSlaves")
        self.assertEqual((yield slave.callRemote("getName")), "local1")

        # The perspective's own methods.
        self.assertEqual((yield perspective.callRemote("getBuilderNames")), ["b1"])
        self.assertEqual((yield perspective.callRemote("ping")), "pong")
        worker = yield perspective.callRemote("getSlave", "local1")
        answers = yield defer.gatherResults(
            [worker.callRemote(m) for m in ("getName", "isConnected")]
        )
        self.assertEqual(answers, ["local1", True])
        b1 = yield perspective.callRemote("getBuilder", "b1")
        self.assertEqual((yield b1.callRemote("getName")), "b1")
        yield self.assertFailure(perspective.callRemote("getBuilder", "nope"), KeyError)
        yield self.assertFailure(perspective.callRemote("getSlave", "nope"), KeyError)
        bad = perspective.callRemote("subscribe", "everything", None, client)
        yield self.assertFailure(bad, pb.Error)
        self.assertEqual((yield perspective.callRemote("getBuildSets")), [])
        self.assertIsInstance(IRemote(self.legacy_status().getBuilder("b1")), RemoteBuilder)

    @defer.inlineCallbacks
    def test_a_port_that_failed_otherwise_at_a_reconfig_is_listened_on_at_the_next(
        self,
    ) -> defer.Generator:
        # An ssl: port whose key file is not there yet: not a CannotListenError.
        yield self.start([python_step("emit", "print(1)")])
        key = os.path.abspath(self.mktemp())
        portstr = f"ssl:0:privateKey={key}:interface=127.0.0.1"
        yield self.reconfig(services=[LegacyStatus(receivers=[self.recorder, PBListener(portstr)])])
        # Buildbot logs it for the service, then for the reconfig.
        self.assertEqual(len(self.flushLoggedErrors(FileNotFoundError)), 2)
        shutil.copy(os.path.join(os.path.dirname(twisted.test.__file__), "server.pem"), key)
        self.listener = PBListener(portstr)
        yield self.reconfig(services=[LegacyStatus(receivers=[self.recorder, self.listener])])
        self.port = self.listener.listening_port
        factory = ClientFactory()
        reactor.connectSSL("127.0.0.1", self.port, factory, ssl.ClientContextFactory())
        self.addCleanup(self.disconnect, factory)
        perspective = yield factory.login(
            credentials.UsernamePassword(b"statusClient", b"clientpw")
        )
        self.assertEqual((yield perspective.callRemote("getBuilderNames")), ["b1"])

    @defer.inlineCallbacks
    def test_a_port_taken_at_a_reconfig_is_listened_on_at_the_next(self) -> defer.Generator:
        yield self.start([python_step("emit", "print(1)")])
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            self.port = taken.getsockname()[1]
            receivers = [self.recorder, PBListener(f"tcp:{self.port}:interface=127.0.0.1")]
            yield self.reconfig(services=[LegacyStatus(receivers=receivers)])
            # Buildbot logs it for the service, then for the reconfig.
            self.assertEqual(len(self.flushLoggedErrors(error.CannotListenError)), 2)
        self.listener = PBListener(f"tcp:{self.port}:interface=127.0.0.1")
        yield self.reconfig(services=[LegacyStatus(receivers=[self.recorder, self.listener])])
        self.assertEqual(self.listener.listening_port, self.port)
        _, perspective = yield self.connect()
        self.assertEqual((yield perspective.callRemote("getBuilderNames")), ["b1"])

    @defer.inlineCallbacks
    def test_a_client_that_sends_bytes_gets_bytes(self) -> defer.Generator:
        # As a Python 2 client does (tests/test_pb_python2.py: the real ones).
        yield self.start([python_step("emit", "print(1)")])
        _, perspective = yield self.connect()
        b1 = yield perspective.callRemote("getBuilder", "b1")
        self.assertEqual((yield b1.callRemote("getName")), "b1")
        b1 = yield perspective.callRemote("getBuilder", b"b1")
        self.assertEqual((yield b1.callRemote("getName")), b"b1")
        self.assertEqual((yield perspective.callRemote("getBuilderNames")), [b"b1"])

    @defer.inlineCallbacks
    def test_each_mode_follows_as_deep_as_0_8s(self) -> defer.Generator:
        yield self.start([python_step("emit", EMIT)])
        subscribed = {}
        for mode in MODES:
            # As a Python 2 client (0.8's statuslog) sends it, for one.
            subscribed[mode] = yield self.subscribe(mode.encode() if mode == "logs" else mode)
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        for _, _, perspective in subscribed.values():
            # Answered after every event sent before it.
            yield perspective.callRemote("ping")
        expected = {"subscribed", "builderAdded"}
        deeper = {
            "builders": set(),
            "builds": {"builderChangedState", "buildStarted", "buildFinished"},
            "steps": {"stepStarted", "stepFinished"},
            "logs": {"logStarted", "logFinished"},
            "full": {"logChunk"},
        }
        for mode in MODES:
            expected |= deeper[mode]
            self.assertEqual(subscribed[mode][0].kinds(), expected, mode)

    @defer.inlineCallbacks
    def test_eta_updates_at_the_clients_interval(self) -> defer.Generator:
        control = LiveLog()
        yield self.start([live_log_step(control)])
        client, _, _ = yield self.subscribe("logs", 0.05)
        yield self.force("b1")
        yield control.opened
        yield client.wait_until(lambda: client.saw("stepETAUpdate"))
        control.end()
        yield self.recorder.wait_for_builds(1)
        step_eta = client.last["stepETAUpdate"]
        # No build before, no estimate: 0.8 sent a step's update without
        # one, and none of the build's.
        self.assertFalse(client.saw("buildETAUpdate"))
        self.assertIsNone(step_eta["eta"])
        self.assertEqual((step_eta["stepname"], step_eta["expectations"]), ("live", []))
        self.assertEqual((yield step_eta["step"].callRemote("getName")), "live")
        # The next build has the first to go by.
        control.again()
        yield self.force("b1")
        yield control.opened
        yield client.wait_until(lambda: client.saw("buildETAUpdate"))
        control.end()
        yield self.recorder.wait_for_builds(2)
        build_eta = client.last["buildETAUpdate"]
        self.assertEqual(build_eta["buildername"], "b1")
        self.assertIsInstance(build_eta["eta"], float)

    @defer.inlineCallbacks
    def test_wrong_credentials_are_refused(self) -> defer.Generator:
        yield self.start([python_step("emit", "print(1)")])
        for user, passwd in [(b"statusClient", b"wrong"), (b"someone", b"clientpw")]:
            factory = ClientFactory()
            reactor.connectTCP("127.0.0.1", self.port, factory)
            self.addCleanup(self.disconnect, factory)
            login = factory.login(credentials.UsernamePassword(user, passwd), Client())
            yield self.assertFailure(login, UnauthorizedLogin)
        self.assertEqual(self.listener.perspectives, [])
        # Twisted's PB logs each refusal with a traceback.
        self.assertEqual(len(self.flushLoggedErrors(UnauthorizedLogin)), 2)

    @defer.inlineCallbacks
    def test_a_client_that_leaves_mid_build_stops_nothing(self) -> defer.Generator:
        control = LiveLog()
        yield self.start([live_log_step(control)])
        client, factory, _ = yield self.subscribe("full")
        yield self.force("b1")
        yield control.opened
        yield control.write("first\n")
        yield client.wait_until(lambda: client.text() == "first\n")
        (perspective,) = self.listener.perspectives
        factory.disconnect()
        yield factory.ended
        yield poll(lambda: not self.listener.perspectives, "the master to see the client go")
        # It follows nothing any more.
        status = self.legacy_status()
        (build,) = status.getBuilder("b1").getCurrentBuilds()
        followed = [status, status.getBuilder("b1"), build, *build.getSteps()]
        followed += [lf for step in build.getSteps() for lf in step.getLogs()]
        for thing in followed:
            self.assertNotIn(perspective, thing.watchers, thing)
        yield control.write("second\n")
        control.end()
        yield self.recorder.wait_for_builds(1)
        self.assertEqual(self.recorder.events[-1], ("buildFinished", "b1", 1, SUCCESS))
        self.assertEqual(self.recorder.text_of(1, "live", "stdio"), "first\nsecond\n")
        self.assertEqual(client.text(), "first\n")
        self.assertFalse(client.saw("buildFinished"))

    @defer.inlineCallbacks
    def test_a_client_without_a_method_is_kept(self) -> defer.Generator:
        yield self.start([python_step("emit", EMIT)])

        class NoChunks(Client):
            remote_logChunk = None  # type: ignore[assignment]

        client = NoChunks()
        _, perspective = yield self.connect(client)
        yield perspective.callRemote("subscribe", "full", None, client)
        yield self.force("b1")
        yield client.wait_until(lambda: client.saw("buildFinished"))
        self.assertIn(("logFinished", "b1", "emit", "stdio"), client.events)
        self.assertFalse(client.saw("logChunk"))
        self.assertEqual(len(self.listener.perspectives), 1)
        # The client's PB logged each call it could not answer.
        self.assertTrue(self.flushLoggedErrors(pb.NoSuchMethod))

    @defer.inlineCallbacks
    def test_a_log_larger_than_a_pb_string(self) -> defer.Generator:
        yield self.start([python_step("flood", FLOOD)])
        client, _, _ = yield self.subscribe("full")
        yield self.force("b1")
        yield client.wait_until(lambda: client.saw("buildFinished"))
        log_data, content = yield self.db_log("b1", 1, "flood", "stdio")
        self.assertGreater(len(db_text(content)), banana.SIZE_LIMIT)
        self.assertEqual(merged(client.chunks), db_chunks(log_data["type"], content))
        log = client.last["logFinished"]["log"]
        yield self.assertFailure(log.callRemote("getText"), pb.Error)
        chunks = yield log.callRemote("getChunks")
        self.assertEqual(merged([tuple(c) for c in chunks]), db_chunks("s", content))
        # A log too large for one answer is refused before it is read.
        self.patch(_pb_status, "MAX_CHUNKS_ANSWER", 1000)
        yield self.assertFailure(log.callRemote("getChunks"), pb.Error)

    @defer.inlineCallbacks
    def test_stopping_the_listener_ends_its_clients_and_its_port(self) -> defer.Generator:
        yield self.start([python_step("emit", "print(1)")])
        _, factory, _ = yield self.subscribe("builds")
        yield self.reconfig(services=[LegacyStatus(receivers=[self.recorder])])
        yield factory.ended
        self.assertIsNone(self.listener.listening_port)
        yield poll(lambda: not self.listener.perspectives, "the perspectives dropped")
        refused = ClientFactory()
        reactor.connectTCP("127.0.0.1", self.port, refused)
        login = refused.login(credentials.UsernamePassword(b"statusClient", b"clientpw"))
        yield self.assertFailure(login, error.ConnectionRefusedError)


def test_long_texts_go_in_pieces_pb_can_send() -> None:
    text = "\u2603" * (banana.SIZE_LIMIT // 2) + "end"
    pieces = _pieces(text)
    assert len(pieces) > 1
    assert "".join(pieces) == text
    assert all(len(p.encode("utf-8")) <= banana.SIZE_LIMIT for p in pieces)
    assert _pieces("short") == ["short"]


def test_the_08_import_path() -> None:
    from buildbot.status import client

    from buildbot_logfile import _pb_status

    for name in _pb_status.__all__:
        assert getattr(client, name) is getattr(_pb_status, name)
    assert client.PBListener is PBListener
    assert client.StatusClientPerspective is StatusClientPerspective
    listener = client.PBListener(9988)
    assert (listener.port, listener.cred) == (9988, ("statusClient", "clientpw"))
    assert listener != client.PBListener(9989)


@pytest.mark.parametrize(
    ("port", "workers", "listens"),
    [
        # 0.8 shared the workers' port; any other number stays on loopback.
        (9989, {"pb": {"port": 9989}}, "tcp:9989"),
        (9989, {"pb": {"port": "tcp:9989"}}, "tcp:9989"),
        (9989, {"pb": {"port": "tcp:9989:interface=0.0.0.0"}}, "tcp:9989:interface=0.0.0.0"),
        (9989, {"pb": {"port": "tcp:port=9989"}}, "tcp:port=9989"),
        ("9989", {"pb": {"port": "9989"}}, "tcp:9989"),
        ("9988", {"pb": {"port": 9989}}, "tcp:9988:interface=127.0.0.1"),
        (9988, {}, "tcp:9988:interface=127.0.0.1"),
        ("tcp:9988", {}, "tcp:9988"),
    ],
)
def test_where_a_port_number_listens(port: Any, workers: dict[str, Any], listens: str) -> None:
    assert _listening_portstr(port, workers) == listens


class _Unanswering:
    """A client reference whose calls are never answered."""

    def __init__(self) -> None:
        self.calls = 0
        self.broker = self
        self.transport = self
        self.lost = 0

    def callRemote(self, method: str, *args: Any) -> defer.Deferred[None]:
        self.calls += 1
        return defer.Deferred()

    def loseConnection(self) -> None:
        self.lost += 1


def test_a_client_that_does_not_keep_up_is_dropped(monkeypatch: Any) -> None:
    monkeypatch.setattr(_pb_status, "MAX_UNANSWERED", 5)
    target, gone = _Unanswering(), []
    events = _pb_status._Events(target, lambda: gone.append(True))
    for _ in range(10):
        events.send("logChunk", "text")
    assert (target.calls, gone, target.lost) == (6, [True], 1)


def test_a_client_that_leaves_much_text_unanswered_is_dropped(monkeypatch: Any) -> None:
    monkeypatch.setattr(_pb_status, "MAX_UNANSWERED_BYTES", 1000)
    target, gone = _Unanswering(), []
    events = _pb_status._Events(target, lambda: gone.append(True))
    for _ in range(3):
        events.send("logChunk", "x" * 400)
    assert (target.calls, gone, target.lost) == (3, [True], 1)


class _Answering(_Unanswering):
    """A client reference that keeps its answers for the test to give."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[defer.Deferred[None]] = []

    def callRemote(self, method: str, *args: Any) -> defer.Deferred[None]:
        self.answers.append(defer.Deferred())
        return self.answers[-1]


def test_a_client_that_went_away_is_forgotten_once() -> None:
    target, gone = _Answering(), []
    events = _pb_status._Events(target, lambda: gone.append(True))
    events.send("buildStarted")
    events.send("buildFinished")
    for d in target.answers:
        d.errback(pb.PBConnectionLost("gone"))
    events.send("builderChangedState")
    assert (len(target.answers), gone, events.unanswered) == (2, [True], 0)


def test_a_failing_remote_method_is_logged_once_and_kept() -> None:
    target, gone, logged = _Answering(), [], []
    events = _pb_status._Events(target, lambda: gone.append(True))
    log.addObserver(logged.append)
    try:
        for _ in range(3):
            events.send("logChunk", "text")
            target.answers[-1].errback(pb.NoSuchMethod("remote_logChunk"))
    finally:
        log.removeObserver(logged.append)
    messages = [
        " ".join(e["message"]) for e in logged if "remote_logChunk" in " ".join(e["message"])
    ]
    assert (len(target.answers), gone, len(messages)) == (3, [], 1)
