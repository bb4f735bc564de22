"""
Buildbot 0.8's status objects: builders, builds and steps as status
receivers saw them.

They answer synchronously, as in 0.8: each is filled from the data API
(L{BuildStatus.refresh}, L{BuildStepStatus.update}) before a receiver sees
it, and refilled as events arrive.  They also hold the 0.8 subscription
lists (C{watchers}) that events are delivered to.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from buildbot.changes.changes import Change
from buildbot.process.properties import Properties
from twisted.internet import defer

from buildbot_logfile._delivery import deliver

if TYPE_CHECKING:
    from buildbot_logfile.logfile import LogFile

_UNSAFE_FILENAME_CHARS = re.compile(r"[^\w.-]")
_UNESCAPED_DIRNAME_CHARS = re.compile(r"[A-Za-z0-9-]+")
# Escaped builder names longer than this are cut and given a digest: file
# systems allow 255 bytes a name.
_MAX_DIRNAME = 200


def _builder_dirname(name: str) -> str:
    """
    The spool directory of a builder: its name, with every other character
    than ASCII letters, digits and C{-} written as C{_} and the hex of its
    UTF-8 bytes, so that two builders never share one (0.8 turned them all
    into C{_}: C{x"y} and C{x_y} shared a directory) and none is C{.} or
    C{..}.
    """
    parts = []
    pos = 0
    for match in _UNESCAPED_DIRNAME_CHARS.finditer(name):
        parts.append("".join(f"_{b:02x}" for b in name[pos : match.start()].encode()))
        parts.append(match.group())
        pos = match.end()
    parts.append("".join(f"_{b:02x}" for b in name[pos:].encode()))
    dirname = "".join(parts) or "_"
    if len(dirname) > _MAX_DIRNAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        dirname = f"{dirname[: _MAX_DIRNAME - 17]}_{digest}"
    return dirname


def _epoch(value: datetime | float | None) -> float | None:
    """
    A data-API time as seconds since the epoch: the data API gives a
    C{datetime}, a message that crossed a WAMP router a number.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _text(data: Mapping[str, Any]) -> list[str]:
    return [data["state_string"]] if data.get("state_string") else []


class _Watched:
    def __init__(self) -> None:
        self.watchers: list[Any] = []
        self._finished = False
        self._finish_waiters: list[defer.Deferred[Any]] = []

    def unsubscribe(self, receiver: Any) -> None:
        if receiver in self.watchers:
            self.watchers.remove(receiver)

    def isFinished(self) -> bool:
        return self._finished

    def waitUntilFinished(self) -> defer.Deferred[Any]:
        """A Deferred that fires with this object once it is finished."""
        if self._finished:
            return defer.succeed(self)
        d: defer.Deferred[Any] = defer.Deferred()
        self._finish_waiters.append(d)
        return d

    def mark_finished(self) -> None:
        """Finished from now on: those waiting are told."""
        if self._finished:
            return
        self._finished = True
        waiters, self._finish_waiters = self._finish_waiters, []
        for d in waiters:
            d.callback(self)


class BuilderStatus(_Watched):
    """0.8's C{BuilderStatus}: one builder, with its spool directory."""

    def __init__(self, status: Any, name: str, builderid: int, tags: list[str]) -> None:
        super().__init__()
        self.status = status
        self.master = status.master
        self.name = name
        self.builderid = builderid
        self.tags = list(tags)
        self.basedir = os.path.join(status.spool_dir, _builder_dirname(name))
        self.currentBuilds: dict[int, BuildStatus] = {}

    @classmethod
    def from_data(cls, status: Any, builder: Mapping[str, Any]) -> BuilderStatus:
        """A builder of the 0.8 C{status} from a data-API builder."""
        return cls(status, builder["name"], builder["builderid"], builder.get("tags") or [])

    def getName(self) -> str:
        return self.name

    def getTags(self) -> list[str]:
        return self.tags

    def getCategory(self) -> str | None:
        return self.tags[0] if self.tags else None

    def getState(self) -> tuple[str, list[BuildStatus]]:
        builds = self.getCurrentBuilds()
        return ("building" if builds else "idle", builds)

    def getCurrentBuilds(self) -> list[BuildStatus]:
        return sorted(self.currentBuilds.values(), key=lambda b: b.number)

    def getBuild(self, number: int) -> BuildStatus | None:
        """A running build; finished builds are in the database, not here."""
        return self.currentBuilds.get(number)

    def subscribe(self, receiver: Any) -> None:
        """Deliver this builder's events to C{receiver}, starting with its state."""
        self.watchers.append(receiver)
        deliver(receiver, "builderChangedState", self.name, self.getState()[0])


class BuildStatus(_Watched):
    """0.8's C{BuildStatus}, filled from the data API."""

    def __init__(self, builder: BuilderStatus, number: int, buildid: int) -> None:
        super().__init__()
        self.builder = builder
        self.number = number
        self.buildid = buildid
        self.steps: list[BuildStepStatus] = []
        self.properties = Properties()
        self.reason = ""
        self.results: int | None = None
        self.text: list[str] = []
        self.started: float | None = None
        self.finished: float | None = None
        self.changes: list[Change] = []
        self.workername: str | None = None
        self.logfilenames: set[str] = set()
        self._logfile_names: dict[int, str] = {}

    async def refresh(self, build: Mapping[str, Any]) -> None:
        """
        Fill this build from a data-API build (or an mq message about one),
        with its properties, worker, reason and changes.
        """
        data = self.builder.master.data
        props = Properties()
        for name, (value, source) in (
            await data.get(("builds", self.buildid, "properties")) or {}
        ).items():
            props.setProperty(name, value, source)
        workername = None
        if build.get("workerid") is not None:
            worker = await data.get(("workers", build["workerid"]))
            workername = worker["name"] if worker else None
        reason = ""
        request = await data.get(("buildrequests", build["buildrequestid"]))
        if request is not None:
            buildset = await data.get(("buildsets", request["buildsetid"]))
            reason = (buildset or {}).get("reason") or ""
        changes = [
            Change(
                who=c["author"], files=c["files"], comments=c["comments"],
                committer=c.get("committer"), revision=c["revision"],
                when=c["when_timestamp"], branch=c["branch"], category=c["category"],
                revlink=c["revlink"], repository=c["repository"], codebase=c["codebase"],
                project=c["project"],
            )
            for c in await data.get(("builds", self.buildid, "changes")) or []
        ]  # fmt: skip
        self.properties = props
        self.workername = workername
        self.reason = reason
        self.changes = changes
        self.started = _epoch(build.get("started_at"))
        self.finished = _epoch(build.get("complete_at"))
        self.results = build.get("results")
        self.text = _text(build)

    def getBuilder(self) -> BuilderStatus:
        return self.builder

    def getNumber(self) -> int:
        return self.number

    def getProperty(self, name: str, default: Any = None) -> Any:
        return self.properties.getProperty(name, default)

    def getProperties(self) -> Properties:
        return self.properties

    def getReason(self) -> str:
        return self.reason

    def getResults(self) -> int | None:
        return self.results

    def getText(self) -> list[str]:
        return self.text

    def getSteps(self) -> list[BuildStepStatus]:
        return self.steps

    def getTimes(self) -> tuple[float | None, float | None]:
        return (self.started, self.finished)

    def getLogs(self) -> list[LogFile]:
        return [lf for step in self.steps for lf in step.getLogs()]

    def getChanges(self) -> list[Change]:
        return self.changes

    def getResponsibleUsers(self) -> list[str]:
        users: list[str] = []
        for change in self.changes:
            if change.who not in users:
                users.append(change.who)
        return users

    def getWorkername(self) -> str | None:
        return self.workername

    getSlavename = getWorkername

    def getStep(self, name: str) -> BuildStepStatus | None:
        for step in self.steps:
            if step.name == name:
                return step
        return None

    def add_step(self, step: BuildStepStatus) -> None:
        """A step the data API told of, kept in step-number order."""
        self.steps.append(step)
        self.steps.sort(key=lambda s: s.number)

    def subscribe(self, receiver: Any, updateInterval: float | None = None) -> None:
        """
        Deliver this build's step events to C{receiver}.  ETA updates
        (C{buildETAUpdate}) have no modern source: the interval is accepted
        and ignored.
        """
        self.watchers.append(receiver)

    def generateLogfileName(self, stepname: str, logname: str) -> str:
        """
        0.8's rule: C{<number>-log-<step>-<log>}, characters outside
        C{[\\w.-]} turned into C{_}, and C{_0}, C{_1}... on collision.
        """
        start = _UNSAFE_FILENAME_CHARS.sub("_", f"{self.number}-log-{stepname}-{logname}")
        filename = start
        counter = 0
        while filename in self.logfilenames:
            filename = f"{start}_{counter}"
            counter += 1
        self.logfilenames.add(filename)
        return filename

    def logfile_name_for(self, logid: int, stepname: str, logname: str) -> str:
        """The spool name of one log of the database: generated once, in log order."""
        name = self._logfile_names.get(logid)
        if name is None:
            name = self._logfile_names[logid] = self.generateLogfileName(stepname, logname)
        return name


class BuildStepStatus(_Watched):
    """0.8's C{BuildStepStatus}."""

    def __init__(self, build: BuildStatus, name: str, number: int, stepid: int) -> None:
        super().__init__()
        self.build = build
        self.name = name
        self.number = number
        self.stepid = stepid
        self.logs: list[LogFile] = []
        self.results: int | None = None
        self.text: list[str] = []
        self.started: float | None = None
        self.finished: float | None = None

    @classmethod
    def from_data(cls, build: BuildStatus, step: Mapping[str, Any]) -> BuildStepStatus:
        """A step of C{build} from a data-API step, finished if it is complete."""
        status = cls(build, step["name"], step["number"], step["stepid"])
        status.update(step)
        if step.get("complete"):
            status.mark_finished()
        return status

    def mark_started(self, step: Mapping[str, Any], now: float) -> None:
        """Started at the data-API step's C{started_at}, or C{now} if it has none."""
        if self.started is None:
            self.started = _epoch(step.get("started_at")) or now

    def update(self, step: Mapping[str, Any]) -> None:
        """Take the times, results and text of a data-API step."""
        self.started = _epoch(step.get("started_at")) or self.started
        self.finished = _epoch(step.get("complete_at"))
        self.results = step.get("results")
        self.text = _text(step)

    def getName(self) -> str:
        return self.name

    def getBuild(self) -> BuildStatus:
        return self.build

    def getLogs(self) -> list[LogFile]:
        return self.logs

    def getResults(self) -> tuple[int | None, list[str]]:
        return (self.results, self.text)

    def getText(self) -> list[str]:
        return self.text

    def getTimes(self) -> tuple[float | None, float | None]:
        return (self.started, self.finished)

    def isStarted(self) -> bool:
        return self.started is not None

    def subscribe(self, receiver: Any, updateInterval: float | None = None) -> None:
        """Deliver this step's log events to C{receiver}."""
        self.watchers.append(receiver)
