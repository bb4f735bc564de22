"""The bridge's own connection to an SQLite file or a PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from twisted.internet import defer, reactor
from twisted.trial import unittest

from buildbot_logfile._logdb import LogReader, ReadStats
from tests.databases import PostgresTestCase


class LogReaderTests(unittest.TestCase):
    """The bridge's own connection to an SQLite file."""

    timeout = 20

    def setUp(self) -> None:
        self.engine = sa.create_engine("sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite")
        with self.engine.begin() as conn:
            conn.exec_driver_sql("pragma journal_mode = wal")
            conn.exec_driver_sql("create table t (x integer)")
        master = SimpleNamespace(
            db=SimpleNamespace(pool=SimpleNamespace(engine=self.engine)), reactor=reactor
        )
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

    @defer.inlineCallbacks
    def test_a_closed_reader_refuses_reads(self) -> defer.Generator:
        yield self.reader.close()
        # ...rather than falling back to the master's pool, which is
        # stopping too.
        yield self.assertFailure(self.reader.do(lambda conn: None), RuntimeError)


class PostgresLogReaderTests(PostgresTestCase):
    """The bridge's own connection to a real PostgreSQL server, started for these tests."""

    timeout = 60

    def setUp(self) -> None:
        super().setUp()
        assert self.server is not None
        engine = sa.create_engine(self.server.url)
        master = SimpleNamespace(
            db=SimpleNamespace(pool=SimpleNamespace(engine=engine)), reactor=reactor
        )
        self.reader = LogReader(master)
        self.addCleanup(engine.dispose)
        self.addCleanup(self.reader.close)

    def state_of(self, pid: int) -> str:
        """The server's state of the session C{pid}, seen from another connection."""
        assert self.server is not None
        with contextlib.closing(self.server.connect()) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
            (state,) = cursor.fetchone()
            return str(state)

    @defer.inlineCallbacks
    def test_one_connection_and_no_transaction_between_reads(self) -> defer.Generator:
        def pid(conn: Any) -> int:
            return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()

        def nows(conn: Any) -> list[Any]:
            return [conn.exec_driver_sql("SELECT now()").scalar() for _ in range(2)]

        first = yield self.reader.do(pid)
        self.assertEqual(self.state_of(first), "idle")  # not "idle in transaction"
        self.assertEqual((yield self.reader.do(pid)), first)
        # Each statement is a transaction of its own: within one, now() stands still.
        a, b = yield self.reader.do(nows)
        self.assertLess(a, b)
        # None of the master's connections was taken.
        self.assertEqual(self.reader.master.db.pool.engine.pool.checkedin(), 0)

    @defer.inlineCallbacks
    def test_a_lost_connection_fails_one_read_and_the_next_reconnects(self) -> defer.Generator:
        def pid(conn: Any) -> int:
            return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()

        first = yield self.reader.do(pid)
        assert self.server is not None
        with contextlib.closing(self.server.connect()) as conn:
            conn.cursor().execute("SELECT pg_terminate_backend(%s)", (first,))
        yield self.assertFailure(self.reader.do(pid), sa.exc.OperationalError)
        second = yield self.reader.do(pid)
        self.assertNotEqual(second, first)
        self.assertEqual(self.state_of(second), "idle")


def test_read_stats_count_rate_and_percentiles() -> None:
    stats = ReadStats()
    assert stats.percentile(0.99) == 0.0
    # 100 reads, one every 0.1 s, of 1..100 ms
    for i in range(100):
        stats.add(1000.0 + i * 0.1, (i + 1) / 1000)
    assert stats.reads == 100
    assert stats.first == 1000.0
    assert abs(stats.last - (1000.0 + 99 * 0.1 + 0.1)) < 1e-9
    assert stats.percentile(0.5) == 0.051
    assert stats.percentile(0.99) == 0.1
    assert stats.summary() == (
        "100 log reads in 10.0 s (10.0/s), 5.05 s reading;"
        " duration p50 51.0 ms p99 100.0 ms max 100.0 ms"
    )


def test_one_read_has_no_rate() -> None:
    stats = ReadStats()
    stats.add(1000.0, 0.003)
    assert stats.summary() == (
        "1 log reads in 0.0 s (0.0/s), 0.00 s reading; duration p50 3.0 ms p99 3.0 ms max 3.0 ms"
    )
