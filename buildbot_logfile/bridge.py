"""
L{LegacyStatus}: the 0.8 C{Status} object, fed by a Buildbot 4 master.

Events from the message queue are only hints.  What a receiver sees comes
from the database, through one path per log (L{LogMirror.catch_up}: read
the lines after the last one seen, group them into chunks, add them to the
L{LogFile}), so a late start, a rebuilt spool and a live append all produce
the same bytes.  Events of one build run one at a time, in arrival order,
which gives receivers 0.8's order: buildStarted, stepStarted, logStarted,
logChunk..., logFinished, stepFinished, buildFinished.
"""

from __future__ import annotations

import os
import re
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, Awaitable, Callable, Iterator

import sqlalchemy as sa
from buildbot import config
from buildbot.changes.changes import Change
from buildbot.process.properties import Properties
from buildbot.util import service
from buildbot.util.twisted import async_to_deferred
from twisted.application.service import IService
from sqlalchemy.pool import NullPool
from twisted.internet import defer, threads
from twisted.python import log
from twisted.python.threadpool import ThreadPool

from buildbot_logfile.logfile import HEADER, STDERR, STDOUT, HTMLLogFile, LogFile
from buildbot_logfile.status import (
    BuilderStatus,
    BuildStatus,
    BuildStepStatus,
    deliver,
    subscribe_returned,
)

STREAM_CHANNELS = {"o": STDOUT, "e": STDERR, "h": HEADER}

# A line of a stream log is its stream letter, its text and a newline; a
# run of lines of one stream becomes one chunk.  The last alternative takes
# anything else as stdout, so no byte from the database is dropped.
_STREAM_RUN = re.compile(r"(?:o[^\n]*\n)+|(?:e[^\n]*\n)+|(?:h[^\n]*\n)+|[^\n]*\n?")

# Database chunks (each at most 64 KiB of lines) read per query: one batch
# holds the reactor for a few milliseconds, and queries stay few.
BATCH_CHUNKS = 16

# The least time between two reads of one log's appends (see
# LegacyStatus._append_soon).
APPEND_INTERVAL = 0.02

# Finished logs (and the builds around them) kept in memory for lookups.
FINISHED_CACHE_SIZE = 64


def stream_chunks(text: str) -> Iterator[tuple[int, str]]:
    """C{(channel, text)} chunks of a stream log's raw lines."""
    for match in _STREAM_RUN.finditer(text):
        run = match.group()
        if not run:
            continue
        prefix = run[0]
        channel = STREAM_CHANNELS.get(prefix)
        if channel is None:
            yield STDOUT, run
        else:
            yield channel, run[1:].replace("\n" + prefix, "\n")


class LogReader:
    """
    Runs the bridge's log reads.

    For an SQLite file the bridge reads through one connection of its own,
    kept open in a thread of its own: its reads neither wait for the
    master's writes nor delay them (SQLite in WAL mode, Buildbot's setting,
    lets one connection read while another writes).  Between reads it holds
    no transaction, so checkpoints are never held back, and it runs them
    itself (see L{_checkpoint}).  Other databases (and in-memory SQLite,
    which one connection holds) use the master's pool.
    """

    def __init__(self, master: Any) -> None:
        self.master = master
        self._engine: Any = None
        self._conn: Any = None
        self._threads: ThreadPool | None = None
        engine = master.db.pool.engine
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._engine = sa.create_engine(engine.url, poolclass=NullPool)
            self._threads = ThreadPool(minthreads=1, maxthreads=1, name="LegacyStatusLogReader")
            self._threads.start()

    def do(self, f: Callable[[Any], Any]) -> defer.Deferred[Any]:
        if self._threads is None:
            return self.master.db.pool.do(f)
        return threads.deferToThreadPool(self.master.reactor, self._threads, self._with_connection, f)

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
        if self._threads is not None:
            await threads.deferToThreadPool(self.master.reactor, self._threads, self._disconnect)
            self._threads.stop()
            self._engine.dispose()
            self._threads = None


def read_log_lines(reader: LogReader, logid: int, first: int, last: int) -> defer.Deferred[str]:
    """
    Lines C{first..last} of a log (or the first L{BATCH_CHUNKS} chunks of
    them), each ending in a newline.

    Buildbot's C{getLogLines} hands each line to the reactor through a
    Deferred: for a 20 MB log that is seconds of reactor time taken from the
    build.  This reads and decompresses whole chunks in the database thread
    and splits them on C{\n}, as C{appendLog} stored them.
    """
    master = reader.master
    table = master.db.model.logchunks
    compressors = master.db.logs.COMPRESSION_BYID
    query = (
        sa.select(table.c.first_line, table.c.last_line, table.c.content, table.c.compressed)
        .where(table.c.logid == logid, table.c.last_line >= first, table.c.first_line <= last)
        .order_by(table.c.first_line)
        .limit(BATCH_CHUNKS)
    )

    def read(conn: Any) -> str:
        parts = []
        for row in conn.execute(query):
            # A chunk is its lines joined, without the last newline.
            text = compressors[row.compressed].read(row.content).decode("utf-8", "replace")
            if first <= row.first_line and row.last_line <= last:
                parts.append(text + "\n")
                continue
            lines = text.split("\n")
            start = max(first, row.first_line) - row.first_line
            stop = min(last, row.last_line) - row.first_line + 1
            parts.append("\n".join(lines[start:stop]) + "\n")
        return "".join(parts)

    return reader.do(read)


def _timestamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class LogMirror:
    """
    One modern log mirrored into a L{LogFile}.  Every change goes through
    L{catch_up} under L{lock}, so lines are never lost, repeated or
    reordered, whoever asks and whenever.
    """

    def __init__(
        self, reader: LogReader, step: BuildStepStatus, logid: int, name: str, logtype: str
    ) -> None:
        self.reader = reader
        self.step = step
        self.logid = logid
        self.name = name
        self.type = logtype
        self.filename = step.build.logfile_name_for(logid, step.name, name)
        self.lock = defer.DeferredLock()
        self.logfile: LogFile | None = None
        self.lines = 0
        # The most lines any event has announced: one read covers every
        # append that queued up meanwhile (SQLite serves one query at a time,
        # and each read delays the master's own writes).
        self.announced = 0
        self.last_read = float("-inf")

    def start(self) -> None:
        """Open a fresh spool file (HTML logs wait until they are complete)."""
        self.lines = 0
        self.logfile = None
        if self.type != "h":
            self.logfile = self._mirror_logfile(LogFile(self.step, self.name, self.filename))

    def ensure_started(self) -> None:
        """Open the spool file unless it is open (or the log is HTML)."""
        if self.logfile is None and self.type != "h":
            self.start()

    def open_existing(self) -> LogFile:
        self.logfile = LogFile.open_finished(self.step, self.name, self.filename)
        return self.logfile

    @staticmethod
    def _mirror_logfile(lf: LogFile) -> LogFile:
        # The worker already applied the master's logMaxSize: the spool
        # holds exactly what the database holds.
        lf.logMaxSize = lf.logMaxTailSize = None
        return lf

    async def catch_up(self, num_lines: int, complete: bool) -> bool:
        """
        Add lines C{[self.lines, num_lines)} from the database; finish the
        LogFile once C{complete}.  Call with L{lock} held.  Returns whether
        this call finished the log.
        """
        if self.type == "h":
            return await self._catch_up_html(num_lines, complete)
        self.ensure_started()
        lf = self.logfile
        assert lf is not None
        if lf.finished:
            return False
        num_lines = max(num_lines, self.announced)
        while self.lines < num_lines:
            text = await read_log_lines(self.reader, self.logid, self.lines, num_lines - 1)
            count = text.count("\n")
            if not count:
                log.msg(f"log {self.logid}: lines {self.lines}.. missing from the database")
                break
            if self.type == "s":
                for channel, chunk in stream_chunks(text):
                    lf.addEntry(channel, chunk)
            else:
                lf.addEntry(STDOUT, text)
            self.lines += count
        if complete:
            lf.finish()
            lf.compressLog().addErrback(log.err, f"while compressing {lf.getFilename()}")
            return True
        return False

    async def _catch_up_html(self, num_lines: int, complete: bool) -> bool:
        if not complete or self.logfile is not None:
            return False
        html = ""
        while html.count("\n") < num_lines:
            more = await read_log_lines(self.reader, self.logid, html.count("\n"), num_lines - 1)
            if not more:
                break
            html += more
        self.lines = num_lines
        self.logfile = HTMLLogFile(self.step, self.name, self.filename, html)
        return True


class _BuildState:
    """What the bridge tracks of one running build."""

    def __init__(self, buildid: int) -> None:
        self.buildid = buildid
        self.status: BuildStatus | None = None
        self.queue = defer.DeferredLock()
        self.steps: dict[int, BuildStepStatus] = {}
        self.mirrors: dict[int, LogMirror] = {}
        self.logs_finished: set[int] = set()


def _spool_is_complete(path: str, num_lines: int) -> bool:
    """
    Whether a plain spool file left by an earlier run holds a whole finished
    log: every database line ends in a newline, and so must the file's
    text.  (Compressed files are written only once a log is finished.)
    """
    newlines = 0
    last = b""
    with open(path, "rb") as f:
        while block := f.read(1024 * 1024):
            newlines += block.count(b"\n")
            last = block
    return newlines == num_lines and (num_lines == 0 or last.endswith(b","))


class LegacyStatus(service.BuildbotService):
    """
    0.8's C{Status} object as a Buildbot service.  Status receivers given in
    C{receivers} become its child services, so a 0.8 plugin's
    C{setServiceParent} / C{self.parent.subscribe(self)} works unchanged.
    """

    name = "LegacyStatus"

    def checkConfig(
        self,
        receivers: list[Any] | tuple[Any, ...] | None = None,
        logdir: str = "legacy_logs",
        http_port: str | int | None = None,
    ) -> None:
        if receivers is not None and not isinstance(receivers, (list, tuple)):
            config.error("LegacyStatus: receivers must be a list of status receivers")
        if not isinstance(logdir, str) or not logdir:
            config.error("LegacyStatus: logdir must be a non-empty directory name")
        if http_port is not None and not isinstance(http_port, (str, int)):
            config.error("LegacyStatus: http_port must be a strports string such as "
                         "'tcp:8011:interface=127.0.0.1'")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watchers: list[Any] = []
        self.receivers: list[Any] = []
        self.builders: dict[str, BuilderStatus] = {}
        self.spool_dir = ""
        self.http_port: str | None = None
        # the standalone pages' listening port, when http_port is set
        self.http_listener: Any = None
        self._consumers: list[Any] = []
        self._appends_due: dict[int, Any] = {}
        self._builds: dict[int, _BuildState] = {}
        self._step_builds: dict[int, int] = {}
        self._mirrors: dict[int, LogMirror] = {}
        self._finished_mirrors: _LRU = _LRU(FINISHED_CACHE_SIZE)
        self._detached_builds: _LRU = _LRU(FINISHED_CACHE_SIZE)

    @async_to_deferred
    async def reconfigService(  # type: ignore[override]
        self,
        receivers: list[Any] | tuple[Any, ...] | None = None,
        logdir: str = "legacy_logs",
        http_port: str | int | None = None,
    ) -> None:
        self.spool_dir = os.path.join(self.master.basedir, logdir)
        await self._set_receivers(list(receivers or []))
        if isinstance(http_port, int):
            http_port = f"tcp:{http_port}:interface=127.0.0.1"
        if http_port != self.http_port:
            await self._stop_http()
            self.http_port = http_port
            if http_port is not None:
                await self._start_http(http_port)

    async def _start_http(self, description: str) -> None:
        from twisted.internet import reactor
        from twisted.internet.endpoints import serverFromString
        from twisted.web.server import Site

        from buildbot_logfile.web import LegacyLogPages, authorize_anonymous

        pages = LegacyLogPages(lambda: self, authorize_anonymous(self.master))
        self.http_listener = await serverFromString(reactor, description).listen(Site(pages.resource()))

    async def _stop_http(self) -> None:
        if self.http_listener is not None:
            listener, self.http_listener = self.http_listener, None
            await listener.stopListening()

    async def _set_receivers(self, new: list[Any]) -> None:
        # Receivers that compare equal (0.8 plugins could use compare_attrs)
        # are kept; the others are stopped and replaced.
        kept = [r for r in self.receivers if r in new]
        for old in [r for r in self.receivers if r not in new]:
            self._forget_receiver(old)
            if IService.providedBy(old):
                await defer.maybeDeferred(old.disownServiceParent)
        added = [r for r in new if r not in kept]
        self.receivers = kept + added
        for receiver in added:
            if IService.providedBy(receiver):
                await defer.maybeDeferred(receiver.setServiceParent, self)
            else:
                self.subscribe(receiver)

    def _forget_receiver(self, receiver: Any) -> None:
        self.unsubscribe(receiver)
        for builder in self.builders.values():
            builder.unsubscribe(receiver)
        for state in self._builds.values():
            if state.status is None:
                continue
            state.status.unsubscribe(receiver)
            for step in state.status.steps:
                step.unsubscribe(receiver)
            for mirror in state.mirrors.values():
                if mirror.logfile is not None:
                    mirror.logfile.unsubscribe(receiver)

    @async_to_deferred
    async def startService(self) -> None:
        self.reader = LogReader(self.master)
        mq = self.master.mq
        self._consumers = [
            await mq.startConsuming(self._on_builder, ("builders", None, None)),
            await mq.startConsuming(self._on_build, ("builds", None, None)),
            await mq.startConsuming(self._on_step, ("steps", None, None)),
            await mq.startConsuming(self._on_log, ("logs", None, None)),
        ]
        await super().startService()
        await self._load_builders()

    @async_to_deferred
    async def stopService(self) -> None:
        for consumer in self._consumers:
            consumer.stopConsuming()
        self._consumers = []
        for call in self._appends_due.values():
            call.cancel()
        self._appends_due.clear()
        await self._stop_http()
        self.http_port = None
        await super().stopService()
        await self.reader.close()

    # 0.8 Status API

    def getStatus(self) -> LegacyStatus:
        """0.8 plugins asked their parent (the master) for the Status."""
        return self

    def subscribe(self, target: Any) -> None:
        self.watchers.append(target)
        for name in self.getBuilderNames():
            self._announce_builder(target, self.builders[name])

    def unsubscribe(self, target: Any) -> None:
        if target in self.watchers:
            self.watchers.remove(target)

    def getBuilderNames(self, categories: list[str] | None = None, tags: list[str] | None = None) -> list[str]:
        wanted = set(tags or categories or [])
        return sorted(
            name for name, b in self.builders.items() if not wanted or wanted & set(b.tags)
        )

    def getBuilder(self, name: str) -> BuilderStatus:
        return self.builders[name]

    def getBuildbotURL(self) -> str:
        return self.master.config.buildbotURL

    def getTitle(self) -> str:
        return self.master.config.title

    def getTitleURL(self) -> str:
        return self.master.config.titleURL

    def getURLForThing(self, thing: Any) -> str | None:
        """Where the modern web UI shows a builder, build, step or log."""
        base = self.getBuildbotURL() + "#/builders/"
        if isinstance(thing, BuilderStatus):
            return f"{base}{thing.builderid}"
        if isinstance(thing, BuildStatus):
            return f"{base}{thing.builder.builderid}/builds/{thing.number}"
        if isinstance(thing, BuildStepStatus):
            return f"{self.getURLForThing(thing.build)}/steps/{thing.number}"
        if isinstance(thing, LogFile):
            return f"{self.getURLForThing(thing.step)}/logs/{thing.name}"
        return None

    # builders

    async def _load_builders(self) -> None:
        builders = await self.master.data.get(("masters", self.master.masterid, "builders"))
        for b in builders:
            self._add_builder(b["name"], b["builderid"], b.get("tags") or [])

    def _on_builder(self, key: tuple[str, ...], msg: dict[str, Any]) -> None:
        if key[2] == "started":
            self._run_logged(self._builder_started(msg["builderid"], msg["name"]))
        elif key[2] == "stopped" and msg.get("masterid") == self.master.masterid:
            builder = self.builders.pop(msg["name"], None)
            if builder is not None:
                for w in list(self.watchers):
                    deliver(w, "builderRemoved", msg["name"])

    async def _builder_started(self, builderid: int, name: str) -> None:
        data = await self.master.data.get(("builders", builderid))
        self._add_builder(name, builderid, (data or {}).get("tags") or [])

    def _add_builder(self, name: str, builderid: int, tags: list[str]) -> BuilderStatus:
        builder = self.builders.get(name)
        if builder is None:
            builder = self.builders[name] = BuilderStatus(self, name, builderid, tags)
            for w in list(self.watchers):
                self._announce_builder(w, builder)
        return builder

    def _announce_builder(self, target: Any, builder: BuilderStatus) -> None:
        returned = deliver(target, "builderAdded", builder.name, builder)
        if returned:
            builder.subscribe(returned)

    async def _builder_named(self, name: str) -> BuilderStatus | None:
        builder = self.builders.get(name)
        if builder is None:
            data = await self.master.data.get(("builders", name))
            # The data API reads a name of digits as a builder id: only the
            # builder of that very name will do.
            if data is None or data["name"] != name:
                return None
            # A builder this master does not run (any more): known for
            # lookups, announced to no one.
            builder = BuilderStatus(self, name, data["builderid"], data.get("tags") or [])
        return builder

    async def _builder_by_id(self, builderid: int) -> BuilderStatus | None:
        for builder in self.builders.values():
            if builder.builderid == builderid:
                return builder
        data = await self.master.data.get(("builders", builderid))
        return None if data is None else self._add_builder(data["name"], builderid, data.get("tags") or [])

    # events

    def _run_logged(self, coro: Awaitable[Any]) -> defer.Deferred[Any]:
        return defer.ensureDeferred(coro).addErrback(log.err, "LegacyStatus: while handling an event")

    def _in_build(self, buildid: int, handler: Callable[..., Awaitable[Any]], *args: Any) -> None:
        state = self._builds.get(buildid)
        if state is not None:
            state.queue.run(lambda: self._run_logged(self._unless_dropped(state, handler, args)))

    async def _unless_dropped(self, state: _BuildState, handler: Callable[..., Awaitable[Any]], args: tuple) -> None:
        if state.status is not None:
            await handler(state, *args)

    def _on_build(self, key: tuple[str, ...], msg: dict[str, Any]) -> None:
        buildid = msg["buildid"]
        if key[2] == "new" and buildid not in self._builds:
            # The state exists at once, so the build's step and log events
            # queue up behind buildStarted while its details load.
            state = self._builds[buildid] = _BuildState(buildid)
            state.queue.run(lambda: self._run_logged(self._build_started(state, msg)))
        elif key[2] == "finished":
            self._in_build(buildid, self._build_finished, msg)

    def _on_step(self, key: tuple[str, ...], msg: dict[str, Any]) -> None:
        self._step_builds[msg["stepid"]] = msg["buildid"]
        self._in_build(msg["buildid"], self._step_event, key[2], msg)

    def _on_log(self, key: tuple[str, ...], msg: dict[str, Any]) -> None:
        mirror = self._mirrors.get(msg["logid"])
        if mirror is not None:
            mirror.announced = max(mirror.announced, msg["num_lines"])
        buildid = self._step_builds.get(msg["stepid"])
        if buildid not in self._builds:
            # A build that started before this service: its logs are
            # mirrored only once a lookup asked for them.
            if mirror is not None:
                self._run_logged(self._sync_mirror(mirror, msg["num_lines"], msg["complete"]))
        elif key[2] == "append" and mirror is not None:
            self._append_soon(buildid, mirror, msg)
        else:
            self._in_build(buildid, self._log_event, msg)

    def _append_soon(self, buildid: int, mirror: LogMirror, msg: dict[str, Any]) -> None:
        """
        Read appended lines now, or, if this log was read less than
        L{APPEND_INTERVAL} ago, once that interval is over, taking every
        append that came meanwhile.  Each read waits behind the master's own
        writes on SQLite's one database thread: a burst of appends read one
        by one slows the build down, while a quiet log is read at once.
        """
        if mirror.logid in self._appends_due:
            return
        now = self.master.reactor.seconds()

        def read() -> None:
            self._appends_due.pop(mirror.logid, None)
            mirror.last_read = self.master.reactor.seconds()
            self._in_build(buildid, self._log_event, msg)

        wait = mirror.last_read + APPEND_INTERVAL - now
        if wait <= 0:
            read()
        else:
            self._appends_due[mirror.logid] = self.master.reactor.callLater(wait, read)

    async def _build_started(self, state: _BuildState, msg: dict[str, Any]) -> None:
        builder = await self._builder_by_id(msg["builderid"])
        if builder is None:
            del self._builds[state.buildid]
            return
        status = BuildStatus(builder, msg["number"], msg["buildid"])
        await self._fill_build(status, msg)
        state.status = status
        status.builder.currentBuilds[status.number] = status
        for w in list(status.builder.watchers):
            returned = deliver(w, "buildStarted", status.builder.name, status)
            subscribe_returned(returned, status.subscribe, status.unsubscribe, status.waitUntilFinished())

    async def _fill_build(self, status: BuildStatus, msg: dict[str, Any]) -> None:
        data = self.master.data
        buildid = msg["buildid"]
        status.started = _timestamp(msg.get("started_at"))
        status.finished = _timestamp(msg.get("complete_at"))
        status.results = msg.get("results")
        status.text = [msg["state_string"]] if msg.get("state_string") else []
        props = Properties()
        for name, (value, source) in (await data.get(("builds", buildid, "properties")) or {}).items():
            props.setProperty(name, value, source)
        status.properties = props
        if msg.get("workerid") is not None:
            worker = await data.get(("workers", msg["workerid"]))
            status.workername = worker["name"] if worker else None
        request = await data.get(("buildrequests", msg["buildrequestid"]))
        if request is not None:
            buildset = await data.get(("buildsets", request["buildsetid"]))
            status.reason = (buildset or {}).get("reason") or ""
        status.changes = [
            Change(
                who=c["author"], files=c["files"], comments=c["comments"],
                committer=c.get("committer"), revision=c["revision"],
                when=c["when_timestamp"], branch=c["branch"], category=c["category"],
                revlink=c["revlink"], repository=c["repository"], codebase=c["codebase"],
                project=c["project"],
            )
            for c in await data.get(("builds", buildid, "changes")) or []
        ]

    async def _step_event(self, state: _BuildState, event: str, msg: dict[str, Any]) -> None:
        step = self._step(state, msg)
        if event == "started" or (event == "finished" and not step.isStarted()):
            self._start_step(state, step, msg)
        if event == "finished" and not step.isFinished():
            await self._finish_step(state, step, msg)

    def _step(self, state: _BuildState, msg: dict[str, Any]) -> BuildStepStatus:
        step = state.steps.get(msg["stepid"])
        if step is None:
            step = state.steps[msg["stepid"]] = BuildStepStatus(
                state.status, msg["name"], msg["number"], msg["stepid"]
            )
            state.status.steps.append(step)
            state.status.steps.sort(key=lambda s: s.number)
        return step

    def _start_step(self, state: _BuildState, step: BuildStepStatus, msg: dict[str, Any]) -> None:
        if step.isStarted():
            return
        step.started = _timestamp(msg.get("started_at")) or time.time()
        build = state.status
        for w in list(build.watchers):
            returned = deliver(w, "stepStarted", build, step)
            subscribe_returned(returned, step.subscribe, step.unsubscribe, step.waitUntilFinished())

    async def _finish_step(self, state: _BuildState, step: BuildStepStatus, msg: dict[str, Any]) -> None:
        # 0.8 finished every log of a step before the step itself.
        for log_data in await self.master.data.get(("steps", step.stepid, "logs")) or []:
            if log_data["complete"]:
                await self._log_event(state, log_data)
        step.results = msg.get("results")
        step.text = [msg["state_string"]] if msg.get("state_string") else []
        step.finished = _timestamp(msg.get("complete_at"))
        step._mark_finished()
        build = state.status
        for w in list(build.watchers):
            deliver(w, "stepFinished", build, step, step.getResults())

    async def _log_event(self, state: _BuildState, msg: dict[str, Any]) -> None:
        logid = msg["logid"]
        step = state.steps.get(msg["stepid"])
        if step is None:
            step_data = await self.master.data.get(("steps", msg["stepid"]))
            step = self._step(state, step_data)
            self._start_step(state, step, step_data)
        mirror = state.mirrors.get(logid)
        if mirror is None:
            mirror = self._mirrors.get(logid) or self._finished_mirrors.get(logid)
            if mirror is None:
                mirror = self._mirrors[logid] = LogMirror(
                    self.reader, step, logid, msg["name"], msg["type"]
                )
            state.mirrors[logid] = mirror
            # logStarted before any text, so a receiver's catch-up starts
            # from the first line.
            await mirror.lock.run(mirror.ensure_started)
            if mirror.logfile is not None:
                self._log_started(step, mirror.logfile)
        await self._sync_mirror(mirror, msg["num_lines"], msg["complete"])
        lf = mirror.logfile
        if lf is not None and lf.finished and logid not in state.logs_finished:
            state.logs_finished.add(logid)
            if lf not in step.logs:  # an HTML log, whole at once
                self._log_started(step, lf)
            for w in list(step.watchers):
                deliver(w, "logFinished", step.build, step, lf)

    def _log_started(self, step: BuildStepStatus, lf: LogFile) -> None:
        step.logs.append(lf)
        for w in list(step.watchers):
            returned = deliver(w, "logStarted", step.build, step, lf)
            if returned:
                lf.subscribe(returned, True)
                lf.waitUntilFinished().addCallback(lambda lf, r=returned: lf.unsubscribe(r))

    async def _sync_mirror(self, mirror: LogMirror, num_lines: int, complete: bool) -> bool:
        finished = await mirror.lock.run(
            lambda: defer.ensureDeferred(mirror.catch_up(num_lines, complete))
        )
        if finished:
            self._mirrors.pop(mirror.logid, None)
            self._finished_mirrors.put(mirror.logid, mirror)
        return finished

    async def _build_finished(self, state: _BuildState, msg: dict[str, Any]) -> None:
        status = state.status
        for step in status.steps:
            if not step.isFinished():
                step_data = await self.master.data.get(("steps", step.stepid))
                await self._step_event(state, "finished", step_data)
        await self._fill_build(status, msg)
        status.builder.currentBuilds.pop(status.number, None)
        status._mark_finished()
        for w in list(status.builder.watchers):
            deliver(w, "buildFinished", status.builder.name, status, status.results)
        del self._builds[status.buildid]
        for stepid in state.steps:
            self._step_builds.pop(stepid, None)
        self._detached_builds.put(status.buildid, status)

    # lookups

    @async_to_deferred
    async def getLogFile(
        self, builderName: str, number: int, stepName: str, logName: str
    ) -> LogFile | None:
        """
        The LogFile of any log in the database, live or finished, or None.
        A missing or partial spool file is rebuilt from the database; a log
        still running goes on live.  Concurrent lookups share one rebuild.
        """
        found = await self.locate_log(builderName, number, stepName, logName)
        return None if found is None else await self.open_log(*found)

    async def open_log(self, step: BuildStepStatus, log_data: dict[str, Any]) -> LogFile | None:
        """The LogFile of a log that L{locate_log} found."""
        logid = log_data["logid"]
        mirror = self._mirrors.get(logid) or self._finished_mirrors.get(logid)
        if mirror is None:
            mirror = LogMirror(self.reader, step, logid, log_data["name"], log_data["type"])
            self._mirrors[logid] = mirror
        # The mirror is registered before it loads, so appends from here on
        # reach it as events; the load reads what the database had already.
        await mirror.lock.run(lambda: defer.ensureDeferred(self._load_mirror(mirror)))
        if mirror.logfile is not None and mirror.logfile.finished and mirror.logid in self._mirrors:
            self._mirrors.pop(mirror.logid)
            self._finished_mirrors.put(mirror.logid, mirror)
        return mirror.logfile

    async def _load_mirror(self, mirror: LogMirror) -> None:
        lf = mirror.logfile
        if lf is not None and (not lf.finished or lf.hasContents()):
            return
        progress = await self.master.data.get(("logs", mirror.logid))
        num_lines, complete = progress["num_lines"], progress["complete"]
        if complete and mirror.type != "h":
            path = os.path.join(mirror.step.build.builder.basedir, mirror.filename)
            compressed = any(os.path.exists(path + s) for s in (".bz2", ".gz"))
            if compressed or (
                os.path.exists(path)
                and await threads.deferToThread(_spool_is_complete, path, num_lines)
            ):
                mirror.open_existing()
                mirror.lines = num_lines
                return
        mirror.start()
        await mirror.catch_up(num_lines, complete)

    async def locate_build(self, builderName: str, number: int) -> BuildStatus | None:
        """A build by builder name and number, running or finished, or None."""
        if not 0 <= number < 2**63:  # beyond what any database column holds
            return None
        builder = await self._builder_named(builderName)
        if builder is None:
            return None
        build = builder.currentBuilds.get(number)
        if build is None:
            build = await self._load_build(builder, number)
        return build

    async def step_logs(self, step: BuildStepStatus) -> list[dict[str, Any]]:
        """The data API's description of a step's logs, in order."""
        return list(await self.master.data.get(("steps", step.stepid, "logs")) or [])

    async def locate_log(
        self, builderName: str, number: int, stepName: str, logName: str
    ) -> tuple[BuildStepStatus, dict[str, Any]] | None:
        """A log by the names 0.8's URLs use (a log's slug works too), or None."""
        build = await self.locate_build(builderName, number)
        step = build.getStep(stepName) if build is not None else None
        if step is None:
            return None
        logs = await self.step_logs(step)
        for key in ("name", "slug"):
            for log_data in logs:
                if log_data[key] == logName:
                    return step, log_data
        return None

    async def _load_build(self, builder: BuilderStatus, number: int) -> BuildStatus | None:
        """
        A build this service did not follow, from the database, with every
        log's spool file name assigned in 0.8's order.
        """
        data = self.master.data
        build_data = await data.get(("builders", builder.builderid, "builds", number))
        if build_data is None:
            return None
        cached = self._detached_builds.get(build_data["buildid"])
        if cached is not None:
            return cached
        status = BuildStatus(builder, number, build_data["buildid"])
        await self._fill_build(status, build_data)
        status._finished = bool(build_data["complete"])
        for step_data in await data.get(("builds", status.buildid, "steps")) or []:
            step = BuildStepStatus(status, step_data["name"], step_data["number"], step_data["stepid"])
            step.results = step_data["results"]
            step.text = [step_data["state_string"]] if step_data["state_string"] else []
            step.started = _timestamp(step_data["started_at"])
            step.finished = _timestamp(step_data["complete_at"])
            step._finished = bool(step_data["complete"])
            status.steps.append(step)
            for log_data in await data.get(("steps", step.stepid, "logs")) or []:
                status.logfile_name_for(log_data["logid"], step.name, log_data["name"])
        if build_data["complete"]:
            self._detached_builds.put(status.buildid, status)
        return status
