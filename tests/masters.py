"""A real Buildbot master with a real worker, for the bridge and web tests."""

from __future__ import annotations

from typing import Any

from buildbot.process.buildstep import BuildStep
from buildbot.process.results import SUCCESS
from buildbot.test.util.integration import RunMasterBase
from twisted.internet import defer, reactor, task

import buildbot_logfile  # noqa: F401  (0.8 import paths)
from buildbot.status.base import StatusReceiverMultiService  # noqa: E402
from buildbot_logfile.bridge import LegacyStatus
from buildbot_logfile.logfile import HEADER, STDERR, STDOUT
from tests.support import master_config, merged, python_step  # noqa: F401  (re-exported)

CHANNEL_OF_PREFIX = {"o": STDOUT, "e": STDERR, "h": HEADER}


class Recorder(StatusReceiverMultiService):
    """A 0.8-style receiver that records every event it is given, in order."""

    compare_attrs = ("label",)

    def __init__(self, name: str = "recorder") -> None:
        super().__init__()
        self.label = name
        self.events: list[tuple[Any, ...]] = []
        self.chunks: dict[tuple[int, str, str], list[tuple[int, str]]] = {}
        self._build_waiters: list[tuple[int, defer.Deferred[Any]]] = []
        self.finished_builds = 0

    def __repr__(self) -> str:
        return f"<Recorder {self.label}>"

    def setServiceParent(self, parent: Any) -> Any:
        d = super().setServiceParent(parent)
        self.status = parent.getStatus()
        self.status.subscribe(self)
        return d

    def builderAdded(self, name: str, builder: Any) -> Any:
        self.events.append(("builderAdded", name))
        return self

    def builderRemoved(self, name: str) -> None:
        self.events.append(("builderRemoved", name))

    def buildStarted(self, builderName: str, build: Any) -> Any:
        self.events.append(("buildStarted", builderName, build.getNumber()))
        return self

    def stepStarted(self, build: Any, step: Any) -> Any:
        self.events.append(("stepStarted", build.getNumber(), step.getName()))
        return self

    def logStarted(self, build: Any, step: Any, log: Any) -> Any:
        self.events.append(("logStarted", build.getNumber(), step.getName(), log.getName()))
        return self

    def logChunk(self, build: Any, step: Any, log: Any, channel: int, text: str) -> None:
        key = (build.getNumber(), step.getName(), log.getName())
        if not self.events or self.events[-1][0] != "logChunk" or self.events[-1][1:] != key:
            self.events.append(("logChunk", *key))
        self.chunks.setdefault(key, []).append((channel, text))

    def logFinished(self, build: Any, step: Any, log: Any) -> None:
        self.events.append(("logFinished", build.getNumber(), step.getName(), log.getName()))

    def stepFinished(self, build: Any, step: Any, results: Any) -> None:
        self.events.append(("stepFinished", build.getNumber(), step.getName(), results[0]))

    def buildFinished(self, builderName: str, build: Any, results: Any) -> None:
        self.events.append(("buildFinished", builderName, build.getNumber(), results))
        self.finished_builds += 1
        for count, d in list(self._build_waiters):
            if self.finished_builds >= count:
                self._build_waiters.remove((count, d))
                d.callback(build)

    def wait_for_builds(self, count: int) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        if self.finished_builds >= count:
            d.callback(None)
        else:
            self._build_waiters.append((count, d))
        return d


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


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


class MasterTestCase(RunMasterBase):
    timeout = 40

    @defer.inlineCallbacks
    def db_log(self, builder: str, number: int, step: str, log: str) -> Any:
        """The log's database row and contents, through the data API."""
        build = yield self.master.data.get(("builders", builder, "builds", number))
        steps = yield self.master.data.get(("builds", build["buildid"], "steps"))
        (step_data,) = [entry for entry in steps if entry["name"] == step]
        logs = yield self.master.data.get(("steps", step_data["stepid"], "logs"))
        (log_data,) = [entry for entry in logs if entry["name"] == log]
        contents = yield self.master.data.get(("logs", log_data["logid"], "contents"))
        return log_data, contents["content"]

    @defer.inlineCallbacks
    def force(self, builder: str) -> Any:
        builderid = yield self.master.data.updates.findBuilderId(builder)
        yield self.master.data.control(
            "force", {"builderid": builderid}, ("forceschedulers", "force")
        )

    def legacy_status(self) -> LegacyStatus:
        return self.master.service_manager.namedServices["LegacyStatus"]
