"""
Several masters, for real (issue 13): two masters in processes of their
own sharing a PostgreSQL database (a MariaDB one for MariaDBClusterTests)
and a crossbar WAMP router, one worker on master A (see L{tests.cluster}).
What master B's 0.8 receivers hear and what B's pages serve of builds that
run on A is checked, byte for byte, against the database, while the
builds run and after they end.  The test writes each build's live output
(a control file the step follows).
"""

from __future__ import annotations

import datetime
import signal
import time
from collections.abc import Iterable
from typing import Any

import treq
from buildbot.process.results import CANCELLED, EXCEPTION, RETRY
from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.cluster import (
    BUILDER_ON_B,
    BUILDERS,
    EVENT_TIMEOUT,
    Build,
    Cluster,
    Master,
    unavailable,
    until,
)
from tests.support import cannot_run, merged

STDOUT, STDERR, HEADER = 0, 1, 2
LIVE = ("live", "stdio")
STEPS = ("worker_preparation", "prep", "live", "after")
STEPS_WITH_LOGS = ("prep", "live", "after")
# Buildbot's master heartbeat: every minute each master marks itself
# active, and expires a master not marked so in ten.
HEARTBEAT_SECONDS = 60
MASTER_EXPIRY_SECONDS = 10 * 60
# 0.8's word for the result that Buildbot 4 puts at the end of the state
# string of a step that did not succeed (see told_text).
STEP_SUFFIX_WORDS = {
    "(failure)": "failed",
    "(warnings)": "warnings",
    "(exception)": "exception",
    "(skipped)": "skipped",
    "(retry)": "retry",
    "(cancelled)": "interrupted",
}
# Seconds to wait for an answer's headers (a live text page sends them with
# its first text).
HTTP_TIMEOUT = 30


def lines(prefix: str, first: int, last: int) -> str:
    """Lines of text that exercise the log: UTF-8 of every width, ANSI colours, markup."""
    return "".join(
        f"{prefix} {i:05d} h\u00e9llo \u2603 \U0001f600 \x1b[1;32mgreen\x1b[0m <b>&amp;</b>\t{i}\n"
        for i in range(first, last)
    )


def of_build(events: Iterable[dict[str, Any]], build: Build) -> list[dict[str, Any]]:
    """The events of one build (not those of its builder)."""
    return [
        e for e in events if e.get("builder") == build.builder and e.get("build") == build.number
    ]


def outline(events: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """C{(event, step, log)} of each event, a run of logChunks as one."""
    shape: list[tuple[Any, ...]] = []
    for e in events:
        item = tuple(x for x in (e["event"], e.get("step"), e.get("log")) if x is not None)
        if item[0] == "logChunk" and shape and shape[-1] == item:
            continue
        shape.append(item)
    return shape


def received_chunks(events: Iterable[dict[str, Any]], step: str, log: str) -> list[Any]:
    """What a receiver was given of one log, as merged C{(channel, text)} chunks."""
    return merged(
        [
            (e["channel"], e["text"])
            for e in events
            if e["event"] == "logChunk" and e["step"] == step and e["log"] == log
        ]
    )


def text_of(chunks: Iterable[Any]) -> str:
    return "".join(text for channel, text in chunks if channel in (STDOUT, STDERR))


def told(results: int | None) -> int | None:
    """A database result as 0.8 receivers are told it: 0.8 had no CANCELLED (see README)."""
    return EXCEPTION if results == CANCELLED else results


def told_text(state_string: str | None) -> str:
    """
    A step's state string as 0.8 receivers are told its text: 0.8 ended
    the text of a step that did not succeed with a word, where Buildbot 4
    puts the result in brackets (see README).
    """
    text = state_string or ""
    for suffix, word in STEP_SUFFIX_WORDS.items():
        if text.endswith(suffix):
            return text[: -len(suffix)] + word
    return text


def cascade(steps: Iterable[str] = STEPS) -> list[tuple[Any, ...]]:
    """The 0.8 cascade of a whole build of the cluster's builders, in outline."""
    shape: list[tuple[Any, ...]] = [("buildStarted",)]
    for step in steps:
        shape.append(("stepStarted", step))
        if step in STEPS_WITH_LOGS:
            shape += [
                ("logStarted", step, "stdio"),
                ("logChunk", step, "stdio"),
                ("logFinished", step, "stdio"),
            ]
        shape.append(("stepFinished", step))
    shape.append(("buildFinished",))
    return shape


class ClusterTestCase(unittest.TestCase):
    """Tests that share one cluster per class (it takes some seconds to start)."""

    timeout = 240
    # Whether the cluster has a second worker, on B (see tests.cluster).
    worker_on_b = False
    # The database the masters share (a key of tests.cluster.DATABASES).
    database = "postgresql"
    cluster: Cluster | None = None
    missing: str | None = None

    @classmethod
    def setUpClass(cls) -> None:
        # pytest calls this; trial's own runner does not, and setUp starts
        # the cluster on first use instead (an atexit hook stops it).
        cls.missing = unavailable(cls.database)
        if cls.missing is None:
            cls._start_cluster()

    @classmethod
    def _start_cluster(cls) -> None:
        cluster = Cluster(worker_on_b=cls.worker_on_b, database=cls.database)
        cluster.start()
        cls.cluster = cluster

    @classmethod
    def tearDownClass(cls) -> None:
        cluster, cls.cluster = cls.cluster, None
        if cluster is not None:
            cluster.stop()

    def setUp(self) -> Any:
        reason = self.missing if self.missing is not None else unavailable(self.database)
        if reason is not None:
            cannot_run(self, f"the cluster tests need {reason}")
        if self.cluster is None:
            type(self)._start_cluster()
        self.builds: list[Build] = []
        self.addCleanup(self._end_builds)
        # A master a failed test left stopped is started again.
        return threads.deferToThread(self._ensure_running)

    def _ensure_running(self) -> None:
        assert self.cluster is not None
        for master in (self.cluster.a, self.cluster.b):
            if not master.running:
                master.start()
        self.cluster.check_running()

    @property
    def a(self) -> Master:
        assert self.cluster is not None
        return self.cluster.a

    @property
    def b(self) -> Master:
        assert self.cluster is not None
        return self.cluster.b

    @property
    def db(self) -> Cluster:
        assert self.cluster is not None
        return self.cluster

    # Builds

    @defer.inlineCallbacks
    def start_build(self, builder: str) -> Any:
        """Force a build on A; it is ended (and waited for) when the test ends."""
        build = yield threads.deferToThread(self.db.force, builder)
        self.builds.append(build)
        return build

    @defer.inlineCallbacks
    def _end_builds(self) -> Any:
        for build in self.builds:
            build.control.end()
        for build in self.builds:
            yield until(lambda build=build: self.db.build_complete(build), f"{build} to end")

    @defer.inlineCallbacks
    def build_under_way(self, stdout_lines: int) -> Any:
        """
        A build of b1 on A whose live step has written C{stdout_lines}
        lines of stdout and two of stderr, all of which B's receivers have.
        """
        build = yield self.start_build("b1")
        yield self.live_log_exists(build)
        build.control.write(
            stdout=lines("before", 0, stdout_lines), stderr=lines("before-err", 0, 2)
        )
        yield self.db_has_written(build)
        yield self.wait_for_same_text(self.b, build)
        return build

    def live_log_exists(self, build: Build) -> defer.Deferred[Any]:
        return until(lambda: self.db.log_row(build, *LIVE), f"the live log of {build}")

    def db_has_written(self, build: Build) -> defer.Deferred[Any]:
        """Fires once the database holds all that the test had the live step write."""
        control = build.control

        def check() -> bool:
            chunks = self.db.db_chunks(build, *LIVE)
            stdout = "".join(t for c, t in chunks if c == STDOUT)
            stderr = "".join(t for c, t in chunks if c == STDERR)
            return stdout == control.stdout and stderr == control.stderr

        return until(check, f"the database to hold what {build}'s live step wrote")

    # What a master's receivers heard

    def events(self, master: Master, build: Build, since: int = 0) -> list[dict[str, Any]]:
        return of_build(master.events(since), build)

    def wait_for_event(
        self,
        master: Master,
        build: Build,
        event: str,
        since: int = 0,
        timeout: float = EVENT_TIMEOUT,
        **fields: Any,
    ) -> defer.Deferred[Any]:
        def found() -> Any:
            for e in self.events(master, build, since):
                if e["event"] == event and all(e.get(k) == v for k, v in fields.items()):
                    return e
            return None

        def what() -> str:
            got = outline(self.events(master, build, since))
            return (
                f"{event} {fields} of {build} on {master}; its receivers got only {got};"
                f" the end of its log:\n{master.log_tail(40)}"
            )

        return until(found, what, timeout=timeout)

    def wait_for_same_text(
        self, master: Master, build: Build, since: int = 0, timeout: float = EVENT_TIMEOUT
    ) -> defer.Deferred[Any]:
        """
        Fires once C{master}'s receivers were given all of the live log
        the database holds (which holds all the step wrote): chunk for
        chunk, channel for channel.
        """

        def check() -> bool:
            db = self.db.db_chunks(build, *LIVE)
            got = received_chunks(self.events(master, build, since), *LIVE)
            return bool(db) and got == db

        def what() -> str:
            db = self.db.db_chunks(build, *LIVE)
            got = received_chunks(self.events(master, build, since), *LIVE)
            return (
                f"{master}'s receivers to be given all of {build}'s live log: the database"
                f" holds {len(text_of(db).encode())} bytes of text in {len(db)} chunks,"
                f" they got {len(text_of(got).encode())} bytes in {len(got)} chunks;"
                f" events: {outline(self.events(master, build, since))}"
            )

        return until(check, what, timeout=timeout)

    def check_against_database(
        self, master: Master, build: Build, since: int = 0, steps: Iterable[str] = STEPS_WITH_LOGS
    ) -> None:
        """Every log of C{steps} as C{master}'s receivers got it equals the database."""
        events = self.events(master, build, since)
        for step in steps:
            self.assertEqual(
                received_chunks(events, step, "stdio"),
                self.db.db_chunks(build, step, "stdio"),
                f"{build} step {step} on {master}",
            )

    def check_status_fields(
        self,
        master: Master,
        build: Build,
        steps: Iterable[str] = STEPS,
        text: str | None = None,
    ) -> None:
        """
        What the status objects answered at the build's end equals the
        database; the build had C{steps}, and its 0.8 C{text} (by default
        its state string, which is a successful build's 0.8 text).
        """
        ((results, started_at, complete_at, state_string, reason),) = self.db.query(
            "SELECT b.results, b.started_at, b.complete_at, b.state_string, bs.reason"
            " FROM builds b JOIN buildrequests br ON br.id = b.buildrequestid"
            " JOIN buildsets bs ON bs.id = br.buildsetid WHERE b.id = %s",
            build.buildid,
        )
        events = self.events(master, build)
        (finished,) = [e for e in events if e["event"] == "buildFinished"]
        self.assertEqual(finished["results"], told(results))
        self.assertEqual(finished["results_arg"], told(results))
        self.assertEqual(finished["times"], [started_at, complete_at])
        self.assertEqual(" ".join(finished["text"]), state_string if text is None else text)
        self.assertEqual(finished["reason"], reason)
        self.assertEqual(finished["worker"], self.db.run_by(build)[1])
        self.assertEqual(finished["buildername_property"], build.builder)
        self.assertTrue(finished["finished"])
        self.assertEqual(finished["steps"], list(steps))
        rows = {
            name: (number, results, started_at, complete_at, state_string)
            for name, number, results, started_at, complete_at, state_string in self.db.query(
                "SELECT name, number, results, started_at, complete_at, state_string"
                " FROM steps WHERE buildid = %s",
                build.buildid,
            )
        }
        for e in events:
            if e["event"] == "stepFinished":
                _, results, started_at, complete_at, state_string = rows[e["step"]]
                self.assertEqual(e["results"][0], told(results), e["step"])
                self.assertEqual(e["results_arg"], e["results"], e["step"])
                self.assertEqual(" ".join(e["text"]), told_text(state_string), e["step"])
                self.assertEqual(e["times"], [started_at, complete_at], e["step"])
        # A status object that raised, for this build or any other: the
        # receiver notes it without a build.
        self.assertEqual([e for e in master.events() if e["event"] == "receiverError"], [])

    @defer.inlineCallbacks
    def both_heard_the_whole_build(self, build: Build, since_a: int, since_b: int) -> Any:
        """
        Once C{build} has ended, the receivers of both masters heard all of
        it, in 0.8's order, as the database has it.
        """
        for master, since in ((self.a, since_a), (self.b, since_b)):
            yield self.wait_for_event(master, build, "buildFinished", since=since)
        for master, since in ((self.a, since_a), (self.b, since_b)):
            self.assertEqual(outline(self.events(master, build, since)), cascade(), master)
            self.check_against_database(master, build, since)
            self.check_status_fields(master, build)

    # Pages

    @defer.inlineCallbacks
    def open_stream(self, url: str) -> Any:
        """
        GET C{url} and collect its body as it arrives: C{(response,
        received parts, Deferred that fires when the body ends)}.
        """
        response = yield treq.get(url, persistent=False, timeout=HTTP_TIMEOUT, unbuffered=True)
        received: list[bytes] = []
        done = treq.collect(response, received.append)

        @defer.inlineCallbacks
        def close() -> Any:
            # The test has checked how the page ends, if it got that far:
            # here it only must not outlive the test.
            yield self._end_builds()
            try:
                yield until(lambda: done.called, f"the stream of {url} to end", timeout=10)
            except AssertionError:
                response.original._transport.stopProducing()  # twisted.web's Response
                yield done.addErrback(lambda _: None)

        self.addCleanup(close)
        return response, received, done

    @defer.inlineCallbacks
    def get(self, url: str) -> Any:
        response = yield treq.get(url, persistent=False, timeout=HTTP_TIMEOUT)
        body = yield treq.content(response)
        return response, body


class ClusterTests(ClusterTestCase):
    @defer.inlineCallbacks
    def test_both_masters_tell_a_buildset_and_its_request_as_the_database_has_them(
        self,
    ) -> Any:
        # Over the WAMP router the messages carry their times as numbers
        # (the single-master tests' message queue carries datetimes).
        since = {master: master.events_size() for master in (self.a, self.b)}
        build = yield self.start_build("b2")
        for master in (self.a, self.b):
            yield self.told_its_buildset_and_request(master, build, since[master])

    @defer.inlineCallbacks
    def test_b_whose_database_connections_were_cut_tells_a_buildset_and_its_request(
        self,
    ) -> Any:
        since_b = self.b.events_size()
        cut = yield threads.deferToThread(self.db.cut_connections, self.b)
        self.assertGreater(cut, 0)
        build = yield self.start_build("b2")
        yield self.told_its_buildset_and_request(self.b, build, since_b)

    @defer.inlineCallbacks
    def told_its_buildset_and_request(self, master: Master, build: Build, since: int) -> Any:
        """C{master}'s receivers heard C{build} start, and its buildset and request, once."""
        ((brid, bsid, request_at, buildset_at, reason),) = self.db.query(
            "SELECT br.id, bs.id, br.submitted_at, bs.submitted_at, bs.reason FROM builds b"
            " JOIN buildrequests br ON br.id = b.buildrequestid"
            " JOIN buildsets bs ON bs.id = br.buildsetid WHERE b.id = %s",
            build.buildid,
        )
        yield self.wait_for_event(master, build, "buildStarted", since=since)
        # Requests and buildsets are told apart from the build's events.
        yield until(
            lambda: (
                {"buildsetSubmitted", "requestSubmitted"}
                <= {e["event"] for e in master.events(since)}
            ),
            f"the buildset and its request told on {master}",
        )
        told = {
            e["event"]: e
            for e in master.events(since)
            if e["event"] in ("buildsetSubmitted", "requestSubmitted")
        }
        # Each once (Buildbot announces the request before its buildset).
        self.assertEqual(
            sorted(e["event"] for e in master.events(since) if e["event"] in told),
            ["buildsetSubmitted", "requestSubmitted"],
            master,
        )
        buildset = told["buildsetSubmitted"]["buildset"]
        self.assertEqual(
            (buildset["bsid"], buildset["reason"], buildset["submitted_at"]),
            (
                bsid,
                reason,
                str(datetime.datetime.fromtimestamp(buildset_at, datetime.timezone.utc)),
            ),
            master,
        )
        self.assertFalse(buildset["complete"], master)
        request = told["requestSubmitted"]
        self.assertEqual(
            (
                request["brid"],
                request["bsid"],
                request["request"]["builderName"],
                request["request"]["submittedAt"],
            ),
            (brid, bsid, "b2", request_at),
            master,
        )

    @defer.inlineCallbacks
    def test_b_gets_the_whole_cascade_and_every_byte_of_a_build_on_a_live(self) -> Any:
        since_a, since_b = self.a.events_size(), self.b.events_size()
        build = yield self.start_build("b1")
        yield self.wait_for_event(self.b, build, "logStarted", step="live", since=since_b)
        control = build.control
        # Live: B hears each part as it is written, before the build ends.
        for part in range(3):
            control.write(stdout=lines(f"out{part}", 0, 5), stderr=lines(f"err{part}", 0, 2))
            yield self.db_has_written(build)
            yield self.wait_for_same_text(self.b, build, since_b)
        # A burst of 2 MB, across many database chunks.
        for block in range(40):
            control.write(stdout=lines(f"burst{block}", 0, 800))
            if block % 8 == 7:
                control.write(stderr=lines(f"burst-err{block}", 0, 3))
        yield self.db_has_written(build)
        yield self.wait_for_same_text(self.b, build, since_b)
        self.assertNotIn("buildFinished", [e["event"] for e in self.events(self.b, build)])
        self.assertFalse(self.db.build_complete(build))
        self.assertGreater(len(text_of(self.db.db_chunks(build, *LIVE)).encode()), 2_000_000)

        control.end()
        yield self.both_heard_the_whole_build(build, since_a, since_b)
        self.assertIn({"event": "builderAdded", "builder": "b1", "name": "b1"}, self.b.events())

    @defer.inlineCallbacks
    def test_b_text_page_streams_a_build_on_a_live_and_ends_with_it(self) -> Any:
        build = yield self.start_build("b1")
        yield self.live_log_exists(build)
        control = build.control
        control.write(stdout=lines("before the page", 0, 3))
        yield self.db_has_written(build)
        response, received, done = yield self.open_stream(self.b.pages + build.path() + "/text")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"]
        )
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-cache"])

        def page_holds_the_database() -> bool:
            return b"".join(received) == self.db.db_text(build).encode()

        yield until(page_holds_the_database, "B's page to hold the text so far")
        for part in range(3):
            control.write(stdout=lines(f"out{part}", 0, 50), stderr=lines(f"err{part}", 0, 5))
            yield self.db_has_written(build)
            yield until(
                page_holds_the_database,
                lambda: (
                    f"B's page to follow the log: {len(b''.join(received))} bytes so far,"
                    f" the database holds {len(self.db.db_text(build).encode())}"
                ),
            )
            self.assertFalse(done.called, "the page ended while the log is live")
        control.end()
        yield until(lambda: done.called, "B's page to end when the log ends")
        yield done
        self.assertEqual(b"".join(received), self.db.db_text(build).encode())
        self.assertIn(lines("err2", 4, 5).encode(), b"".join(received))

    @defer.inlineCallbacks
    def test_b_start_polling_reaches_the_full_text_of_a_build_on_a(self) -> Any:
        build = yield self.start_build("b2")
        yield self.live_log_exists(build)
        control = build.control
        url = self.b.pages + build.path() + "/text?start="
        text = b""
        offset = 0

        @defer.inlineCallbacks
        def poll_once() -> Any:
            nonlocal text, offset
            response, body = yield self.get(url + str(offset))
            self.assertEqual(response.code, 200, body)
            (size,) = response.headers.getRawHeaders("x-text-size")
            self.assertEqual(int(size), offset + len(body))
            text += body
            offset = int(size)
            return response.headers.getRawHeaders("x-more-data") == ["true"]

        @defer.inlineCallbacks
        def caught_up() -> Any:
            more = yield poll_once()
            self.assertTrue(more, "X-More-Data missing while the log is live")
            return text == self.db.db_text(build).encode()

        def what() -> str:
            return (
                f"polls of B to reach the text so far: {len(text)} bytes,"
                f" the database holds {len(self.db.db_text(build).encode())}"
            )

        for part in range(4):
            control.write(stdout=lines(f"out{part}", 0, 200), stderr=lines(f"err{part}", 0, 9))
            yield self.db_has_written(build)
            yield until(caught_up, what)
        control.end()
        yield until(lambda: self.db.build_complete(build), f"{build} to end")
        yield until(
            lambda: poll_once().addCallback(lambda more: not more),
            "B's polls to reach the end of the finished log (no X-More-Data)",
        )
        self.assertEqual(text, self.db.db_text(build).encode())
        response, body = yield self.get(url + str(offset))
        self.assertEqual(body, b"")
        self.assertIsNone(response.headers.getRawHeaders("x-more-data"))

    @defer.inlineCallbacks
    def test_b_whose_database_connections_were_cut_tells_the_build_in_order(self) -> Any:
        # As a restart of the database server leaves them: each of B's
        # connections fails its next statement (on PostgreSQL Buildbot's
        # pool does not try that statement again).
        since_a, since_b = self.a.events_size(), self.b.events_size()
        build = yield self.start_build("b1")
        yield self.wait_for_event(self.b, build, "logStarted", step="live", since=since_b)
        build.control.write(stdout=lines("before", 0, 50), stderr=lines("before-err", 0, 2))
        yield self.db_has_written(build)
        yield self.wait_for_same_text(self.b, build, since_b)
        cut = yield threads.deferToThread(self.db.cut_connections, self.b)
        self.assertGreater(cut, 0)
        build.control.write(stdout=lines("after", 0, 50), stderr=lines("after-err", 0, 2))
        yield self.db_has_written(build)
        build.control.end()
        yield self.both_heard_the_whole_build(build, since_a, since_b)
        response, body = yield self.get(self.b.pages + build.path() + "/text")
        self.assertEqual((response.code, body), (200, self.db.db_text(build).encode()))

    @defer.inlineCallbacks
    def test_builds_running_at_once_stay_apart(self) -> Any:
        since_b = self.b.events_size()
        first = yield self.start_build("b1")
        second = yield self.start_build("b2")
        for build in (first, second):
            yield self.wait_for_event(self.b, build, "logStarted", step="live", since=since_b)
            build.control.write(stdout=f"{build.builder} out: the first line\n")
            yield self.db_has_written(build)
        streams = {}
        for build in (first, second):
            streams[build.builder] = yield self.open_stream(self.b.pages + build.path() + "/text")
        for i in range(20):
            for build in (first, second):
                build.control.write(stdout=lines(f"{build.builder} out", i * 10, i * 10 + 10))
                if i % 4 == 0:
                    build.control.write(stderr=lines(f"{build.builder} err", i, i + 1))
        for build in (first, second):
            yield self.db_has_written(build)
            yield self.wait_for_same_text(self.b, build, since_b)
        first.control.end()
        yield self.wait_for_event(self.b, first, "buildFinished", since=since_b)
        self.assertNotIn("buildFinished", [e["event"] for e in self.events(self.b, second)])
        second.control.write(stdout=lines("b2 alone", 0, 30))
        yield self.db_has_written(second)
        yield self.wait_for_same_text(self.b, second, since_b)
        second.control.end()
        yield self.wait_for_event(self.b, second, "buildFinished", since=since_b)

        for build, other in ((first, second), (second, first)):
            events = self.events(self.b, build, since_b)
            self.assertEqual(outline(events), cascade(), build)
            self.check_against_database(self.b, build, since_b)
            self.check_status_fields(self.b, build)
            received = text_of(received_chunks(events, *LIVE))
            self.assertNotIn(f"{other.builder} out", received)
            self.assertIn(f"{build.builder} out 00199", received)
            _, parts, done = streams[build.builder]
            yield until(lambda done=done: done.called, f"B's page of {build} to end")
            yield done
            self.assertEqual(b"".join(parts), self.db.db_text(build).encode())
        self.assertNotEqual(first.buildid, second.buildid)


class MariaDBClusterTests(ClusterTests):
    """
    The same on MariaDB (Buildbot's C{mysql} dialect), the other database
    a cluster may share: each master reads the others' logs through its
    own pool there.
    """

    database = "mariadb"


class BuildsOnBothMastersTests(ClusterTestCase):
    """
    Builds running at once on both masters, one on each (issue 13): each
    master's receivers hear both, apart, whole and live, and each master's
    pages stream both live, the other master's build too, and end with
    them.
    """

    worker_on_b = True

    @defer.inlineCallbacks
    def test_builds_on_both_masters_at_once_stay_apart(self) -> Any:
        masters = (self.a, self.b)
        since = {master: master.events_size() for master in masters}
        on_a = yield self.start_build("b1")
        on_b = yield self.start_build(BUILDER_ON_B)
        builds = (on_a, on_b)
        for build in builds:
            for master in masters:
                yield self.wait_for_event(
                    master, build, "logStarted", step="live", since=since[master]
                )
            build.control.write(stdout=f"{build.builder} out: the first line\n")
            yield self.db_has_written(build)
        self.assertEqual(self.db.run_by(on_a)[0], self.a)
        self.assertEqual(self.db.run_by(on_b)[0], self.b)
        streams = {}
        for master in masters:
            for build in builds:
                streams[master, build] = yield self.open_stream(
                    master.pages + build.path() + "/text"
                )
        for i in range(20):
            for build in builds:
                build.control.write(stdout=lines(f"{build.builder} out", i * 10, i * 10 + 10))
                if i % 4 == 0:
                    build.control.write(stderr=lines(f"{build.builder} err", i, i + 1))
        for build in builds:
            yield self.db_has_written(build)
            text = self.db.db_text(build).encode()
            for master in masters:
                yield self.wait_for_same_text(master, build, since[master])
                _, parts, done = streams[master, build]
                yield until(
                    lambda parts=parts, text=text: b"".join(parts) == text,
                    f"{master}'s page of {build} to have all the database holds, live",
                )
                self.assertFalse(done.called, f"{master}'s page of {build} ended while it runs")
                self.assertNotIn("buildFinished", [e["event"] for e in self.events(master, build)])
        for build in builds:
            build.control.end()
        for build in builds:
            for master in masters:
                yield self.wait_for_event(master, build, "buildFinished", since=since[master])

        for master in masters:
            for build, other in ((on_a, on_b), (on_b, on_a)):
                events = self.events(master, build, since[master])
                self.assertEqual(outline(events), cascade(), (master, build))
                self.check_against_database(master, build, since[master])
                self.check_status_fields(master, build)
                received = text_of(received_chunks(events, *LIVE))
                self.assertNotIn(f"{other.builder} out", received)
                self.assertIn(f"{build.builder} out 00199", received)
                _, parts, done = streams[master, build]
                yield until(lambda done=done: done.called, f"{master}'s page of {build} to end")
                yield done
                self.assertEqual(b"".join(parts), self.db.db_text(build).encode())


class RestartTests(ClusterTestCase):
    """
    Master B stops (SIGTERM) or dies (SIGKILL) while A runs a build, and
    starts again while the build still runs.  Issue 13: B's receivers
    then hear that build from where it stands (the build, its started
    steps, each log's text so far from the database, then live) and its
    end.
    """

    @defer.inlineCallbacks
    def check_restart(self, sig: int) -> Any:
        build = yield self.build_under_way(20)
        control = build.control

        yield threads.deferToThread(self.b.kill, sig)
        control.write(stdout=lines("while B is down", 0, 20))
        yield self.db_has_written(build)
        since = self.b.events_size()
        yield threads.deferToThread(self.b.start)
        control.write(stdout=lines("after B started again", 0, 20))
        yield self.db_has_written(build)

        # From where the build stands: the build, its live step and log...
        yield self.wait_for_event(self.b, build, "buildStarted", since=since)
        yield self.wait_for_event(self.b, build, "logStarted", since=since, step="live")
        # ... the log's text so far, from the database, then live.
        yield self.wait_for_same_text(self.b, build, since)
        control.write(stdout=lines("live again", 0, 20), stderr=lines("live-err", 0, 2))
        yield self.db_has_written(build)
        yield self.wait_for_same_text(self.b, build, since)
        self.assertNotIn("buildFinished", [e["event"] for e in self.events(self.b, build, since)])
        # ... and its end.
        control.end()
        yield self.wait_for_event(self.b, build, "buildFinished", since=since)
        events = self.events(self.b, build, since)
        shape = outline(events)
        # Every step, whole and in 0.8 order: those that had finished
        # before B started again are told from the database too.
        self.assertEqual(shape, cascade(list(STEPS)))
        self.check_against_database(self.b, build, since, list(STEPS_WITH_LOGS))
        self.check_status_fields(self.b, build)

    def test_b_stopped_and_started_again_hears_the_running_build(self) -> Any:
        return self.check_restart(signal.SIGTERM)

    def test_b_killed_and_started_again_hears_the_running_build(self) -> Any:
        return self.check_restart(signal.SIGKILL)


class BuildMasterDiesTests(ClusterTestCase):
    """
    Master A, which runs the build, stops (SIGTERM) or dies (SIGKILL)
    mid-build and starts again.  Buildbot ends the build: stopping, A
    interrupts it (cancelled); killed, A leaves it to be ended as it
    starts again (retry), and runs its request again as a new build.
    Master B's receivers hear the build end as the database has it, every
    byte A stored included; A's page of the log serves what the database
    holds, whatever A's spool file held when it went; and both masters
    hear the build that retries a killed master's.  A killed master that
    stays down has its build ended by another master once it expires it
    (after ten minutes without a heartbeat: here the database is told so).
    """

    @defer.inlineCallbacks
    def check_build_master_dies(self, sig: int, expire: bool = False) -> Any:
        """
        C{expire}: A, killed, stays down until master B expires it and ends
        its build, and only then starts again.
        """
        build = yield self.build_under_way(200)
        # A's own receivers have those lines too, or they might hear the
        # last of them after the count below and before A goes.
        yield self.wait_for_same_text(self.a, build)
        control = build.control
        since_a = self.a.events_size()

        yield threads.deferToThread(self.a.kill, sig)
        if expire:
            # As if A had been gone for longer than Buildbot waits for a
            # master's heartbeat: B's next heartbeat expires it.
            gone = int(time.time()) - MASTER_EXPIRY_SECONDS - 60
            # One row: A's (a pattern that matched none would only time out below).
            (_,) = self.db.query(
                "UPDATE masters SET last_active = %s WHERE name LIKE %s RETURNING id",
                gone,
                "%" + self.a.basedir,
            )
            yield self.wait_for_event(
                self.b, build, "buildFinished", timeout=HEARTBEAT_SECONDS + EVENT_TIMEOUT
            )
        yield threads.deferToThread(self.a.start)

        yield self.wait_for_event(self.b, build, "buildFinished")
        events = self.events(self.b, build)
        ran = STEPS[: STEPS.index("live") + 1]
        expected = cascade(ran)
        if sig == signal.SIGTERM:
            # A stopping interrupts the step: Buildbot adds a log that says
            # why, and the command's end to stdio.
            at = expected.index(("logFinished", "live", "stdio"))
            expected[at:at] = [
                ("logStarted", "live", "cancelled"),
                ("logChunk", "live", "cancelled"),
                ("logFinished", "live", "cancelled"),
                ("logChunk", "live", "stdio"),
            ]
            self.assertEqual(
                received_chunks(events, "live", "cancelled"),
                self.db.db_chunks(build, "live", "cancelled"),
            )
        self.assertEqual(outline(events), expected)
        self.check_against_database(self.b, build, steps=[s for s in ran if s in STEPS_WITH_LOGS])
        # Killed, A leaves the build to be retried as it starts again (or
        # as another master expires it).
        # Stopping, it asks for a retry too, but the step it interrupts
        # ends cancelled, which Buildbot ranks worse: 0.8 receivers hear
        # an exception, and 0.8's words for the step ("interrupted").
        results, words = (
            (RETRY, "retry live") if sig == signal.SIGKILL else (EXCEPTION, "exception interrupted")
        )
        self.check_status_fields(self.b, build, steps=ran, text=words)
        (finished,) = [e for e in events if e["event"] == "buildFinished"]
        self.assertEqual(finished["results"], results)
        # What the step wrote before A went, all of it (the two streams
        # reach the database in either order).
        received = received_chunks(events, *LIVE)
        for channel, written in ((STDOUT, control.stdout), (STDERR, control.stderr)):
            got = "".join(text for c, text in received if c == channel)
            self.assertEqual(got[: len(written)], written, channel)

        response, body = yield self.get(self.a.pages + build.path() + "/text")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, self.db.db_text(build).encode())

        on_a = self.events(self.a, build, since_a)
        if sig != signal.SIGKILL:
            # A's receivers heard the build end as A stopped it.
            self.assertEqual(outline(on_a)[-3:], expected[-3:])
            self.assertEqual(on_a[-1]["results"], EXCEPTION)
            return  # a cancelled build's request is done: it does not run again
        # A's receivers started after the build had ended: they hear its retry only.
        self.assertEqual(on_a, [])
        (request,) = self.db.query(
            "SELECT buildrequestid FROM builds WHERE id = %s", build.buildid
        )[0]
        ((number, buildid),) = yield until(
            lambda: self.db.query(
                "SELECT number, id FROM builds WHERE buildrequestid = %s AND id <> %s",
                request,
                build.buildid,
            ),
            "the build's request to run again",
            timeout=120,
        )
        retry = Build(self.db, build.builder, number, buildid)
        self.builds.append(retry)
        retry.control.end()
        for master, since in ((self.a, since_a), (self.b, 0)):
            yield self.wait_for_event(master, retry, "buildFinished", since=since)
            self.assertEqual(outline(self.events(master, retry, since)), cascade(), master)
            self.check_against_database(master, retry, since)

    def test_a_stopped_mid_build_and_started_again(self) -> Any:
        return self.check_build_master_dies(signal.SIGTERM)

    def test_a_killed_mid_build_and_started_again(self) -> Any:
        return self.check_build_master_dies(signal.SIGKILL)

    def test_a_killed_mid_build_and_expired_by_b(self) -> Any:
        return self.check_build_master_dies(signal.SIGKILL, expire=True)


class BuilderLeavesTests(ClusterTestCase):
    """
    A master's 0.8 C{Status} holds the builders of the cluster (README,
    "Several masters"): C{builderRemoved} once no master runs a builder.
    """

    @defer.inlineCallbacks
    def test_builder_removed_once_no_master_of_the_cluster_runs_it(self) -> Any:
        since = {master: master.events_size() for master in (self.a, self.b)}

        @defer.inlineCallbacks
        def restore() -> Any:
            for master in (self.a, self.b):
                yield threads.deferToThread(master.reconfig, list(BUILDERS))

        self.addCleanup(restore)

        def removed(master: Master) -> list[Any]:
            return [e for e in master.events(since[master]) if e["event"] == "builderRemoved"]

        yield threads.deferToThread(self.a.reconfig, ["b1"])
        # b2 left A, but B runs it: nobody was told it left.  A build seen
        # by both after A's reconfig shows that the news has gone round.
        build = yield self.start_build("b1")
        build.control.end()
        for master in (self.a, self.b):
            yield self.wait_for_event(master, build, "buildFinished", since=since[master])
            self.assertEqual(removed(master), [], master)
        yield threads.deferToThread(self.b.reconfig, ["b1"])
        for master in (self.a, self.b):
            yield until(lambda master=master: removed(master), f"builderRemoved on {master}")
            self.assertEqual(removed(master), [{"event": "builderRemoved", "builder": "b2"}])
