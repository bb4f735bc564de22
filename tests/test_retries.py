"""Reads tried again while the database is out of reach."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
import sqlalchemy as sa
from twisted.internet import defer, task
from twisted.trial import unittest

from buildbot_logfile import _retries
from buildbot_logfile._retries import DatabaseRetries, database_out_of_reach
from tests.databases import PostgresTestCase
from tests.processes import free_ports


def error_of(f: Any, *args: Any) -> BaseException:
    with pytest.raises(sa.exc.DBAPIError) as caught:
        f(*args)
    return caught.value


class OutOfReachOnPostgresTests(PostgresTestCase):
    """What a PostgreSQL server and psycopg2 raise, as SQLAlchemy wraps it."""

    def test_a_connection_the_server_ended_is_out_of_reach(self) -> None:
        engine = sa.create_engine(self.fresh_database())
        self.addCleanup(engine.dispose)
        assert self.server is not None
        with engine.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with contextlib.closing(self.server.connect()) as other:
                other.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
            self.assertTrue(database_out_of_reach(error_of(conn.exec_driver_sql, "SELECT 1")))

    def test_a_server_that_refuses_connections_is_out_of_reach(self) -> None:
        (port,) = free_ports(1)
        engine = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/x")
        self.addCleanup(engine.dispose)
        self.assertTrue(database_out_of_reach(error_of(engine.connect)))

    def test_a_wrong_statement_is_not(self) -> None:
        engine = sa.create_engine(self.fresh_database())
        self.addCleanup(engine.dispose)
        with engine.connect() as conn:
            self.assertFalse(database_out_of_reach(error_of(conn.exec_driver_sql, "SELEC 1")))
            self.assertFalse(
                database_out_of_reach(error_of(conn.exec_driver_sql, "SELECT * FROM nothing"))
            )


class OutOfReachOnSQLiteTests(unittest.TestCase):
    def test_a_file_that_cannot_be_opened_is_out_of_reach(self) -> None:
        path = os.path.join(os.path.abspath(self.mktemp()), "missing", "state.sqlite")
        engine = sa.create_engine("sqlite:///" + path)
        self.addCleanup(engine.dispose)
        self.assertTrue(database_out_of_reach(error_of(engine.connect)))

    def test_a_wrong_statement_is_not(self) -> None:
        # SQLite raises its syntax errors as OperationalError too.
        engine = sa.create_engine("sqlite://")
        self.addCleanup(engine.dispose)
        with engine.connect() as conn:
            error = error_of(conn.exec_driver_sql, "SELEC 1")
        self.assertIsInstance(error, sa.exc.OperationalError)
        self.assertFalse(database_out_of_reach(error))

    def test_other_errors_are_not(self) -> None:
        self.assertFalse(database_out_of_reach(ValueError("no")))


class DatabaseRetriesTests(unittest.TestCase):
    """The waits, on a clock the test turns."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.retries = DatabaseRetries(self.clock)
        path = os.path.join(os.path.abspath(self.mktemp()), "missing", "state.sqlite")
        self.unreachable = sa.create_engine("sqlite:///" + path)
        self.addCleanup(self.unreachable.dispose)
        self.attempts = 0

    def failing(self, times: int) -> Any:
        """An attempt that fails C{times} times, as an unreachable database does, then succeeds."""

        tries = 0

        async def attempt() -> Any:
            nonlocal tries
            tries += 1
            self.attempts += 1
            if tries <= times:
                self.unreachable.connect()
            return "read"

        return attempt

    def retried(self, attempt: Any) -> defer.Deferred[Any]:
        return defer.ensureDeferred(self.retries.run(attempt, "a test's rows"))

    def test_tried_again_after_waits_that_double(self) -> None:
        d = self.retried(self.failing(3))
        for wait in (0.5, 1.0, 2.0):
            self.assertNoResult(d)
            self.clock.advance(wait - 0.01)
            self.assertNoResult(d)
            self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(d), "read")
        self.assertEqual(self.attempts, 4)

    def test_waits_grow_to_the_longest_and_stop_at_the_limit(self) -> None:
        d = self.retried(self.failing(10_000))
        waits = []
        while not d.called:
            waits.append(self.clock.getDelayedCalls()[0].getTime() - self.clock.seconds())
            self.clock.advance(waits[-1])
        self.failureResultOf(d, sa.exc.OperationalError)
        self.assertEqual(waits[:7], [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, _retries.MAX_WAIT])
        self.assertEqual(set(waits[6:]), {_retries.MAX_WAIT})
        self.assertGreaterEqual(sum(waits), _retries.LIMIT)
        self.assertLess(sum(waits) - waits[-1], _retries.LIMIT)
        self.assertEqual(self.attempts, len(waits) + 1)

    def test_other_failures_are_not_tried_again(self) -> None:
        async def attempt() -> None:
            self.attempts += 1
            raise ValueError("a bug")

        self.failureResultOf(self.retried(attempt), ValueError)
        self.assertEqual(self.attempts, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_ends_the_waits_with_one_more_try(self) -> None:
        waiting = self.retried(self.failing(10_000))
        recovering = self.retried(self.failing(1))
        self.assertNoResult(waiting)
        self.retries.stop()
        self.failureResultOf(waiting, sa.exc.OperationalError)
        self.assertEqual(self.successResultOf(recovering), "read")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # After stop, a failure is let through at once.
        self.failureResultOf(self.retried(self.failing(10_000)), sa.exc.OperationalError)
