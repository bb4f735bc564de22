"""
Buildbot 0.8's status objects: builders, builds and steps as status
receivers saw them.

They answer synchronously, as in 0.8: the bridge fetches everything from
the data API before it hands an object to a receiver, and updates it as
events arrive.  They also hold the 0.8 subscription lists (watchers) that
the bridge walks when it delivers an event.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Callable

from buildbot.process.properties import Properties
from twisted.internet import defer
from twisted.python import log

if TYPE_CHECKING:
    from buildbot_logfile.logfile import LogFile

_UNSAFE_FILENAME_CHARS = re.compile(r"[^\w.-]")
# 0.8's builder directories (util.safeTranslate) also turned '.' into '_',
# which keeps a builder named '..' inside the spool.
_UNSAFE_DIRNAME_CHARS = re.compile(r"[^\w-]")


def builder_dirname(name: str) -> str:
    return _UNSAFE_DIRNAME_CHARS.sub("_", name)


def deliver(receiver: Any, method: str, *args: Any) -> Any:
    """
    Call one status receiver method; a receiver that raises is logged with
    its name and skipped, so it never stops the build or other receivers.
    """
    callback: Callable[..., Any] | None = getattr(receiver, method, None)
    if callback is None:
        return None
    try:
        return callback(*args)
    except Exception:
        log.err(None, f"status receiver {receiver!r} failed in {method}; skipped")
        return None


def subscribe_returned(
    returned: Any, subscribe: Callable[..., None], unsubscribe: Callable[[Any], None],
    finished: defer.Deferred[Any],
) -> None:
    """
    0.8's return-value subscription: a callback may return a receiver, or
    C{(receiver, interval)}, to be subscribed until C{finished} fires.
    """
    if not returned:
        return
    if isinstance(returned, tuple):
        receiver, interval = returned
        subscribe(receiver, interval)
    else:
        receiver = returned
        subscribe(receiver)
    finished.addCallback(lambda _: unsubscribe(receiver))


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
        if self._finished:
            return defer.succeed(self)
        d: defer.Deferred[Any] = defer.Deferred()
        self._finish_waiters.append(d)
        return d

    def _mark_finished(self) -> None:
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
        self.basedir = os.path.join(status.spool_dir, builder_dirname(name))
        self.currentBuilds: dict[int, BuildStatus] = {}

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
        self.changes: list[Any] = []
        self.workername: str | None = None
        self.logfilenames: set[str] = set()
        self._logfile_names: dict[int, str] = {}

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

    def getChanges(self) -> list[Any]:
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

    def subscribe(self, receiver: Any, updateInterval: float | None = None) -> None:
        # ETA updates (buildETAUpdate) have no modern source; the interval
        # is accepted and ignored.
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
        """The spool name of one modern log: generated once, in log order."""
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
        self.watchers.append(receiver)
