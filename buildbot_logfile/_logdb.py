"""
Reading log lines from the master's database: the only module that touches
SQL.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from buildbot.util.twisted import async_to_deferred
from sqlalchemy.pool import NullPool
from twisted.internet import defer, threads
from twisted.python import log
from twisted.python.threadpool import ThreadPool

try:
    from isal.isal_zlib import decompress as _inflate
except ImportError:  # pragma: no cover - isal is a dependency
    from zlib import decompress as _inflate

# Buildbot's C{gz} chunks are zlib streams (its C{GZipCompressor} is
# C{zlib.compress}): ISA-L inflates them four times faster than zlib, in
# the database thread of a master that mirrors another's build.  Other
# methods go through Buildbot's own reader.
_FAST_READERS: dict[str, Callable[[bytes], bytes]] = {"gz": _inflate}

# Database chunks (each at most 64 KiB of lines) read per query: one batch
# holds the reactor for a few milliseconds, and queries stay few.
BATCH_CHUNKS = 16
# A line number past any log's last (logchunks' line numbers are integers).
LAST_LINE = 2**31 - 1
# The durations of this many of the latest reads are kept for ReadStats.
READ_DURATIONS_KEPT = 10000


def stored_as_appended(master: Any, first: int, last: int, text: str) -> bool:
    """
    Whether the database holds lines C{first..last} of a log exactly as
    the C{text} that Buildbot's C{appendLog} was given and stored under
    those numbers: one line for each newline, and none cut (see
    L{_none_cut}).
    """
    if not text.endswith("\n") or text.count("\n") != last - first + 1:
        return False
    return _none_cut(text, master.db.logs.MAX_CHUNK_SIZE // 4)


def stored_unprefixed(
    master: Any, first: int, last: int, text: str, stream: str, lines: str
) -> bool:
    """
    Whether C{lines}, which a stream log handed its subscribers as
    C{stream}'s before it gave C{appendLog} the C{text} stored as lines
    C{first..last}, are those lines without their stream letters.  The
    log hands over its lines and passes them on at once, so C{text} is
    C{lines} with C{stream} put before every line; the checks, a search
    in C per 16 KiB or so and the first and last lines compared, are
    against a mistake: the lengths agree with one letter a line, the first
    and last lines are the same, and none was cut.
    """
    count = last - first + 1
    if not lines.endswith("\n") or len(text) != len(lines) + count or text[:1] != stream:
        return False
    head = lines.find("\n") + 1
    tail = lines.rfind("\n", 0, len(lines) - 1) + 1
    if text[1 : head + 1] != lines[:head] or text[len(text) - len(lines) + tail :] != lines[tail:]:
        return False
    # A line of the text is one character longer than its line here.
    return _none_cut(lines, master.db.logs.MAX_CHUNK_SIZE // 4 - 1)


def _none_cut(text: str, span: int) -> bool:
    """
    Whether no line of C{text}, newline included, is longer than C{span}
    characters: checked against 4.3's C{LogsConnectorComponent.appendLog},
    which may cut a line of more than C{MAX_CHUNK_SIZE} bytes, newline
    included, and which cannot cut one of at most a quarter of that many
    characters (UTF-8 needs at most 4 bytes a character).  The check
    steps from the last newline of one span to the next, so it costs a
    few searches in C per chunk.
    """
    pos, size = 0, len(text)
    while pos < size:
        newline = text.rfind("\n", pos, pos + span)
        if newline < 0:
            return False
        pos = newline + 1
    return True


class ReadStats:
    """
    How many log reads the bridge ran and how long they took (in the
    database thread: the query, fetching its rows and decompressing them),
    so that an operator can see what the bridge costs the database: logged
    when the service stops, and readable meanwhile as
    C{LogReader.stats}.  Cheap enough to be always on: a few operations
    per read, under a lock only the reads take.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reads = 0
        self.seconds = 0.0  # all reads' durations added up
        self.first: float | None = None  # when the first read started (time.time())
        self.last: float | None = None  # when the latest one ended
        self._durations: deque[float] = deque(maxlen=READ_DURATIONS_KEPT)

    def add(self, started: float, duration: float) -> None:
        with self._lock:
            self.reads += 1
            self.seconds += duration
            if self.first is None:
                self.first = started
            self.last = started + duration
            self._durations.append(duration)

    def percentile(self, fraction: float) -> float:
        """A percentile of the latest reads' durations (0.0 before any)."""
        with self._lock:
            ordered = sorted(self._durations)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]

    def summary(self) -> str:
        """
        One line: the reads, from the first one's start to the last one's
        end, their rate over that span (none of one read alone), and their
        durations.
        """
        span = (self.last or 0.0) - (self.first or 0.0)
        rate = self.reads / span if span > 0 and self.reads > 1 else 0.0
        return (
            f"{self.reads} log reads in {span:.1f} s ({rate:.1f}/s),"
            f" {self.seconds:.2f} s reading; duration p50 {self.percentile(0.5) * 1000:.1f} ms"
            f" p99 {self.percentile(0.99) * 1000:.1f} ms"
            f" max {max(self._durations, default=0.0) * 1000:.1f} ms"
        )


class _DaemonThreadPool(ThreadPool):
    """A pool whose thread never keeps a master's process alive."""

    @staticmethod
    def threadFactory(*args: Any, **kwargs: Any) -> threading.Thread:  # type: ignore[override]
        return threading.Thread(*args, daemon=True, **kwargs)


class LogReader:
    """
    Runs the bridge's log reads.

    For an SQLite file the bridge reads through one connection of its own,
    kept open in a thread of its own: its reads neither wait for the
    master's writes nor delay them (SQLite in WAL mode, Buildbot's setting,
    lets one connection read while another writes).  Between reads it holds
    no transaction, so checkpoints are never held back, and it runs them
    itself (see L{_checkpoint}).

    On PostgreSQL it does the same with a connection in autocommit: each
    read is one statement on the server, not psycopg2's C{BEGIN}, the
    C{SELECT} and the pool's C{ROLLBACK}.  Through the master's pool, each
    read also took a connection out and gave it back, and putting it in
    autocommit and back again cost the database thread as much as the
    read itself (bench_cluster, on the master that mirrors another's
    build).

    Other databases (and in-memory SQLite, which one connection holds) use
    the master's pool.
    """

    def __init__(self, master: Any) -> None:
        self.master = master
        self._engine: Any = None
        self._conn: Any = None
        self._query: Any = None
        self._num_lines_query: Any = None
        self._threads: ThreadPool | None = None
        self._closed = False
        self.stats = ReadStats()
        engine = master.db.pool.engine
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._engine = sa.create_engine(engine.url, poolclass=NullPool)
        elif engine.dialect.name == "postgresql":
            self._engine = sa.create_engine(
                engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
            )
        if self._engine is not None:
            self._threads = _DaemonThreadPool(
                minthreads=1, maxthreads=1, name="LegacyStatusLogReader"
            )
            self._threads.start()

    def do(self, f: Callable[[Any], Any]) -> defer.Deferred[Any]:
        """Run C{f(connection)} in a database thread; its result."""
        if self._closed:
            return defer.fail(RuntimeError("the log reader is closed"))
        if self._threads is None:
            return self.master.db.pool.do(f)
        return threads.deferToThreadPool(
            self.master.reactor, self._threads, self._with_connection, f
        )

    def read_lines(self, logid: int, first: int, last: int) -> defer.Deferred[str]:
        """See L{_lines_reader}."""
        return self.do(self._text_reader(logid, first, last))

    def read_ahead(self, logid: int, first: int) -> defer.Deferred[tuple[str, bool]]:
        """
        A log's lines from C{first} on, as many as one batch holds, and
        whether the batch was full (more may follow): the look at a busy
        log of another master, which finds its new lines and reads them
        in one statement.
        """
        return self.do(self._lines_reader(logid, first, LAST_LINE))

    def num_lines(self, logid: int) -> defer.Deferred[int | None]:
        """
        A log's line count as the database has it now (None for a log that
        is not in it): the bridge's look at a log as it starts to watch
        its appends.  One statement, made once; Buildbot's data API took a
        few times more of the reactor for the same row.  Not counted in
        L{stats}, which counts reads of lines.
        """
        if self._num_lines_query is None:
            table = self.master.db.model.logs
            self._num_lines_query = sa.select(table.c.num_lines).where(
                table.c.id == sa.bindparam("logid")
            )
        query = self._num_lines_query

        def read(conn: Any) -> int | None:
            found: int | None = conn.execute(query, {"logid": logid}).scalar()
            return found

        return self.do(read)

    def read_lines_now(self, logid: int, first: int, last: int) -> str:
        """L{read_lines}, waited for here (see L{blocking})."""
        text: str = self.blocking(self._text_reader(logid, first, last))
        return text

    def blocking(self, f: Callable[[Any], Any], timeout: float = 30.0) -> Any:
        """
        Run C{f(connection)} in a database thread and wait for it here:
        for 0.8's status, which answered at once, and only for the few
        queries of one build or one batch of lines.  The database threads
        never wait for the reactor, so this cannot deadlock; it fails
        after C{timeout} seconds rather than hang.
        """
        if self._closed:
            raise RuntimeError("the log reader is closed")
        done = threading.Event()
        outcome: list[tuple[bool, Any]] = []

        def run() -> None:
            try:
                if self._threads is not None:
                    outcome.append((True, self._with_connection(f)))
                else:
                    with self.master.db.pool.engine.connect() as conn:
                        outcome.append((True, f(conn)))
            except BaseException as e:
                outcome.append((False, e))
            finally:
                done.set()

        # The master's own database threads, where it has no file of its
        # own to read (Buildbot's DBThreadPool keeps its pool there).
        pool = self._threads if self._threads is not None else self.master.db.pool._pool
        pool.callInThread(run)
        if not done.wait(timeout):
            raise TimeoutError(f"the database did not answer within {timeout} s")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def _text_reader(self, logid: int, first: int, last: int) -> Callable[[Any], str]:
        """L{_lines_reader}'s read, giving the text only."""
        read = self._lines_reader(logid, first, last)
        return lambda conn: read(conn)[0]

    def _lines_reader(self, logid: int, first: int, last: int) -> Callable[[Any], tuple[str, bool]]:
        """
        Lines C{first..last} of a log (or those of its first L{BATCH_CHUNKS}
        chunks), each ending in a newline, and whether all L{BATCH_CHUNKS}
        chunks were taken (more may follow): only lines that follow on from
        C{first} without a gap, since the caller counts what it gets as
        the lines after C{first} (a gap would shift every line after it).

        This reads chunks as Buildbot's C{LogsConnectorComponent} writes
        them (C{appendLog}) and reads them back (C{iter_log_lines} in 4.2
        and 4.3, C{getLogLines} in 4.1), checked in those versions' sources:
        a chunk holds lines C{first_line..last_line} joined by newlines,
        without the last one, compressed by the method its C{compressed}
        column names, decompressed here through Buildbot's own lookup
        (C{_get_compressor}, 4.1 and later; C{gz} by ISA-L).  Buildbot's
        C{getLogLines} hands each line to the reactor through a Deferred:
        for a 20 MB log that is seconds of reactor time taken from the
        build.  This reads and decompresses whole chunks in the database
        thread.
        """
        logs = self.master.db.logs
        query = self._chunks_query()
        values = {"logid": logid, "first": first, "last": last}

        def read(conn: Any) -> tuple[str, bool]:
            started = time.time()
            try:
                return read_rows(conn)
            finally:
                self.stats.add(started, time.time() - started)

        def read_rows(conn: Any) -> tuple[str, bool]:
            parts: list[str] = []
            following = first
            rows = conn.execute(query, values).all()
            for row in rows:
                if row.first_line > following:
                    return "".join(parts), False
                following = row.last_line + 1
                # Buildbot's own lookup: a codec that is not installed gives
                # its clear error.
                compressor = logs._get_compressor(row.compressed)
                read_chunk = _FAST_READERS.get(getattr(compressor, "name", ""), compressor.read)
                data = read_chunk(row.content)
                text = data.decode("utf-8", "replace")
                if first <= row.first_line and row.last_line <= last:
                    parts += (text, "\n")  # copied once, by the join
                    continue
                lines = text.split("\n")
                start = max(first, row.first_line) - row.first_line
                stop = min(last, row.last_line) - row.first_line + 1
                parts.append("\n".join(lines[start:stop]) + "\n")
            return "".join(parts), len(rows) == BATCH_CHUNKS

        return read

    def _chunks_query(self) -> Any:
        """
        The query of L{_lines_reader}, made once: making it anew took a
        tenth of the bridge's time on a master that mirrors another's
        build (SQLAlchemy's statement objects are costly to build, not
        to run again).
        """
        if self._query is None:
            table = self.master.db.model.logchunks
            self._query = (
                sa.select(
                    table.c.first_line, table.c.last_line, table.c.content, table.c.compressed
                )
                .where(
                    table.c.logid == sa.bindparam("logid"),
                    table.c.last_line >= sa.bindparam("first"),
                    table.c.first_line <= sa.bindparam("last"),
                )
                .order_by(table.c.first_line)
                .limit(BATCH_CHUNKS)
            )
        return self._query

    def _with_connection(self, f: Callable[[Any], Any]) -> Any:
        if self._conn is None:
            self._conn = self._engine.connect()
        try:
            result = f(self._conn)
        except sa.exc.DBAPIError:
            self._disconnect()  # the next read starts over with a new one
            raise
        finally:
            if self._conn is not None:
                self._conn.rollback()
        if self._engine.dialect.name == "sqlite":
            self._checkpoint()
        return result

    def _checkpoint(self) -> None:
        """
        Copy what the master committed from the WAL into the database.

        While this connection is open the master's connections no longer
        checkpoint as they close; left to SQLite's automatic checkpoint, the
        WAL would be copied back megabytes at a time inside one of the
        master's commits, stalling its log writes.  A passive checkpoint
        after each read does that work here, and never blocks a writer.
        """
        try:
            self._conn.exec_driver_sql("pragma wal_checkpoint(passive)").all()
            self._conn.rollback()
        except sa.exc.DBAPIError:
            log.err(None, "LegacyStatus: checkpoint after a log read failed")
            self._disconnect()

    def _disconnect(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    @async_to_deferred
    async def close(self) -> None:
        """Close the connection and stop the thread; reads fail from now on."""
        self._closed = True
        log.msg(f"LegacyStatus: {self.stats.summary()}")
        if self._threads is not None:
            pool, self._threads = self._threads, None
            await threads.deferToThreadPool(self.master.reactor, pool, self._disconnect)
            pool.stop()
            self._engine.dispose()
