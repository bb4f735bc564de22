"""LegacyStatus on a real master: the 0.8 cascade and LogFiles equal to the database."""

from __future__ import annotations

import os
import textwrap
import time
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from twisted.internet import defer, reactor
from twisted.trial import unittest

from buildbot_logfile.bridge import LegacyStatus, LogReader
from buildbot_logfile.logfile import STDERR, STDOUT
from tests.masters import (
    MasterTestCase,
    Recorder,
    db_chunks,
    html_log_step,
    master_config,
    merged,
    python_step,
    sleep,
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


class CascadeTests(MasterTestCase):
    @defer.inlineCallbacks
    def setup_with(self, steps: list, receivers: list | None = None, db_url: str = "sqlite://",
                   **kwargs) -> defer.Generator:
        """A master with b1 running C{steps}; C{db_url=None} means an SQLite file."""
        self.recorder = Recorder()
        if db_url is None:
            db_url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        config = master_config(
            {"b1": steps},
            [LegacyStatus(receivers=[self.recorder] + (receivers or []), **kwargs)],
            db_url=db_url,
        )
        yield self.setup_master(config)

    @defer.inlineCallbacks
    def test_cascade_order(self) -> defer.Generator:
        yield self.setup_with([python_step("first", EMIT), python_step("second", "print('two')")])
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        events = self.recorder.events
        self.assertEqual(events[0], ("builderAdded", "b1"))
        self.assertEqual(
            events[1:],
            [
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
    def test_every_byte_equals_the_database(self) -> defer.Generator:
        yield self.setup_with([python_step("emit", EMIT), python_step("burst", BURST)])
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        status = self.legacy_status()
        for step in ("emit", "burst"):
            log_data, content = yield self.db_log("b1", 1, step, "stdio")
            expected = db_chunks(log_data["type"], content)
            lf = yield status.getLogFile("b1", 1, step, "stdio")
            self.assertEqual(merged(list(lf.getChunks())), expected)
            self.assertEqual(merged(self.recorder.chunks[(1, step, "stdio")]), expected)
        _, content = yield self.db_log("b1", 1, "emit", "stdio")
        lf = yield status.getLogFile("b1", 1, "emit", "stdio")
        self.assertEqual(
            "".join(lf.getChunks([STDOUT], onlyText=True)),
            "h\u00e9llo \u2603 w\u00f6rld\n\x1b[1;32mgreen bold\x1b[0m and <b>&amp;</b>\n"
            "final line without newline\n",
        )
        self.assertEqual(
            "".join(lf.getChunks([STDERR], onlyText=True)),
            "\x1b[31mred error\x1b[0m\nsecond error line\n",
        )
        burst = yield status.getLogFile("b1", 1, "burst", "stdio")
        self.assertEqual(len(burst.readlines()), 40000)
        self.assertGreater(burst.length, 4_000_000)

    @defer.inlineCallbacks
    def test_sqlite_file_reads_through_its_own_connection(self) -> defer.Generator:
        yield self.setup_with([python_step("burst", BURST), python_step("emit", EMIT)], db_url=None)
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        self.assertIsNotNone(self.legacy_status().reader._threads)
        for step in ("burst", "emit"):
            log_data, content = yield self.db_log("b1", 1, step, "stdio")
            lf = yield self.legacy_status().getLogFile("b1", 1, step, "stdio")
            self.assertEqual(merged(list(lf.getChunks())), db_chunks("s", content))
            self.assertEqual(merged(self.recorder.chunks[(1, step, "stdio")]), db_chunks("s", content))

    @defer.inlineCallbacks
    def test_spool_layout_and_compression(self) -> defer.Generator:
        yield self.setup_with([python_step("emit step", EMIT)], logdir="spool")
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
    def test_failing_step(self) -> defer.Generator:
        yield self.setup_with([python_step("fail", "import sys; print('bad'); sys.exit(3)")])
        yield self.force("b1")
        build = yield self.recorder.wait_for_builds(1)
        self.assertIn(("stepFinished", 1, "fail", 2), self.recorder.events)
        self.assertEqual(self.recorder.events[-1], ("buildFinished", "b1", 1, 2))
        self.assertEqual(build.getResults(), 2)
        (_, step) = build.getSteps()
        self.assertEqual(step.getResults()[0], 2)
        self.assertTrue(step.isFinished() and step.isStarted())
        self.assertEqual([lf.getName() for lf in step.getLogs()], ["stdio"])

    @defer.inlineCallbacks
    def test_status_objects(self) -> defer.Generator:
        yield self.setup_with([python_step("emit", EMIT)])
        yield self.force("b1")
        build = yield self.recorder.wait_for_builds(1)
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
        self.assertTrue(start <= end)
        self.assertEqual([s.getName() for s in build.getSteps()], ["worker_preparation", "emit"])
        self.assertEqual([lf.getName() for lf in build.getLogs()], ["stdio"])
        self.assertEqual(build.getChanges(), [])
        self.assertEqual(build.getResponsibleUsers(), [])
        status = self.legacy_status()
        self.assertEqual(status.getBuilderNames(), ["b1"])
        self.assertIs(status.getBuilder("b1"), build.getBuilder())
        self.assertTrue(status.getURLForThing(build).endswith("#/builders/1/builds/1"))

    @defer.inlineCallbacks
    def test_two_builds_in_a_row(self) -> defer.Generator:
        yield self.setup_with([python_step("emit", "print('x' * 10)")])
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
        yield self.setup_with([python_step("emit", "print(1)")])
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        status = self.legacy_status()
        for args in [("nope", 1, "emit", "stdio"), ("b1", 2, "emit", "stdio"),
                     ("b1", 1, "nope", "stdio"), ("b1", 1, "emit", "nope")]:
            lf = yield status.getLogFile(*args)
            self.assertIsNone(lf, args)

    @defer.inlineCallbacks
    def test_html_log(self) -> defer.Generator:
        yield self.setup_with([html_log_step("summary", "<h1>Report</h1>\n<p>all good</p>")])
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        self.assertIn(("logStarted", 1, "report", "summary"), self.recorder.events)
        self.assertIn(("logFinished", 1, "report", "summary"), self.recorder.events)
        lf = yield self.legacy_status().getLogFile("b1", 1, "report", "summary")
        self.assertEqual(type(lf).__name__, "HTMLLogFile")
        self.assertEqual(list(lf.getChunks()), [(STDERR, "<h1>Report</h1>\n<p>all good</p>\n")])
        self.assertNotIn((1, "report", "summary"), self.recorder.chunks)
        self.assertEqual(STDOUT, 0)


SLOW = textwrap.dedent(
    r"""
    import sys, time
    for i in range(16):
        sys.stdout.write("tick %d\n" % i); sys.stdout.flush()
        if i % 4 == 3:
            sys.stderr.write("tock %d\n" % i); sys.stderr.flush()
        time.sleep(0.5)
    """
)


class Raising(Recorder):
    def stepStarted(self, build, step):
        raise RuntimeError("stepStarted is broken")

    def logChunk(self, build, step, log, channel, text):
        raise RuntimeError("logChunk is broken")

    def buildStarted(self, builderName, build):
        super().buildStarted(builderName, build)
        return self


class RobustnessTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_a_receiver_that_raises_is_logged_and_skipped(self) -> defer.Generator:
        good, bad = Recorder("good"), Raising("bad")
        yield self.setup_master(master_config(
            {"b1": [python_step("emit", EMIT)]}, [LegacyStatus(receivers=[bad, good])]
        ))
        yield self.force("b1")
        yield good.wait_for_builds(1)
        yield bad.wait_for_builds(1)
        errors = self.flushLoggedErrors(RuntimeError)
        self.assertGreaterEqual(len(errors), 2)
        self.assertEqual(good.events[-1], ("buildFinished", "b1", 1, 0))
        log_data, content = yield self.db_log("b1", 1, "emit", "stdio")
        self.assertEqual(merged(good.chunks[(1, "emit", "stdio")]), db_chunks("s", content))
        lf = yield self.legacy_status().getLogFile("b1", 1, "emit", "stdio")
        self.assertEqual(merged(list(lf.getChunks())), db_chunks("s", content))

    @defer.inlineCallbacks
    def test_reconfig_adds_removes_and_changes_receivers(self) -> defer.Generator:
        first = Recorder("first")
        config = master_config({"b1": [python_step("emit", "print(1)")]},
                               [LegacyStatus(receivers=[first])])
        yield self.setup_master(config)
        yield self.force("b1")
        yield first.wait_for_builds(1)
        second = Recorder("second")
        config = dict(self.master_config_dict)
        config["services"] = [LegacyStatus(receivers=[second])]
        config["builders"] = config["builders"] + master_config(
            {"b2": [python_step("emit", "print(2)")]}, [])["builders"]
        config["schedulers"] = master_config({"b1": [], "b2": []}, [])["schedulers"]
        self.master.config_loader.config_dict = config
        yield self.master.doReconfig()
        self.assertIsNone(first.parent)
        self.assertIs(second.parent, self.legacy_status())
        self.assertEqual(self.legacy_status().watchers, [second])
        yield self.force("b2")
        yield second.wait_for_builds(1)
        self.assertEqual(first.finished_builds, 1)
        self.assertIn(("builderAdded", "b2"), second.events)
        self.assertEqual(second.events[-1], ("buildFinished", "b2", 1, 0))

    @defer.inlineCallbacks
    def test_spool_deleted_then_rebuilt(self) -> defer.Generator:
        import shutil

        from twisted.internet import reactor, task

        recorder = Recorder()
        yield self.setup_master(master_config(
            {"b1": [python_step("burst", BURST)]}, [LegacyStatus(receivers=[recorder])]
        ))
        yield self.force("b1")
        yield recorder.wait_for_builds(1)
        status = self.legacy_status()
        _, content = yield self.db_log("b1", 1, "burst", "stdio")
        expected = db_chunks("s", content)
        shutil.rmtree(status.spool_dir)

        ticks = []
        clock = task.LoopingCall(lambda: ticks.append(reactor.seconds()))
        clock.start(0.005)
        try:
            first, second = yield defer.gatherResults([
                status.getLogFile("b1", 1, "burst", "stdio"),
                status.getLogFile("b1", 1, "burst", "stdio"),
            ])
        finally:
            clock.stop()
        self.assertIs(first, second)  # one rebuild, shared
        self.assertEqual(merged(list(first.getChunks())), expected)
        self.assertTrue(first.isFinished() and first.hasContents())
        longest = max(b - a for a, b in zip(ticks, ticks[1:]))
        self.assertLess(longest, 0.1, f"the rebuild held the reactor for {longest:.3f} s")

        # an earlier run's spool: a complete one is used as it is...
        status._finished_mirrors.clear()
        status._detached_builds.clear()
        yield first.compressLog()
        again = yield status.getLogFile("b1", 1, "burst", "stdio")
        self.assertIsNot(again, first)
        self.assertEqual(merged(list(again.getChunks())), expected)
        # ...and a partial one is rebuilt
        status._finished_mirrors.clear()
        status._detached_builds.clear()
        path = again.getFilename()
        os.unlink(path + ".gz") if os.path.exists(path + ".gz") else None
        with open(path, "wb") as f:
            f.write(b"6:0tick ,")
        rebuilt = yield status.getLogFile("b1", 1, "burst", "stdio")
        self.assertEqual(merged(list(rebuilt.getChunks())), expected)

    @defer.inlineCallbacks
    def test_late_start_mid_build_catches_up_and_goes_live(self) -> defer.Generator:
        config = master_config({"b1": [python_step("slow", SLOW)]}, [])
        yield self.setup_master(config)
        yield self.force("b1")
        # wait for the first lines to reach the database
        for _ in range(200):
            build = yield self.master.data.get(("builders", "b1", "builds", 1))
            if build is not None:
                steps = yield self.master.data.get(("builds", build["buildid"], "steps"))
                slow = [s for s in steps if s["name"] == "slow"]
                if slow:
                    logs = yield self.master.data.get(("steps", slow[0]["stepid"], "logs"))
                    if logs and logs[0]["num_lines"] > 0:
                        break
            yield sleep(0.1)
        recorder = Recorder()
        config = dict(self.master_config_dict)
        config["services"] = [LegacyStatus(receivers=[recorder])]
        self.master.config_loader.config_dict = config
        yield self.master.doReconfig()
        lf = yield self.legacy_status().getLogFile("b1", 1, "slow", "stdio")
        self.assertFalse(lf.isFinished())
        self.assertTrue(lf.getText().startswith("tick 0\n"))
        waiter = lf.waitUntilFinished()
        watcher = Recorder("watcher")
        lf.subscribe(watcher, False)
        yield waiter
        log_data, content = yield self.db_log("b1", 1, "slow", "stdio")
        self.assertTrue(log_data["complete"])
        self.assertEqual(merged(list(lf.getChunks())), db_chunks("s", content))
        self.assertTrue(watcher.chunks, "no live chunk after the late start")
        # the build started before the service: its receivers saw none of it
        self.assertEqual([e for e in recorder.events if e[0] != "builderAdded"], [])


class LiveTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_chunks_arrive_while_the_build_runs(self) -> defer.Generator:
        arrivals = []

        class Timing(Recorder):
            def logChunk(self, build, step, log, channel, text):
                super().logChunk(build, step, log, channel, text)
                arrivals.append(time.monotonic())

        recorder = Timing()
        yield self.setup_master(master_config(
            {"b1": [python_step("slow", SLOW)]}, [LegacyStatus(receivers=[recorder])]
        ))
        yield self.force("b1")
        yield recorder.wait_for_builds(1)
        finished = time.monotonic()
        self.assertTrue(arrivals)
        self.assertLess(arrivals[0], finished - 1.5, "the first chunk came only at the end")
        _, content = yield self.db_log("b1", 1, "slow", "stdio")
        self.assertEqual(merged(recorder.chunks[(1, "slow", "stdio")]), db_chunks("s", content))


class ArchiverTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_archiver_copies_every_chunk_of_chosen_builders(self) -> defer.Generator:
        from buildbot_logfile.archiver import LogChunkArchiver

        outdir = self.mktemp()
        recorder = Recorder()
        yield self.setup_master(master_config(
            {"b1": [python_step("emit", EMIT)], "other": [python_step("emit", "print(1)")]},
            [LegacyStatus(receivers=[LogChunkArchiver(outdir, builders=["b1"]), recorder])],
        ))
        yield self.force("b1")
        yield self.force("other")
        yield recorder.wait_for_builds(2)
        _, content = yield self.db_log("b1", 1, "emit", "stdio")
        text = "".join(t for _, t in db_chunks("s", content))
        with open(os.path.join(outdir, "b1", "1.log"), encoding="utf-8") as f:
            archived = f.read()
        self.assertIn("--- emit / stdio ---\n" + text, archived)
        self.assertTrue(archived.endswith("--- build success ---\n"))
        self.assertFalse(os.path.exists(os.path.join(outdir, "other")))


class LogReaderTests(unittest.TestCase):
    """The bridge's own connection to an SQLite file."""

    timeout = 20

    def setUp(self) -> None:
        self.engine = sa.create_engine("sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite")
        with self.engine.begin() as conn:
            conn.exec_driver_sql("pragma journal_mode = wal")
            conn.exec_driver_sql("create table t (x integer)")
        master = SimpleNamespace(db=SimpleNamespace(pool=SimpleNamespace(engine=self.engine)),
                                 reactor=reactor)
        self.reader = LogReader(master)
        self.addCleanup(self.engine.dispose)
        self.addCleanup(self.reader.close)

    @defer.inlineCallbacks
    def test_one_connection_and_no_transaction_between_reads(self) -> defer.Generator:
        conns = []

        def read(conn: Any) -> int:
            conns.append(conn)
            return conn.exec_driver_sql("select count(*) from t").scalar()

        self.assertEqual((yield self.reader.do(read)), 0)
        with self.engine.begin() as conn:
            conn.exec_driver_sql("insert into t values (1)")
        with self.engine.connect() as conn:
            # A read transaction left open would make this checkpoint busy.
            busy, _, _ = conn.exec_driver_sql("pragma wal_checkpoint(truncate)").one()
        self.assertEqual(busy, 0)
        self.assertEqual((yield self.reader.do(read)), 1)
        self.assertIs(conns[0], conns[1])

    @defer.inlineCallbacks
    def test_a_read_checkpoints_what_the_master_committed(self) -> defer.Generator:
        yield self.reader.do(lambda conn: None)  # the reader's connection is open
        marker = b"committed by the master " * 100
        with self.engine.begin() as conn:
            conn.exec_driver_sql("create table m (x blob)")
            conn.exec_driver_sql("insert into m values (?)", (marker,))
        database = self.engine.url.database
        with open(database, "rb") as f:
            self.assertNotIn(marker, f.read())  # only in the WAL so far
        yield self.reader.do(lambda conn: None)
        with open(database, "rb") as f:
            self.assertIn(marker, f.read())

    @defer.inlineCallbacks
    def test_a_failed_read_starts_over_on_a_new_connection(self) -> defer.Generator:
        conns = []

        def failing(conn: Any) -> None:
            conns.append(conn)
            conn.exec_driver_sql("select * from no_such_table")

        def read(conn: Any) -> int:
            conns.append(conn)
            return conn.exec_driver_sql("select count(*) from t").scalar()

        yield self.assertFailure(self.reader.do(failing), sa.exc.OperationalError)
        self.assertEqual((yield self.reader.do(read)), 0)
        self.assertIsNot(conns[0], conns[1])
