"""A real Buildbot master with a real worker, for the bridge and web tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from buildbot.process.buildstep import BuildStep
from buildbot.process.results import SUCCESS
from buildbot.test.util.integration import RunMasterBase
from twisted.internet import defer, reactor, task

import buildbot_logfile  # noqa: F401  (0.8 import paths)
from buildbot_logfile.base import StatusReceiverMultiService
from buildbot_logfile.bridge import LegacyStatus
from buildbot_logfile.logfile import HEADER, STDERR, STDOUT
from tests.support import master_config, merged, python_step  # noqa: F401  (re-exported)

CHANNEL_OF_PREFIX = {"o": STDOUT, "e": STDERR, "h": HEADER}


class Waiters:
    """Deferreds that fire once their check holds, asked after each event (L{check})."""

    def __init__(self) -> None:
        self._waiters: list[tuple[Callable[[], bool], defer.Deferred[None]]] = []

    def wait_until(self, check: Callable[[], bool]) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if check():
            d.callback(None)
        else:
            self._waiters.append((check, d))
        return d

    def check(self) -> None:
        for waiter in list(self._waiters):
            # A waiter's callback may cause an event, whose check fires
            # others of this list first.
            if waiter in self._waiters and waiter[0]():
                self._waiters.remove(waiter)
                waiter[1].callback(None)


class Recorder(StatusReceiverMultiService):
    """A 0.8-style receiver that records every event it is given, in order."""

    compare_attrs = ("label",)

    def __init__(self, name: str = "recorder") -> None:
        super().__init__()
        self.label = name
        self.events: list[tuple[Any, ...]] = []
        self.chunks: dict[tuple[int, str, str], list[tuple[int, str]]] = {}
        self.finished_builds = 0
        self._waiting = Waiters()

    def __repr__(self) -> str:
        return f"<Recorder {self.label}>"

    def setServiceParent(self, parent: Any) -> Any:
        d = super().setServiceParent(parent)
        self.status = parent.getStatus()
        self.status.subscribe(self)
        return d

    def _record(self, *event: Any) -> None:
        if event:
            self.events.append(event)
        self._waiting.check()

    def wait_until(self, check: Callable[[], bool]) -> defer.Deferred[None]:
        """Fires once C{check()} holds after an event (or now)."""
        return self._waiting.wait_until(check)

    def wait_for_builds(self, count: int) -> defer.Deferred[None]:
        return self.wait_until(lambda: self.finished_builds >= count)

    def text_of(self, number: int, step: str, log: str) -> str:
        return "".join(text for _, text in self.chunks.get((number, step, log), []))

    def builderAdded(self, name: str, builder: Any) -> Any:
        self._record("builderAdded", name)
        return self

    def builderRemoved(self, name: str) -> None:
        self._record("builderRemoved", name)

    def buildStarted(self, builderName: str, build: Any) -> Any:
        self._record("buildStarted", builderName, build.getNumber())
        return self

    def stepStarted(self, build: Any, step: Any) -> Any:
        self._record("stepStarted", build.getNumber(), step.getName())
        return self

    def logStarted(self, build: Any, step: Any, log: Any) -> Any:
        self._record("logStarted", build.getNumber(), step.getName(), log.getName())
        return self

    def logChunk(self, build: Any, step: Any, log: Any, channel: int, text: str) -> None:
        key = (build.getNumber(), step.getName(), log.getName())
        self.chunks.setdefault(key, []).append((channel, text))
        if self.events and self.events[-1] == ("logChunk", *key):
            self._record()  # one event per run of chunks; wakes the waiters
        else:
            self._record("logChunk", *key)

    def logFinished(self, build: Any, step: Any, log: Any) -> None:
        self._record("logFinished", build.getNumber(), step.getName(), log.getName())

    def stepFinished(self, build: Any, step: Any, results: Any) -> None:
        self._record("stepFinished", build.getNumber(), step.getName(), results[0])

    def buildFinished(self, builderName: str, build: Any, results: Any) -> None:
        self.finished_builds += 1
        self._record("buildFinished", builderName, build.getNumber(), results)


class LiveLog:
    """
    The test's end of a step's log: the step (see L{live_log_step}) opens
    its stdio log and waits; the test writes to it and ends the step.
    """

    def __init__(self) -> None:
        self.opened: defer.Deferred[None] = defer.Deferred()
        self._end: defer.Deferred[None] = defer.Deferred()
        self.log: Any = None

    def write(self, stdout: str = "", stderr: str = "") -> defer.Deferred[Any]:
        """Add whole lines to the log, through the master's appendLog."""
        writes = []
        if stdout:
            writes.append(self.log.addStdout(stdout))
        if stderr:
            writes.append(self.log.addStderr(stderr))
        return defer.gatherResults(writes)

    def end(self) -> None:
        """Let the step finish its log and succeed."""
        self._end.callback(None)

    def again(self) -> None:
        """Ready for the step's next run, once this one ended."""
        self.opened = defer.Deferred()
        self._end = defer.Deferred()
        self.log = None


def live_log_step(control: LiveLog, name: str = "live", **kwargs: Any) -> BuildStep:
    """A step whose stdio log C{control} writes (C{kwargs}: the BuildStep's)."""

    class Live(BuildStep):
        @defer.inlineCallbacks
        def run(self) -> Any:
            control.log = yield self.addLog("stdio")
            control.opened.callback(None)
            yield control._end
            yield control.log.finish()
            return SUCCESS

    return Live(name=name, **kwargs)


def named_logs_step(logs: dict[str, tuple[str, str]], name: str = "slash logs") -> BuildStep:
    """
    A step that adds a log of each name, as C{self.addLog(name)} does (0.8
    allowed any name, "/" too, and so does Buildbot 4), with its
    (stdout, stderr) text.
    """

    class NamedLogs(BuildStep):
        @defer.inlineCallbacks
        def run(self) -> Any:
            for log_name, (stdout, stderr) in logs.items():
                log = yield self.addLog(log_name)
                if stdout:
                    yield log.addStdout(stdout)
                if stderr:
                    yield log.addStderr(stderr)
                yield log.finish()
            return SUCCESS

    return NamedLogs(name=name)


def html_log_step(log_name: str, html: str) -> BuildStep:
    """A step named "report" that adds one HTML log, as Buildbot's addHTMLLog makes them."""

    class Report(BuildStep):
        name = "report"

        @defer.inlineCallbacks
        def run(self) -> Any:
            yield self.addHTMLLog(log_name, html)
            return SUCCESS

    return Report()


def db_chunks(logtype: str, content: str) -> list[tuple[int, str]]:
    """What the database holds for a log, as merged (channel, text) chunks."""
    if logtype != "s":
        return merged([(STDOUT, content)])
    return merged([(CHANNEL_OF_PREFIX[line[0]], line[1:]) for line in content.splitlines(True)])


def db_text(content: str) -> str:
    """A stream log's stdout and stderr text, as the database holds it."""
    return "".join(t for c, t in db_chunks("s", content) if c in (STDOUT, STDERR))


@defer.inlineCallbacks
def poll(check: Callable[[], Any], what: str, tries: int = 300, interval: float = 0.05) -> Any:
    """
    Ask C{check()} (which may return a Deferred) until it gives something
    true, and return that; fail when it runs out.
    """
    for _ in range(tries):
        result = yield defer.maybeDeferred(check)
        if result:
            return result
        yield task.deferLater(reactor, interval, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")


class MasterTestCase(RunMasterBase):
    timeout = 60

    @defer.inlineCallbacks
    def start_master(
        self,
        steps_of: dict[str, list[Any]],
        receivers: list[Any] | None = None,
        *,
        legacy: bool = True,
        http: bool = False,
        db_file: bool = False,
        **kwargs: Any,
    ) -> Any:
        """
        A master with a forceable builder per entry of C{steps_of}, and a
        L{LegacyStatus} with C{receivers} (a fresh L{Recorder},
        C{self.recorder}, if none are given).  C{http}: the standalone
        pages on a free port, at C{self.pages}.  C{db_file}: an SQLite file
        rather than memory.  Other arguments go to the master's config
        (C{www}...) or, if LegacyStatus takes them, to it (C{logdir}).
        """
        self.recorder = Recorder()
        services = []
        if legacy:
            options = {k: kwargs.pop(k) for k in ("logdir",) if k in kwargs}
            if http:
                options["http_port"] = "tcp:0:interface=127.0.0.1"
            services.append(LegacyStatus(
                receivers=[self.recorder] if receivers is None else receivers, **options
            ))  # fmt: skip
        if db_file:
            kwargs["db_url"] = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        yield self.setup_master(master_config(steps_of, services, **kwargs))
        if http:
            self.pages = f"http://127.0.0.1:{self.legacy_status().http_listener.getHost().port}"

    @defer.inlineCallbacks
    def start_live_build(self) -> Any:
        """
        A master (see L{start_master}) whose builder C{b1} is running build
        1, its one step waiting with its stdio log open: the L{LiveLog}
        that writes it.
        """
        live = LiveLog()
        yield self.start_master({"b1": [live_log_step(live)]})
        yield self.force("b1")
        yield live.opened
        return live

    @defer.inlineCallbacks
    def db_log(self, builder: str, number: int, step: str, log: str) -> Any:
        """
        The log's data-API description, and its lines as the database holds
        them (each with its stream letter, for a stream log).  Read from the
        logchunks table itself: Buildbot 4.3's C{/logs/N/contents} repeats
        lines of logs of more than a hundred chunks.
        """
        build = yield self.master.data.get(("builders", builder, "builds", number))
        steps = yield self.master.data.get(("builds", build["buildid"], "steps"))
        (step_data,) = [entry for entry in steps if entry["name"] == step]
        logs = yield self.master.data.get(("steps", step_data["stepid"], "logs"))
        (log_data,) = [entry for entry in logs if entry["name"] == log]
        table = self.master.db.model.logchunks
        query = (
            sa.select(table.c.first_line, table.c.last_line, table.c.content, table.c.compressed)
            .where(table.c.logid == log_data["logid"])
            .order_by(table.c.first_line)
        )
        rows = yield self.master.db.pool.do(lambda conn: conn.execute(query).all())
        lines = 0
        parts = []
        for row in rows:
            assert row.first_line == lines, f"chunk at line {row.first_line}, not {lines}"
            data = self.master.db.logs._get_compressor(row.compressed).read(row.content)
            parts.append(data.decode("utf-8") + "\n")
            lines = row.last_line + 1
        assert lines == log_data["num_lines"]
        return log_data, "".join(parts)

    @defer.inlineCallbacks
    def force(self, builder: str) -> Any:
        builderid = yield self.master.data.updates.findBuilderId(builder)
        yield self.master.data.control(
            "force", {"builderid": builderid}, ("forceschedulers", "force")
        )

    @defer.inlineCallbacks
    def reconfig(self, **changes: Any) -> Any:
        """Reconfigure the master with C{changes} to its config dict."""
        config = dict(self.master_config_dict)
        config.update(changes)
        self.master.config_loader.config_dict = config
        yield self.master.doReconfig()

    def legacy_status(self) -> LegacyStatus:
        return self.master.service_manager.namedServices["LegacyStatus"]
