"""LegacyStatus on a real master: the 0.8 cascade, and LogFiles equal to the database."""

from __future__ import annotations

import os
import shutil
import socket
import textwrap
import threading
from types import SimpleNamespace
from typing import Any

import treq
from twisted.internet import defer
from twisted.internet.error import CannotListenError

from buildbot_logfile import _feed, _logdb, _mirror, _spool
from buildbot_logfile._builders import Builders
from buildbot_logfile._requests import Requests
from buildbot_logfile._webstatus import WebStatus
from buildbot_logfile.archiver import LogChunkArchiver
from buildbot_logfile.base import StatusReceiverMultiService
from buildbot_logfile.bridge import LegacyStatus
from buildbot_logfile.logfile import HEADER, STDERR, STDOUT
from tests.databases import MariaDBTestCase
from tests.masters import (
    LiveLog,
    MasterTestCase,
    Recorder,
    db_chunks,
    html_log_step,
    live_log_step,
    master_config,
    merged,
    poll,
    python_step,
)

EMIT = textwrap.dedent(
    r"""
    import sys
    out, err = sys.stdout, sys.stderr
    out.write("h\u00e9llo \u2603 w\u00f6rld\n"); out.flush()
    err.write("\x1b[31mred error\x1b[0m\n"); err.flush()
    out.write("\x1b[1;32mgreen bold\x1b[0m and <b>&amp;</b>\n"); out.flush()
    err.write("second error line\n"); err.flush()
    out.write("final line without newline")
    """
)

BURST = textwrap.dedent(
    r"""
    import sys
    line = "0123456789" * 9 + "\u00e9\u00e8\n"
    for i in range(40000):
        sys.stdout.write("%06d " % i + line)
    sys.stderr.write("done\n")
    """
)


@defer.inlineCallbacks
def check_every_byte_equals_the_database(case: MasterTestCase, **db: Any) -> defer.Generator:
    """A build's logs, as LogFiles and as logChunks, against the database (C{db}: where it is)."""
    yield case.start_master({"b1": [python_step("emit", EMIT), python_step("burst", BURST)]}, **db)
    yield case.force("b1")
    yield case.recorder.wait_for_builds(1)
    status = case.legacy_status()
    for step in ("emit", "burst"):
        log_data, content = yield case.db_log("b1", 1, step, "stdio")
        expected = db_chunks(log_data["type"], content)
        lf = yield status.getLogFile("b1", 1, step, "stdio")
        case.assertEqual(merged(list(lf.getChunks())), expected)
        case.assertEqual(merged(case.recorder.chunks[(1, step, "stdio")]), expected)
    lf = yield status.getLogFile("b1", 1, "emit", "stdio")
    case.assertEqual(
        "".join(lf.getChunks([STDOUT], onlyText=True)),
        "h\u00e9llo \u2603 w\u00f6rld\n\x1b[1;32mgreen bold\x1b[0m and <b>&amp;</b>\n"
        "final line without newline\n",
    )
    case.assertEqual(
        "".join(lf.getChunks([STDERR], onlyText=True)),
        "\x1b[31mred error\x1b[0m\nsecond error line\n",
    )
    burst = yield status.getLogFile("b1", 1, "burst", "stdio")
    case.assertEqual(len(burst.readlines()), 40000)
    _, content = yield case.db_log("b1", 1, "burst", "stdio")
    case.assertEqual(burst.length, sum(len(t.encode()) for _, t in db_chunks("s", content)))


class SubscribesAtStart(Recorder):
    """A receiver that subscribes as it starts, not as it is given its parent."""

    def setServiceParent(self, parent: Any) -> Any:
        return StatusReceiverMultiService.setServiceParent(self, parent)

    def startService(self) -> Any:
        d = StatusReceiverMultiService.startService(self)
        self.status = self.parent.getStatus()
        self.status.subscribe(self)
        return d


class LeavesAtStart(Recorder):
    """In buildStarted, subscribes C{later} to the status and unsubscribes itself."""

    def __init__(self, name: str, later: Recorder) -> None:
        super().__init__(name)
        self.later = later

    def buildStarted(self, builderName: str, build: Any) -> Any:
        super().buildStarted(builderName, build)
        self.status.subscribe(self.later)
        self.status.getBuilder(builderName).unsubscribe(self)
        self.status.unsubscribe(self)
        return None


class StateRecorder(Recorder):
    """
    A receiver of builders' states and builds only, subscribed when given
    its parent or, as StatusPush does, as it starts.
    """

    def __init__(self, name: str, subscribe_at_start: bool = False) -> None:
        super().__init__(name)
        self.subscribe_at_start = subscribe_at_start

    def setServiceParent(self, parent: Any) -> Any:
        if self.subscribe_at_start:
            return StatusReceiverMultiService.setServiceParent(self, parent)
        return super().setServiceParent(parent)

    def startService(self) -> Any:
        d = StatusReceiverMultiService.startService(self)
        if self.subscribe_at_start:
            self.status = self.parent.getStatus()
            self.status.subscribe(self)
        return d

    def builderChangedState(self, name: str, state: str) -> None:
        self._record("builderChangedState", name, state)

    def buildStarted(self, builderName: str, build: Any) -> Any:
        self._record("buildStarted", builderName, build.getNumber())


class StatesHeard:
    """A builder's watcher that keeps the states it hears."""

    def __init__(self) -> None:
        self.states: list[str] = []

    def builderChangedState(self, name: str, state: str) -> None:
        self.states.append(state)


def builders_of_a_stub_status() -> Builders:
    """L{Builders} of a status with no master behind it and no worker for any builder."""
    status = SimpleNamespace(
        master=None,
        spool_dir="spool",
        watchers=[],
        workers=SimpleNamespace(of_builder=lambda builderid, name: []),
    )
    return Builders(status)


def test_a_builder_expecting_two_builds_is_building_from_the_first() -> None:
    builders = builders_of_a_stub_status()
    builder = builders.add({"name": "b1", "builderid": 1, "tags": []})
    heard = StatesHeard()
    builder.subscribe(heard)
    builders.expect_build(1, 10)
    builders.expect_build(1, 11)
    builders.settle()
    assert heard.states == []
    builder.build_started(SimpleNamespace(number=1, buildid=10))  # type: ignore[arg-type]
    assert heard.states == ["building"]  # before the watcher hears of the build
    builder.build_started(SimpleNamespace(number=2, buildid=11))  # type: ignore[arg-type]
    builders.not_expected(1, 10)
    builders.not_expected(1, 11)
    assert heard.states == ["building"]


def test_a_service_that_starts_again_finds_its_builders_builds_anew() -> None:
    builders = builders_of_a_stub_status()
    builder = builders.add({"name": "b1", "builderid": 1, "tags": []})
    builders.settle()
    builder.build_started(SimpleNamespace(number=1, buildid=10))  # type: ignore[arg-type]
    # Stopped, then started again: the build ended meanwhile.
    builders.unsettle()
    heard = StatesHeard()
    builder.subscribe(heard)
    assert (heard.states, builder.getCurrentBuilds()) == ([], [])
    builders.settle()
    assert heard.states == ["offline"]


class CascadeTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_events_arrive_in_08_order(self) -> defer.Generator:
        yield self.start_master(
            {"b1": [python_step("first", EMIT), python_step("second", "print('two')")]}
        )
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        self.assertEqual(
            self.recorder.events,
            [
                ("builderAdded", "b1"),
                ("buildStarted", "b1", 1),
                ("stepStarted", 1, "worker_preparation"),
                ("stepFinished", 1, "worker_preparation", 0),
                ("stepStarted", 1, "first"),
                ("logStarted", 1, "first", "stdio"),
                ("logChunk", 1, "first", "stdio"),
                ("logFinished", 1, "first", "stdio"),
                ("stepFinished", 1, "first", 0),
                ("stepStarted", 1, "second"),
                ("logStarted", 1, "second", "stdio"),
                ("logChunk", 1, "second", "stdio"),
                ("logFinished", 1, "second", "stdio"),
                ("stepFinished", 1, "second", 0),
                ("buildFinished", "b1", 1, 0),
            ],
        )

    @defer.inlineCallbacks
    def test_receivers_that_subscribe_and_leave_as_they_hear(self) -> defer.Generator:
        """
        As 0.8 looped over its live lists: a receiver subscribed by another
        in buildStarted hears that buildStarted; one leaving in it does not
        make the next one miss it.
        """
        later = Recorder("later")
        leaving, after = LeavesAtStart("leaving", later), Recorder("after")
        yield self.start_master({"b1": [python_step("first", EMIT)]}, receivers=[leaving, after])
        yield self.force("b1")
        yield after.wait_for_builds(1)
        yield later.wait_for_builds(1)
        self.assertEqual(after.events[:2], [("builderAdded", "b1"), ("buildStarted", "b1", 1)])
        self.assertEqual(later.events[:2], [("builderAdded", "b1"), ("buildStarted", "b1", 1)])
        self.assertEqual(leaving.events, [("builderAdded", "b1"), ("buildStarted", "b1", 1)])

    def test_every_byte_equals_the_database(self) -> defer.Deferred:
        return check_every_byte_equals_the_database(self)

    def test_every_byte_equals_an_sqlite_file_database(self) -> defer.Deferred:
        # Read through the bridge's own connection and thread.
        return check_every_byte_equals_the_database(self, db_file=True)

    @defer.inlineCallbacks
    def test_spool_layout_and_compression(self) -> defer.Generator:
        yield self.start_master({"b1": [python_step("emit step", EMIT)]}, logdir="spool")
        self.master.config.logCompressionMethod = "gz"
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        lf = yield self.legacy_status().getLogFile("b1", 1, "emit step", "stdio")
        expected_path = os.path.join(self.master.basedir, "spool", "b1", "1-log-emit_step-stdio")
        self.assertEqual(lf.getFilename(), expected_path)
        yield lf.compressLog()  # idempotent with the bridge's own compression
        self.assertTrue(os.path.exists(expected_path + ".gz"))
        self.assertFalse(os.path.exists(expected_path))
        _, content = yield self.db_log("b1", 1, "emit step", "stdio")
        self.assertEqual(merged(list(lf.getChunks())), db_chunks("s", content))

    @defer.inlineCallbacks
    def test_a_reconfig_of_logdir_moves_the_spool(self) -> defer.Generator:
        # Logs that start after it are spooled there; a finished log's old
        # spool is rebuilt there from the database when it is next opened.
        yield self.start_master({"b1": [python_step("emit step", EMIT)]}, logdir="spool")
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        status = self.legacy_status()
        first = yield status.getLogFile("b1", 1, "emit step", "stdio")
        old = os.path.join(self.master.basedir, "spool", "b1")
        self.assertEqual(first.getFilename(), os.path.join(old, "1-log-emit_step-stdio"))
        yield self.reconfig(services=[LegacyStatus(receivers=[self.recorder], logdir="moved")])
        self.assertIs(self.legacy_status(), status)
        moved = os.path.join(self.master.basedir, "moved", "b1")
        self.assertEqual(status.getBuilder("b1").basedir, moved)
        yield self.force("b1")
        yield self.recorder.wait_for_builds(2)
        for number in (1, 2):
            lf = yield status.getLogFile("b1", number, "emit step", "stdio")
            self.assertEqual(lf.getFilename(), os.path.join(moved, f"{number}-log-emit_step-stdio"))
            self.assertIsNotNone(_spool.existing_spool(lf.getFilename()))
            _, content = yield self.db_log("b1", number, "emit step", "stdio")
            self.assertEqual(merged(list(lf.getChunks())), db_chunks("s", content))

    @defer.inlineCallbacks
    def test_a_failing_step_and_build(self) -> defer.Generator:
        yield self.start_master(
            {"b1": [python_step("fail", "import sys; print('bad'); sys.exit(3)")]}
        )
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        self.assertIn(("stepFinished", 1, "fail", 2), self.recorder.events)
        self.assertEqual(self.recorder.events[-1], ("buildFinished", "b1", 1, 2))
        build = yield self.legacy_status().lookup.locate_build("b1", 1)
        self.assertEqual(build.getResults(), 2)
        (_, step) = build.getSteps()
        self.assertEqual(step.getResults()[0], 2)
        self.assertTrue(step.isFinished() and step.isStarted())
        self.assertEqual([lf.getName() for lf in step.getLogs()], ["stdio"])

    @defer.inlineCallbacks
    def test_status_objects(self) -> defer.Generator:
        finished = []

        class Keeper(Recorder):
            def buildFinished(self, builderName, build, results):
                finished.append(build)
                super().buildFinished(builderName, build, results)

        keeper = Keeper()
        yield self.start_master({"b1": [python_step("emit", EMIT)]}, receivers=[keeper])
        yield self.force("b1")
        yield keeper.wait_for_builds(1)
        (build,) = finished
        self.assertEqual(build.getNumber(), 1)
        self.assertEqual(build.getBuilder().getName(), "b1")
        self.assertEqual(build.getProperty("buildername"), "b1")
        self.assertEqual(build.getProperties().getProperty("buildnumber"), 1)
        self.assertEqual(build.getWorkername(), "local1")
        self.assertEqual(build.getSlavename(), "local1")
        self.assertIn("force", build.getReason())
        self.assertEqual(build.getResults(), 0)
        self.assertTrue(build.isFinished())
        start, end = build.getTimes()
        self.assertTrue(0 < start <= end)
        self.assertEqual([s.getName() for s in build.getSteps()], ["worker_preparation", "emit"])
        self.assertEqual([lf.getName() for lf in build.getLogs()], ["stdio"])
        self.assertEqual(build.getChanges(), [])
        self.assertEqual(build.getResponsibleUsers(), [])
        status = self.legacy_status()
        self.assertEqual(status.getBuilderNames(), ["b1"])
        self.assertIs(status.getBuilder("b1"), build.getBuilder())
        self.assertTrue(status.getURLForThing(build).endswith("#/builders/1/builds/1"))
        self.assertIs((yield status.lookup.locate_build("b1", 1)), build)

    @defer.inlineCallbacks
    def test_two_builds_in_a_row(self) -> defer.Generator:
        yield self.start_master({"b1": [python_step("emit", "print('x' * 10)")]})
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        yield self.force("b1")
        yield self.recorder.wait_for_builds(2)
        started = [e for e in self.recorder.events if e[0] == "buildStarted"]
        self.assertEqual(started, [("buildStarted", "b1", 1), ("buildStarted", "b1", 2)])
        for number in (1, 2):
            lf = yield self.legacy_status().getLogFile("b1", number, "emit", "stdio")
            self.assertEqual(lf.getText(), "x" * 10 + "\n")
            self.assertTrue(lf.getFilename().endswith(f"{number}-log-emit-stdio"))

    @defer.inlineCallbacks
    def test_unknown_names_give_none(self) -> defer.Generator:
        yield self.start_master({"b1": [python_step("emit", "print(1)")]})
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        status = self.legacy_status()
        for args in [
            ("nope", 1, "emit", "stdio"),
            ("b1", 2, "emit", "stdio"),
            ("b1", 1, "nope", "stdio"),
            ("b1", 1, "emit", "nope"),
        ]:
            lf = yield status.getLogFile(*args)
            self.assertIsNone(lf, args)

    @defer.inlineCallbacks
    def test_html_log(self) -> defer.Generator:
        yield self.start_master(
            {"b1": [html_log_step("summary", "<h1>Report</h1>\n<p>all good</p>")]}
        )
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        self.assertIn(("logStarted", 1, "report", "summary"), self.recorder.events)
        self.assertIn(("logFinished", 1, "report", "summary"), self.recorder.events)
        lf = yield self.legacy_status().getLogFile("b1", 1, "report", "summary")
        self.assertEqual(type(lf).__name__, "HTMLLogFile")
        self.assertEqual(list(lf.getChunks()), [(STDERR, "<h1>Report</h1>\n<p>all good</p>\n")])
        self.assertNotIn((1, "report", "summary"), self.recorder.chunks)


class Raising(Recorder):
    def stepStarted(self, build, step):
        raise RuntimeError("stepStarted is broken")

    def logChunk(self, build, step, log, channel, text):
        raise RuntimeError("logChunk is broken")

    def buildStarted(self, builderName, build):
        super().buildStarted(builderName, build)
        return self


class SlowToStop(Recorder):
    """A receiver whose stop ends when the test lets it, as a notifier sending mail."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.stopping: defer.Deferred[None] = defer.Deferred()
        self.may_stop: defer.Deferred[None] = defer.Deferred()

    def stopService(self) -> defer.Deferred[None]:
        self.stopping.callback(None)
        return self.may_stop.addCallback(lambda _: Recorder.stopService(self))


class SameObjects(Recorder):
    """Notes where an event's build, step and log are not those the build's events gave."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.problems: list[tuple[str, str]] = []
        self.builds: dict[int, Any] = {}

    def buildStarted(self, builderName: str, build: Any) -> Any:
        self.builds[build.getNumber()] = build
        return super().buildStarted(builderName, build)

    def _check(self, event: str, build: Any, step: Any, log: Any) -> None:
        checks = {
            "the build is buildStarted's": build is self.builds.get(build.getNumber()),
            "the step is the build's": step in build.getSteps() and step.getBuild() is build,
            "the log is the step's": log.getStep() is step and log in step.getLogs(),
        }
        self.problems += [(event, what) for what, holds in checks.items() if not holds]

    def logStarted(self, build: Any, step: Any, log: Any) -> Any:
        self._check("logStarted", build, step, log)
        return super().logStarted(build, step, log)

    def logChunk(self, build: Any, step: Any, log: Any, channel: int, text: str) -> None:
        self._check("logChunk", build, step, log)
        super().logChunk(build, step, log, channel, text)

    def logFinished(self, build: Any, step: Any, log: Any) -> None:
        self._check("logFinished", build, step, log)
        super().logFinished(build, step, log)

    def buildFinished(self, builderName: str, build: Any, results: Any) -> None:
        for log in build.getLogs():
            if not log.getStep().isFinished():
                self.problems.append(("buildFinished", f"{log.getName()}'s step finished"))
        super().buildFinished(builderName, build, results)


class RaisesInLogChunk(Recorder):
    def logChunk(self, build: Any, step: Any, log: Any, channel: int, text: str) -> None:
        super().logChunk(build, step, log, channel, text)
        raise RuntimeError("logChunk is broken")


class ReplacementTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_a_log_looked_up_while_a_reconfig_holds_the_events(self) -> defer.Generator:
        """
        The log is opened (a page, getLogFile) before the held events
        announce its build: receivers still get the build's own objects
        in every event, and each its catch-up, whatever the one before it
        does.
        """
        old, broken, kept = SlowToStop("old"), RaisesInLogChunk("broken"), SameObjects("kept")
        live = LiveLog()
        yield self.start_master({"b1": [live_log_step(live)]}, receivers=[old, broken, kept])
        reconfiguring = self.reconfig(
            services=[LegacyStatus(receivers=[broken, kept, Recorder("new")])]
        )
        yield old.stopping
        yield self.force("b1")
        yield live.opened
        yield live.write(stdout="before 1\n", stderr="before 2\n")
        lf = yield self.legacy_status().getLogFile("b1", 1, "live", "stdio")
        self.assertEqual(lf.getText(), "before 1\nbefore 2\n")
        self.assertEqual(kept.events, [("builderAdded", "b1")])  # held
        old.may_stop.callback(None)
        yield reconfiguring
        yield live.write(stdout="after\n")
        live.end()
        yield kept.wait_for_builds(1)
        _, content = yield self.db_log("b1", 1, "live", "stdio")
        key = (1, "live", "stdio")
        for receiver in (broken, kept):
            self.assertEqual(merged(receiver.chunks[key]), db_chunks("s", content))
            self.assertEqual(receiver.events.count(("logStarted", *key)), 1)
        self.assertEqual(kept.problems, [])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)  # broken's first failure

    @defer.inlineCallbacks
    def test_the_new_receiver_hears_what_happened_while_the_old_one_stopped(
        self,
    ) -> defer.Generator:
        old = SlowToStop("old")
        live = LiveLog()
        yield self.start_master({"b1": [live_log_step(live)]}, receivers=[old])
        yield self.force("b1")
        yield live.opened
        yield live.write("before\n")
        yield old.wait_until(lambda: old.text_of(1, "live", "stdio") == "before\n")
        new = Recorder("new")
        reconfiguring = self.reconfig(services=[LegacyStatus(receivers=[new])])
        yield old.stopping
        # The build writes and ends while the old receiver stops.
        yield live.write("during\n")
        live.end()
        yield poll(
            lambda: self.master.data.get(("builders", "b1", "builds", 1)).addCallback(
                lambda b: b["complete"]
            ),
            "the build's end in the database",
        )
        old.may_stop.callback(None)
        yield reconfiguring
        yield new.wait_for_builds(1)
        ends = [e for e in new.events if e[0] == "buildFinished"]
        self.assertEqual(ends, [("buildFinished", "b1", 1, 0)])
        self.assertEqual([e for e in old.events if e[0] in ("logFinished", "buildFinished")], [])
        self.assertEqual(old.text_of(1, "live", "stdio"), "before\n")

    @defer.inlineCallbacks
    def test_an_old_receiver_that_does_not_stop_holds_the_others_up_for_a_while_only(
        self,
    ) -> defer.Generator:
        self.patch(_feed, "HOLD_LIMIT", 0.5)
        kept, old = Recorder("kept"), SlowToStop("old")
        live = LiveLog()
        yield self.start_master({"b1": [live_log_step(live)]}, receivers=[kept, old])
        yield self.force("b1")
        yield live.opened
        reconfiguring = self.reconfig(
            services=[LegacyStatus(receivers=[Recorder("kept"), Recorder("new")])]
        )
        yield old.stopping
        live.end()
        # Past the limit, the build's end reaches the receiver that stays.
        yield kept.wait_for_builds(1)
        self.assertFalse(reconfiguring.called)
        old.may_stop.callback(None)
        yield reconfiguring
        self.assertIs(self.legacy_status().receivers[0], kept)
        self.assertEqual([e for e in old.events if e[0] == "buildFinished"], [])


class RobustnessTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_a_receiver_that_raises_is_logged_and_skipped(self) -> defer.Generator:
        good, bad = Recorder("good"), Raising("bad")
        yield self.start_master({"b1": [python_step("emit", EMIT)]}, receivers=[bad, good])
        yield self.force("b1")
        yield good.wait_for_builds(1)
        yield bad.wait_for_builds(1)
        errors = self.flushLoggedErrors(RuntimeError)
        self.assertEqual({str(e.value) for e in errors}, {"stepStarted is broken"})
        # It failed for worker_preparation and emit; a receiver that keeps
        # failing is reported once, then at every hundredth failure.
        self.assertEqual(len(errors), 1)
        self.assertEqual(good.events[-1], ("buildFinished", "b1", 1, 0))
        _, content = yield self.db_log("b1", 1, "emit", "stdio")
        self.assertEqual(merged(good.chunks[(1, "emit", "stdio")]), db_chunks("s", content))
        lf = yield self.legacy_status().getLogFile("b1", 1, "emit", "stdio")
        self.assertEqual(merged(list(lf.getChunks())), db_chunks("s", content))

    @defer.inlineCallbacks
    def test_reconfig_adds_removes_and_changes_receivers(self) -> defer.Generator:
        first = Recorder("first")
        yield self.start_master({"b1": [python_step("emit", "print(1)")]}, receivers=[first])
        yield self.force("b1")
        yield first.wait_for_builds(1)
        second = Recorder("second")
        b2 = master_config({"b2": [python_step("emit", "print(2)")]}, [])
        yield self.reconfig(
            services=[LegacyStatus(receivers=[second])],
            builders=self.master_config_dict["builders"] + b2["builders"],
            schedulers=master_config({"b1": [], "b2": []}, [])["schedulers"],
        )
        self.assertIsNone(first.parent)
        self.assertIs(second.parent, self.legacy_status())
        self.assertEqual(self.legacy_status().watchers, [second])
        yield self.force("b2")
        yield second.wait_for_builds(1)
        self.assertEqual(first.finished_builds, 1)
        self.assertIn(("builderAdded", "b2"), second.events)
        self.assertEqual(second.events[-1], ("buildFinished", "b2", 1, 0))

    @defer.inlineCallbacks
    def test_a_reconfig_whose_port_is_taken_keeps_the_service_and_the_next_one_listens(
        self,
    ) -> defer.Generator:
        recorder = Recorder()
        yield self.start_master({"b1": [python_step("emit", "print(1)")]}, legacy=False)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            yield self.reconfig(services=[LegacyStatus(receivers=[recorder], http_port=port)])
            self.assertEqual(len(self.flushLoggedErrors(CannotListenError)), 1)
        # Running all the same: its receivers hear builds, without the port.
        status = self.legacy_status()
        self.assertTrue(status.running)
        self.assertIsNone(status.http_listener)
        yield self.force("b1")
        yield recorder.wait_for_builds(1)
        # The port is free: the same configuration again is not skipped.
        yield self.reconfig(services=[LegacyStatus(receivers=[recorder], http_port=port)])
        self.assertIs(self.legacy_status(), status)
        response = yield treq.get(
            f"http://127.0.0.1:{port}/builders/b1/builds/1/steps/emit/logs/stdio/text",
            persistent=False,
        )
        self.assertEqual(response.code, 200)
        self.assertEqual((yield response.text()), "1\n")
        # Stopped, it leaves no thread of its own behind.
        yield self.tested_master.shutdown()
        self.assertEqual([t.name for t in threading.enumerate() if "LegacyStatus" in t.name], [])

    @defer.inlineCallbacks
    def test_a_receiver_that_failed_to_start_starts_again_at_the_next_reconfig(
        self,
    ) -> defer.Generator:
        recorder = Recorder()
        yield self.start_master({"b1": [python_step("emit", "print(1)")]}, receivers=[recorder])
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            yield self.reconfig(
                services=[LegacyStatus(receivers=[recorder, WebStatus(http_port=port)])]
            )
            # Buildbot logs it for the service, then for the reconfig.
            self.assertEqual(len(self.flushLoggedErrors(CannotListenError)), 2)
        # The others go on, the recorder kept as it was.
        status = self.legacy_status()
        self.assertIs(recorder.parent, status)
        yield self.force("b1")
        yield recorder.wait_for_builds(1)
        # The same configuration again: the web status starts anew, and listens.
        web = WebStatus(http_port=port)
        yield self.reconfig(services=[LegacyStatus(receivers=[recorder, web])])
        self.assertIs(web.parent, status)
        self.assertEqual([r for r in status.receivers if isinstance(r, WebStatus)], [web])
        response = yield treq.get(
            f"http://127.0.0.1:{port}/builders/b1/builds/1/steps/emit/logs/stdio/text",
            persistent=False,
        )
        self.assertEqual(response.code, 200)
        self.assertEqual((yield response.text()), "1\n")

    @defer.inlineCallbacks
    def test_a_start_that_failed_is_made_again_at_the_next_reconfig(self) -> defer.Generator:
        recorder = Recorder()
        yield self.start_master({"b1": [python_step("emit", "print(1)")]}, legacy=False)
        load = Requests.load
        failed: list[bool] = []

        def load_once(requests: Requests) -> Any:
            if not failed:
                failed.append(True)
                raise RuntimeError("the database went away for a moment")
            return load(requests)

        self.patch(Requests, "load", load_once)
        yield self.reconfig(services=[LegacyStatus(receivers=[recorder])])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(self.legacy_status().running)
        # The same configuration again: the service starts, and hears builds.
        yield self.reconfig(services=[LegacyStatus(receivers=[recorder])])
        self.assertTrue(self.legacy_status().running)
        yield self.force("b1")
        yield recorder.wait_for_builds(1)

    @defer.inlineCallbacks
    def test_a_start_that_failed_midway_through_its_subscriptions_leaves_none(
        self,
    ) -> defer.Generator:
        recorder = Recorder()
        yield self.start_master({"b1": [python_step("emit", "print(1)")]}, legacy=False)
        mq = self.master.mq
        start_consuming = mq.startConsuming
        failed: list[bool] = []

        def refuse_changes_once(callback: Any, filter: Any, persistent_name: Any = None) -> Any:
            if filter == ("changes", None, None) and not failed:
                failed.append(True)
                return defer.fail(RuntimeError("the message queue went away for a moment"))
            return start_consuming(callback, filter, persistent_name)

        self.patch(mq, "startConsuming", refuse_changes_once)
        subscriptions = list(mq.impl.qrefs)
        yield self.reconfig(services=[LegacyStatus(receivers=[recorder])])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(self.legacy_status().running)
        # The subscriptions made before the one that failed were undone.
        self.assertEqual(mq.impl.qrefs, subscriptions)
        yield self.reconfig(services=[LegacyStatus(receivers=[recorder])])
        yield self.force("b1")
        yield recorder.wait_for_builds(1)
        # Each event is heard once, from the service that runs.
        self.assertEqual(
            [event for event in recorder.events if event[0] != "builderAdded"],
            [
                ("buildStarted", "b1", 1),
                ("stepStarted", 1, "worker_preparation"),
                ("stepFinished", 1, "worker_preparation", 0),
                ("stepStarted", 1, "emit"),
                ("logStarted", 1, "emit", "stdio"),
                ("logChunk", 1, "emit", "stdio"),
                ("logFinished", 1, "emit", "stdio"),
                ("stepFinished", 1, "emit", 0),
                ("buildFinished", "b1", 1, 0),
            ],
        )
        chunks = recorder.chunks[(1, "emit", "stdio")]
        self.assertEqual([chunk for chunk in chunks if chunk[0] != HEADER], [(STDOUT, "1\n")])

    @defer.inlineCallbacks
    def test_a_builder_dropped_by_reconfig_is_removed(self) -> defer.Generator:
        steps = {"b10": [python_step("emit", "print(1)")], "b9": [python_step("emit", "print(2)")]}
        yield self.start_master(steps)
        status = self.legacy_status()
        self.assertEqual(status.getBuilderNames(), ["b9", "b10"])  # 0.8's natural order
        only_b10 = master_config({"b10": steps["b10"]}, [])
        yield self.reconfig(builders=only_b10["builders"], schedulers=only_b10["schedulers"])
        yield poll(lambda: ("builderRemoved", "b9") in self.recorder.events, "builderRemoved")
        self.assertEqual(status.getBuilderNames(), ["b10"])
        self.assertNotIn(("builderRemoved", "b10"), self.recorder.events)

    @defer.inlineCallbacks
    def test_a_master_that_stops_removes_no_builder(self) -> defer.Generator:
        # 0.8 told its receivers of no builder removed as its master stopped:
        # the builders are not gone, and a receiver that forgets a removed
        # builder (a dashboard's) would forget them all at every restart.
        yield self.start_master({"b1": [python_step("emit", "print(1)")]})
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        yield self.tested_master.shutdown()
        self.assertEqual(self.recorder.events[-1], ("buildFinished", "b1", 1, 0))
        self.assertNotIn("builderRemoved", [event[0] for event in self.recorder.events])

    @defer.inlineCallbacks
    def test_a_spool_that_is_gone_is_rebuilt_from_the_database(self) -> defer.Generator:
        yield self.start_master({"b1": [python_step("burst", BURST)]})
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        status = self.legacy_status()
        _, content = yield self.db_log("b1", 1, "burst", "stdio")
        expected = db_chunks("s", content)
        shutil.rmtree(status.spool_dir)
        first, second = yield defer.gatherResults(
            [
                status.getLogFile("b1", 1, "burst", "stdio"),
                status.getLogFile("b1", 1, "burst", "stdio"),
            ]
        )
        self.assertIs(first, second)  # one rebuild, shared
        self.assertEqual(merged(list(first.getChunks())), expected)
        self.assertTrue(first.isFinished() and first.hasContents())

    @defer.inlineCallbacks
    def test_a_new_service_uses_a_whole_spool_and_rebuilds_a_partial_one(self) -> defer.Generator:
        yield self.start_master({"b1": [python_step("burst", BURST), python_step("emit", EMIT)]})
        self.master.config.logCompressionMethod = "gz"
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        burst = yield self.legacy_status().getLogFile("b1", 1, "burst", "stdio")
        emit = yield self.legacy_status().getLogFile("b1", 1, "emit", "stdio")
        yield burst.compressLog()
        yield emit.compressLog()
        whole = os.stat(burst.getFilename() + ".gz")
        os.unlink(emit.getFilename() + ".gz")
        with open(emit.getFilename(), "wb") as f:
            f.write(b"6:0tick ,")  # what a crash mid-log leaves
        # As after a master restart: a new LegacyStatus knows nothing.
        yield self.reconfig(services=[])
        yield self.reconfig(services=[LegacyStatus()])
        status = self.legacy_status()
        for step, lf in (("burst", burst), ("emit", emit)):
            _, content = yield self.db_log("b1", 1, step, "stdio")
            again = yield status.getLogFile("b1", 1, step, "stdio")
            self.assertIsNot(again, lf)
            self.assertEqual(merged(list(again.getChunks())), db_chunks("s", content))
        self.assertEqual(os.stat(burst.getFilename() + ".gz").st_ino, whole.st_ino)


class LiveTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_chunks_arrive_while_the_log_is_written(self) -> defer.Generator:
        live = yield self.start_live_build()
        key = (1, "live", "stdio")
        for i in range(5):
            yield live.write(stdout=f"tick {i}\n", stderr=f"tock {i}\n" if i % 2 else "")
            expected = "".join(
                f"tick {j}\n" + (f"tock {j}\n" if j % 2 else "") for j in range(i + 1)
            )
            yield self.recorder.wait_until(lambda e=expected: self.recorder.text_of(*key) == e)
            self.assertEqual(self.recorder.finished_builds, 0)
        self.assertNotIn(("logFinished", *key), self.recorder.events)
        live.end()
        yield self.recorder.wait_for_builds(1)
        _, content = yield self.db_log("b1", 1, "live", "stdio")
        self.assertEqual(merged(self.recorder.chunks[key]), db_chunks("s", content))

    @defer.inlineCallbacks
    def test_a_live_logfile_holds_what_the_database_had_when_asked(self) -> defer.Generator:
        live = LiveLog()
        yield self.start_master({"b1": [live_log_step(live)]}, legacy=False)
        yield self.force("b1")
        yield live.opened
        yield live.write(stdout="before 1\nbefore 2\n")
        # The service's first read of the log waits until getLogFile has
        # the log's mirror, then goes on: getLogFile must wait for it.
        gates: list[defer.Deferred[None]] = []
        read_lines, open_mirror = _logdb.LogReader.read_lines, _mirror.MirrorRegistry.open

        def gated_read(reader: Any, *args: Any) -> Any:
            gate: defer.Deferred[None] = defer.Deferred()
            gates.append(gate)
            return gate.addCallback(lambda _: read_lines(reader, *args))

        @defer.inlineCallbacks
        def opened_then_reading(registry: Any, *args: Any) -> Any:
            mirror = yield defer.ensureDeferred(open_mirror(registry, *args))
            while gates:
                gates.pop().callback(None)
            self.patch(_logdb.LogReader, "read_lines", read_lines)
            return mirror

        self.patch(_logdb.LogReader, "read_lines", gated_read)
        self.patch(_mirror.MirrorRegistry, "open", opened_then_reading)
        yield self.reconfig(services=[LegacyStatus(receivers=[])])
        yield poll(lambda: gates, "the service's first read of the log")
        lf = yield self.legacy_status().getLogFile("b1", 1, "live", "stdio")
        self.assertEqual(lf.getText(), "before 1\nbefore 2\n")
        live.end()
        yield lf.waitUntilFinished()

    @defer.inlineCallbacks
    def test_a_late_start_catches_up_then_goes_live(self) -> defer.Generator:
        live = LiveLog()
        yield self.start_master({"b1": [live_log_step(live)]}, legacy=False)
        yield self.force("b1")
        yield live.opened
        yield live.write(stdout="before 1\nbefore 2\n")
        late, at_start = Recorder("late"), SubscribesAtStart("at start")
        yield self.reconfig(services=[LegacyStatus(receivers=[late, at_start])])
        lf = yield self.legacy_status().getLogFile("b1", 1, "live", "stdio")
        self.assertFalse(lf.isFinished())
        # Whole as of the question, though the bridge's first read, begun
        # as the service started, may have been on its way (a database
        # with a pool of threads answers out of order).
        self.assertEqual(lf.getText(), "before 1\nbefore 2\n")
        watcher = Recorder("watcher")
        lf.subscribe(watcher, False)
        yield live.write(stdout="after\n", stderr="oops\n")
        yield poll(lambda: watcher.chunks, "a live chunk after the late start")
        finished = lf.waitUntilFinished()
        live.end()
        yield finished
        log_data, content = yield self.db_log("b1", 1, "live", "stdio")
        self.assertTrue(log_data["complete"])
        self.assertEqual(merged(list(lf.getChunks())), db_chunks("s", content))
        self.assertEqual(
            merged(watcher.chunks[(1, "live", "stdio")]), [(STDOUT, "after\n"), (STDERR, "oops\n")]
        )
        # The build started before the service: its receivers hear it from
        # where it stood, then live, then its end, each event once.
        yield late.wait_for_builds(1)
        key = (1, "live", "stdio")
        self.assertEqual(
            late.events,
            [
                ("builderAdded", "b1"),
                ("buildStarted", "b1", 1),
                ("stepStarted", 1, "worker_preparation"),
                ("stepFinished", 1, "worker_preparation", 0),
                ("stepStarted", 1, "live"),
                ("logStarted", *key),
                ("logChunk", *key),
                ("logFinished", *key),
                ("stepFinished", 1, "live", 0),
                ("buildFinished", "b1", 1, 0),
            ],
        )
        self.assertEqual(merged(late.chunks[key]), db_chunks("s", content))
        # One that subscribes as it starts (as StatusPush does) hears the same.
        yield at_start.wait_for_builds(1)
        self.assertEqual(at_start.events, late.events)
        self.assertEqual(merged(at_start.chunks[key]), db_chunks("s", content))

    @defer.inlineCallbacks
    def test_a_late_start_says_a_builder_runs_a_build_from_its_first_word(
        self,
    ) -> defer.Generator:
        live = LiveLog()
        yield self.start_master({"b1": [live_log_step(live)]}, legacy=False)
        yield self.force("b1")
        yield live.opened
        late, at_start = StateRecorder("late"), StateRecorder("at start", subscribe_at_start=True)
        yield self.reconfig(services=[LegacyStatus(receivers=[late, at_start])])
        for receiver in (late, at_start):
            yield receiver.wait_until(lambda r=receiver: ("buildStarted", "b1", 1) in r.events)
        live.end()
        for receiver in (late, at_start):
            yield receiver.wait_until(lambda r=receiver: r.events[-1][-1] == "idle")
            self.assertEqual(
                receiver.events,
                [
                    ("builderAdded", "b1"),
                    ("builderChangedState", "b1", "building"),
                    ("buildStarted", "b1", 1),
                    ("buildFinished", "b1", 1, 0),
                    ("builderChangedState", "b1", "idle"),
                ],
            )

    @defer.inlineCallbacks
    def test_stopping_the_service_ends_live_logs_and_streams(self) -> defer.Generator:
        live = yield self.start_live_build()
        yield live.write(stdout="kept\n")
        lf = yield self.legacy_status().getLogFile("b1", 1, "live", "stdio")
        ended = lf.waitUntilFinished()
        yield self.reconfig(services=[])
        yield ended
        self.assertEqual(lf.getText(), "kept\n")
        live.end()


class ArchiverTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_the_archiver_copies_every_chunk_of_chosen_builders(self) -> defer.Generator:
        outdir = self.mktemp()
        recorder = Recorder()
        yield self.start_master(
            {"b1": [python_step("emit", EMIT)], "other": [python_step("emit", "print(1)")]},
            receivers=[LogChunkArchiver(outdir, builders=["b1"]), recorder],
        )
        yield self.force("b1")
        yield self.force("other")
        yield recorder.wait_for_builds(2)
        _, content = yield self.db_log("b1", 1, "emit", "stdio")
        text = "".join(t for _, t in db_chunks("s", content))
        with open(os.path.join(outdir, "b1", "1.log"), encoding="utf-8") as f:
            archived = f.read()
        self.assertEqual(archived, "--- emit / stdio ---\n" + text + "--- build success ---\n")
        self.assertFalse(os.path.exists(os.path.join(outdir, "other")))


class MariaDBLiveTests(MariaDBTestCase, LiveTests):
    """
    The bridge on MariaDB (Buildbot's C{mysql} dialect): there it reads
    through the master's pool of connections, and isolation is Repeatable
    Read.  The live tests, and every byte against the database.
    """

    def start_master(self, steps_of: dict[str, list[Any]], *args: Any, **kwargs: Any) -> Any:
        if "db_url" not in kwargs:
            kwargs["db_url"] = self.fresh_database()
        return super().start_master(steps_of, *args, **kwargs)

    def test_every_byte_equals_the_database(self) -> defer.Deferred:
        return check_every_byte_equals_the_database(self)
