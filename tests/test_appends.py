"""
A master's own builds' logs: the bridge takes their lines from the master's
appendLog calls, and reads from the database only what the database holds
otherwise than it was given.
"""

from __future__ import annotations

import os
import random
import string
from collections.abc import Callable, Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from twisted.internet import defer
from twisted.python import log

from buildbot_logfile import LegacyStatus, _appends, _logdb, _mirror
from tests.databases import PostgresTestCase
from tests.masters import LiveLog, MasterTestCase, db_chunks, live_log_step, merged, poll

KEY = (1, "live", "stdio")


class LoggedLines:
    """The messages logged that hold C{phrase}."""

    def __init__(self, phrase: str) -> None:
        self.phrase = phrase
        self.lines: list[str] = []

    def __call__(self, event: dict[str, Any]) -> None:
        text = " ".join(str(part) for part in event.get("message") or ())
        if self.phrase in text:
            self.lines.append(text)


class InCallingOrder:
    """
    A subscription point's subscriptions, handed over in the order they
    were made: Buildbot keeps them in a set, whose order a test cannot
    choose.
    """

    def __init__(self, subscriptions: Iterable[Any]) -> None:
        self._subscriptions = dict.fromkeys(subscriptions)

    def add(self, subscription: Any) -> None:
        self._subscriptions[subscription] = None

    def remove(self, subscription: Any) -> None:
        del self._subscriptions[subscription]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._subscriptions))

    def __len__(self) -> int:
        return len(self._subscriptions)


class AppendsTests(MasterTestCase):
    def setUp(self) -> Any:
        # What LegacyStatus logs of its log reads as it stops.
        self.reads = LoggedLines("log reads in")
        log.addObserver(self.reads)
        self.addCleanup(log.removeObserver, self.reads)
        return super().setUp()

    @defer.inlineCallbacks
    def run_live_log(
        self,
        writes: list[str],
        wrap: Callable[[Any], Any] | None = None,
        wrap_bridged: Callable[[Any], Any] | None = None,
    ) -> Any:
        """
        A build whose log gets C{writes} (stdout) one by one, each heard by
        the receiver before the next; the log's lines as the database holds
        them once the build is over, and the service stopped.  C{wrap}
        wraps the master's C{appendLog} before the service starts,
        C{wrap_bridged} the bridge's once it has (until it stops).
        """
        live = LiveLog()
        yield self.start_master({"b1": [live_log_step(live)]}, legacy=wrap is None)
        buildbot_append_log = self.master.data.rtypes.log.appendLog
        if wrap is not None:
            updates = self.master.data.updates
            updates.appendLog = buildbot_append_log = wrap(updates.appendLog)
            yield self.reconfig(services=[LegacyStatus(receivers=[self.recorder])])
        bridged = self.master.data.updates.appendLog
        self.assertNotEqual(bridged, buildbot_append_log)
        if wrap_bridged is not None:
            self.master.data.updates.appendLog = wrap_bridged(bridged)
        yield self.force("b1")
        yield live.opened
        # The bridge follows the log's appends once it has told of the log;
        # lines written before are read from the database.
        yield self.recorder.wait_until(lambda: ("logStarted", *KEY) in self.recorder.events)
        for text in writes:
            yield live.write(stdout=text)
            last_line = text.splitlines(True)[-1]
            yield self.recorder.wait_until(
                lambda last_line=last_line: self.recorder.text_of(*KEY).endswith(last_line)
            )
        live.end()
        yield self.recorder.wait_for_builds(1)
        _, content = yield self.db_log("b1", 1, "live", "stdio")
        self.assertEqual(merged(self.recorder.chunks[KEY]), db_chunks("s", content))
        self.master.data.updates.appendLog = bridged
        yield self.reconfig(services=[])
        # Buildbot's own method is back once the service is gone.
        self.assertEqual(self.master.data.updates.appendLog, buildbot_append_log)
        return content

    @defer.inlineCallbacks
    def test_this_masters_lines_need_no_database_read(self) -> defer.Generator:
        writes = [f"line {i} of write {w}\n" * (w + 1) for w in range(6) for i in range(3)]
        content = yield self.run_live_log(writes)
        self.assertEqual(
            content, "".join("o" + line for w in writes for line in w.splitlines(True))
        )
        (summary,) = self.reads.lines
        self.assertTrue(summary.startswith("LegacyStatus: 0 log reads"), summary)

    def count_letters_taken_off(self) -> list[str]:
        """The texts whose stream letters the bridge takes off, from here on."""
        taken: list[str] = []
        stream_chunks = _mirror.stream_chunks

        def counting(text: str, lines: int | None = None) -> Any:
            taken.append(text)
            return stream_chunks(text, lines)

        self.patch(_mirror, "stream_chunks", counting)
        return taken

    @defer.inlineCallbacks
    def test_stream_lines_are_taken_as_the_log_handed_them(self) -> defer.Generator:
        # The bridge takes the lines of a stream log of this master's as
        # the log handed them to its subscribers, before it put their
        # stream letters before them; but for the log's first append,
        # which comes before the bridge has subscribed, and an append
        # that waited for an earlier one (stdout and stderr written at
        # once), whose lines it cannot match to what the log handed over.
        taken = self.count_letters_taken_off()
        live = yield self.start_live_build()
        yield self.recorder.wait_until(lambda: ("logStarted", *KEY) in self.recorder.events)
        writes = ["first \u00e9\n", "o1\no2\n", "e1\n", "o3 \u20ac\n" * 3, "e2\ne3\n", "last\n"]
        yield live.write(stdout=writes[0])
        yield live.write(stdout=writes[1])
        yield live.write(stderr=writes[2])
        yield live.write(stdout=writes[3], stderr=writes[4])
        yield live.write(stdout=writes[5])
        live.end()
        yield self.recorder.wait_for_builds(1)
        _, content = yield self.db_log("b1", 1, "live", "stdio")
        self.assertEqual(merged(self.recorder.chunks[KEY]), db_chunks("s", content))
        self.assertEqual(
            merged(self.recorder.chunks[KEY]),
            [
                (0, writes[0] + writes[1]),
                (1, writes[2]),
                (0, writes[3]),
                (1, writes[4]),
                (0, writes[5]),
            ],
        )
        self.assertEqual(taken, ["ofirst \u00e9\n", "ee2\nee3\n"])

    @defer.inlineCallbacks
    def test_a_subscriber_that_adds_lines_as_it_is_handed_some(self) -> defer.Generator:
        # Another subscriber of the log, called after the bridge, adds
        # lines to the log as it is handed lines, which the log hands over
        # in turn: those come first, and are taken as handed over; the
        # lines handed over first then wait for them, and the bridge takes
        # the letters off them as stored.  The lines added are like those
        # handed over but for their middle line.
        taken = self.count_letters_taken_off()
        live = yield self.start_live_build()
        yield self.recorder.wait_until(lambda: ("logStarted", *KEY) in self.recorder.events)
        yield live.write(stdout="first\n")

        def echo(stream: str | None, lines: str | None) -> None:
            if lines is not None and "AAA" in lines:
                live.log.addStdout(lines.replace("AAA", "BBB"))

        # Buildbot calls a log's subscribers in the order of the set it
        # keeps them in, which follows the objects' addresses: kept in the
        # order they came instead, so that the bridge's (and Buildbot's
        # own, if any) come before this one in every run.
        point = live.log.subPoint
        point.subscriptions = InCallingOrder(point.subscriptions)
        live.log.subscribe(echo)
        callbacks = [s.callback for s in point.subscriptions]
        names = [getattr(getattr(c, "func", c), "__name__", "") for c in callbacks]
        self.assertIn("_handed", names)
        self.assertEqual(callbacks[-1], echo)
        yield live.write(stdout="x\nAAA\nx\n")
        yield live.write(stdout="y\n")
        live.end()
        yield self.recorder.wait_for_builds(1)
        _, content = yield self.db_log("b1", 1, "live", "stdio")
        self.assertEqual(content, "ofirst\nox\noBBB\nox\nox\noAAA\nox\noy\n")
        self.assertEqual(merged(self.recorder.chunks[KEY]), db_chunks("s", content))
        self.assertEqual(taken, ["ofirst\n", "ox\noAAA\nox\n"])

    @defer.inlineCallbacks
    def test_an_append_log_wrapped_after_that_changes_the_lines(self) -> defer.Generator:
        # Another plugin wrapped appendLog after LegacyStatus started and
        # hides a word as the lines go by, in the middle of an append: the
        # bridge takes the lines the database holds, not those the log
        # handed over.
        def hiding(bridged: Any) -> Any:
            return lambda logid, content: bridged(logid, content.replace("secret", "******"))

        taken = self.count_letters_taken_off()
        writes = ["a\nthe secret\nz\n", "b\nsecret again\ny\n"]
        content = yield self.run_live_log(writes, wrap_bridged=hiding)
        self.assertEqual(content, "oa\nothe ******\noz\nob\no****** again\noy\n")
        self.assertEqual(self.recorder.text_of(*KEY), "a\nthe ******\nz\nb\n****** again\ny\n")
        self.assertEqual(len(taken), 2)

    @defer.inlineCallbacks
    def test_a_log_that_changes_its_lines_after_handing_them_over(self) -> defer.Generator:
        # A step's log whose addRawLines hides a word after the log handed
        # its lines to its subscribers: the bridge takes the lines that
        # reached appendLog.
        taken = self.count_letters_taken_off()
        live = yield self.start_live_build()
        add_raw_lines = live.log.addRawLines
        live.log.addRawLines = lambda lines: add_raw_lines(lines.replace("secret", "******"))
        yield self.recorder.wait_until(lambda: ("logStarted", *KEY) in self.recorder.events)
        for text in ["a\nthe secret\nz\n", "b\nsecret again\ny\n", "c\nsecrets\nx\n"]:
            yield live.write(stdout=text)
        live.end()
        yield self.recorder.wait_for_builds(1)
        _, content = yield self.db_log("b1", 1, "live", "stdio")
        self.assertEqual(merged(self.recorder.chunks[KEY]), db_chunks("s", content))
        self.assertEqual(
            self.recorder.text_of(*KEY), "a\nthe ******\nz\nb\n****** again\ny\nc\n******s\nx\n"
        )
        self.assertEqual(len(taken), 3)

    @defer.inlineCallbacks
    def test_an_append_log_wrapped_before_without_its_result(self) -> defer.Generator:
        # Another plugin wrapped appendLog before LegacyStatus started, and
        # its wrapper does not give the stored lines' numbers back: the
        # bridge reads this master's lines from the database, as it does
        # another master's, and says so once.
        unnumbered = LoggedLines("not the numbers of the lines it stored")
        log.addObserver(unnumbered)
        self.addCleanup(log.removeObserver, unnumbered)

        def drop_result(append_log: Any) -> Any:
            def wrapped(logid: int, content: str) -> Any:
                return defer.maybeDeferred(append_log, logid, content).addCallback(lambda _: None)

            return wrapped

        writes = [f"line {i} of write {w}\n" * (w + 1) for w in range(4) for i in range(3)]
        content = yield self.run_live_log(writes, wrap=drop_result)
        self.assertEqual(
            content, "".join("o" + line for w in writes for line in w.splitlines(True))
        )
        (summary,) = self.reads.lines
        self.assertFalse(summary.startswith("LegacyStatus: 0 log reads"), summary)
        (said,) = unnumbered.lines
        self.assertIn("gave back None", said)

    @defer.inlineCallbacks
    def test_a_line_buildbot_cuts_is_read_from_the_database(self) -> defer.Generator:
        # Random printable text does not compress below Buildbot's chunk
        # limit (64 KiB), so Buildbot stores the line cut short.
        noise = "".join(random.Random(1).choices(string.printable[:94], k=100_000))
        writes = ["before\n", "a\n" + noise + "\nb\n", "after\n"]
        content = yield self.run_live_log(writes)
        stored = content.split("\n")[2]
        self.assertTrue(noise.startswith(stored[1:]))
        self.assertLess(len(stored), len(noise))
        (summary,) = self.reads.lines
        self.assertTrue(summary.startswith("LegacyStatus: 1 log reads"), summary)

    @defer.inlineCallbacks
    def test_a_mirror_past_its_limit_reads_from_the_database(self) -> defer.Generator:
        self.patch(_mirror, "HELD_LIMIT", 1000)
        # No read after the first until the log ends: the appends pile up.
        self.patch(_appends, "APPEND_INTERVAL", 3600)
        live = yield self.start_live_build()
        writes = [f"{w:03d} " + "x" * 395 + "\n" for w in range(10)]
        for text in writes:
            yield live.write(stdout=text)
        live.end()
        yield self.recorder.wait_for_builds(1)
        self.assertEqual(self.recorder.text_of(*KEY), "".join(writes))
        _, content = yield self.db_log("b1", 1, "live", "stdio")
        self.assertEqual(merged(self.recorder.chunks[KEY]), db_chunks("s", content))
        yield self.reconfig(services=[])
        (summary,) = self.reads.lines
        self.assertFalse(summary.startswith("LegacyStatus: 0 log reads"), summary)

    @defer.inlineCallbacks
    def test_reads_chunks_of_every_compression_method(self) -> defer.Generator:
        # Buildbot compresses each chunk by the method configured as it is
        # appended; gz chunks are inflated by ISA-L, the others by Buildbot.
        live = yield self.start_live_build()
        for method in ("gz", "bz2", "raw", "gz"):
            self.master.config.logCompressionMethod = method
            yield live.write(stdout="".join(f"{method} line {n} \u00e9\n" for n in range(300)))
        log_data, content = yield self.db_log("b1", 1, "live", "stdio")
        chunks = self.master.db.model.logchunks
        query = (
            sa.select(chunks.c.compressed)
            .where(chunks.c.logid == log_data["logid"])
            .order_by(chunks.c.first_line)
        )
        compressed = yield self.master.db.pool.do(lambda conn: conn.execute(query).scalars().all())
        reader = _logdb.LogReader(self.master)
        self.addCleanup(reader.close)
        lines = content.splitlines(True)
        whole = yield reader.read_lines(log_data["logid"], 0, len(lines) - 1)
        # Ranges that start and end within chunks of each method.
        firsts = range(len(lines) - 1050, len(lines) - 299, 150)
        parts = yield defer.gatherResults(
            [reader.read_lines(log_data["logid"], first, first + 299) for first in firsts]
        )
        live.end()
        yield self.recorder.wait_for_builds(1)
        self.assertEqual(compressed[-4:], [1, 2, 0, 1])  # gz, bz2, raw, gz
        self.assertEqual(whole, content)
        self.assertEqual(parts, ["".join(lines[first : first + 300]) for first in firsts])

    @defer.inlineCallbacks
    def test_the_look_as_a_watch_begins_is_tried_again(self) -> defer.Generator:
        # The appends from before a watch are heard by its first look
        # alone: a database out of reach (a server ending connections, an
        # SQLite file that cannot be opened) fails it, and it is tried again.
        yield self.start_master({"b1": [live_log_step(LiveLog())]}, legacy=False)
        unreachable = sa.create_engine(f"sqlite:///{os.path.abspath(self.mktemp())}/no/db")
        self.addCleanup(unreachable.dispose)
        asked = []

        class Reader:
            def num_lines(self, logid: int) -> defer.Deferred[int]:
                asked.append(logid)
                if len(asked) == 1:
                    return defer.maybeDeferred(unreachable.connect)
                return defer.succeed(7)

        heard = []
        appends = _appends.LogAppends(self.master)
        appends.start(lambda mirror, num_lines: heard.append((mirror.logid, num_lines)))
        appends.watch(SimpleNamespace(logid=5, type="t", reader=Reader()), local=True)
        yield poll(lambda: heard, "the look tried again")
        self.assertEqual((asked, heard), ([5, 5], [(5, 7)]))
        yield appends.stop()

    @defer.inlineCallbacks
    def test_a_look_ahead_reads_one_batch_of_new_lines(self) -> defer.Generator:
        # How the bridge looks at a busy log of another master: the new
        # lines come with the look, one batch at a time.
        live = yield self.start_live_build()
        writes = [f"write {w}\n" * (w + 1) for w in range(_logdb.BATCH_CHUNKS + 4)]
        for text in writes:  # one chunk each
            yield live.write(stdout=text)
        log_data, content = yield self.db_log("b1", 1, "live", "stdio")
        lines = content.splitlines(True)
        reader = _logdb.LogReader(self.master)
        self.addCleanup(reader.close)
        # From the start: the first batch of chunks, and more to come.
        text, more = yield reader.read_ahead(log_data["logid"], 0)
        self.assertEqual(text, "".join(lines[: text.count("\n")]))
        self.assertEqual(text.count("\n"), sum(range(1, _logdb.BATCH_CHUNKS + 1)))
        self.assertTrue(more)
        # From within the last chunk: the rest of the log, and no more.
        text, more = yield reader.read_ahead(log_data["logid"], len(lines) - 5)
        self.assertEqual((text, more), ("".join(lines[-5:]), False))
        # From its end: nothing yet.
        self.assertEqual((yield reader.read_ahead(log_data["logid"], len(lines))), ("", False))
        live.end()
        yield self.recorder.wait_for_builds(1)

    @defer.inlineCallbacks
    def test_receivers_hear_appends_after_their_append_log(self) -> defer.Generator:
        # A receiver's logChunk never runs in the callbacks of the
        # appendLog that stored its lines (Buildbot's next append of the
        # log waits for them), but in a turn of its own.  The window is
        # marked by wrappers around the bridge's: one that Buildbot's
        # result passes first, one that it passes last.
        in_callbacks = [False]
        heard_in_callbacks: list[str] = []

        def marking(inside: bool) -> Callable[[Any], Any]:
            def wrap(append_log: Any) -> Any:
                def marked(result: Any) -> Any:
                    in_callbacks[0] = inside
                    return result

                return lambda logid, content: defer.maybeDeferred(
                    append_log, logid, content
                ).addBoth(marked)

            return wrap

        def noting_log_chunks(bridged: Any) -> Any:
            log_chunk = self.recorder.logChunk

            def noting_log_chunk(*args: Any) -> Any:
                if in_callbacks[0]:
                    heard_in_callbacks.append(args[-1])
                return log_chunk(*args)

            self.recorder.logChunk = noting_log_chunk  # type: ignore[method-assign]
            return marking(False)(bridged)

        writes = [f"line {i} of write {w}\n" for w in range(8) for i in range(w + 1)]
        yield self.run_live_log(writes, wrap=marking(True), wrap_bridged=noting_log_chunks)
        self.assertEqual(self.recorder.text_of(*KEY), "".join(writes))
        self.assertEqual(heard_in_callbacks, [])


class PostgresLookAheadTests(PostgresTestCase, MasterTestCase):
    """
    The look at a busy log of another master (L{_appends.LogAppends.look_ahead}),
    on PostgreSQL, as the bridge reads there (issue 13): one statement finds
    and reads a batch of new lines, and the batches make the log whole.
    """

    @defer.inlineCallbacks
    def test_each_batch_of_new_lines_is_one_statement(self) -> defer.Generator:
        assert self.server is not None
        live = LiveLog()
        # No LegacyStatus: the only reads are the test's.
        yield self.start_master({"b1": [live_log_step(live)]}, legacy=False, db_url=self.server.url)
        yield self.force("b1")
        yield live.opened
        for w in range(2 * _logdb.BATCH_CHUNKS + 3):  # one chunk each
            yield live.write(stdout=f"write {w} \u00e9\n" * (w % 5 + 1))
        log_data, content = yield self.db_log("b1", 1, "live", "stdio")
        logid = log_data["logid"]
        chunks = yield self.master.db.pool.do(
            lambda conn: conn.exec_driver_sql(
                f"SELECT count(*) FROM logchunks WHERE logid = {int(logid)}"
            ).scalar()
        )
        reader = _logdb.LogReader(self.master)
        self.addCleanup(reader.close)
        yield reader.num_lines(logid)  # connected: the dialect's own first statements are done
        statements: list[str] = []
        pool_engine = self.master.db.pool.engine

        def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if conn.engine is not pool_engine:
                statements.append(statement)

        sa.event.listen(sa.engine.Engine, "before_cursor_execute", note)
        self.addCleanup(sa.event.remove, sa.engine.Engine, "before_cursor_execute", note)
        text, looks = "", 0
        while True:
            more_text, more = yield reader.read_ahead(logid, text.count("\n"))
            text += more_text
            looks += 1
            if not more:
                break
        self.assertEqual(text, content)
        # Full batches, then the one that says there is no more.
        self.assertEqual(looks, chunks // _logdb.BATCH_CHUNKS + 1)
        self.assertEqual(len(statements), looks)
        self.assertTrue(all("FROM logchunks" in s for s in statements), statements)
        live.end()
        yield poll(
            lambda: self.master.data.get(("builders", "b1", "builds", 1)).addCallback(
                lambda build: build["complete"]
            ),
            "the build to end",
        )
