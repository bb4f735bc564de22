"""0.8's C{BuildStatus}."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from buildbot.interfaces import IProperties
from buildbot.process.properties import Properties
from buildbot.process.results import CANCELLED, EXCEPTION, FAILURE, RETRY, WARNINGS
from twisted.internet import defer
from twisted.python import components
from zope.interface import implementer

from buildbot_logfile._build_data import BuildData, load_build_data
from buildbot_logfile._delivery import deliver
from buildbot_logfile._status_base import Watched, epoch, legacy_results
from buildbot_logfile._step_status import BuildStepStatus
from buildbot_logfile.interfaces import IBuildStatus, IStatusEvent

if TYPE_CHECKING:
    from buildbot_logfile._builder_status import BuilderStatus
    from buildbot_logfile._changes import LegacyChange, SourceStamp
    from buildbot_logfile.logfile import LogFile

_UNSAFE_FILENAME_CHARS = re.compile(r"[^\w.-]")
# The first words of a finished build's text, by its result, as 0.8's
# Build.allStepsDone set them ("build successful" for the rest).  A build
# Buildbot cancels is one 0.8 stopped: an exception.
_RESULT_TEXT = {
    FAILURE: ["failed"],
    WARNINGS: ["warnings"],
    EXCEPTION: ["exception"],
    RETRY: ["retry"],
    CANCELLED: ["exception"],
}


# No initial value given to getSummaryStatistic.
_NO_INITIAL: Any = object()


@implementer(IBuildStatus, IStatusEvent)
class BuildStatus(Watched):
    """
    One build as 0.8 receivers saw it, filled from the data API (L{fill})
    before a receiver sees it and as events arrive: its properties are
    current at every event, its steps are those the build has so far.
    """

    def __init__(self, builder: BuilderStatus, number: int, buildid: int) -> None:
        super().__init__()
        self.builder = builder
        self.number = number
        self.buildid = buildid
        # The steps the data API told of, in step-number order, and those
        # the build passed over unstarted (it halted) in their places.
        self._settled: list[BuildStepStatus] = []
        # Where this master runs the build: the steps it has yet to start,
        # each with its BuildStep (see expect_steps).
        self._to_come: list[tuple[Any, BuildStepStatus]] = []
        self.properties = Properties()
        self.properties.build = self  # for Interpolate("%(src::revision)s")
        self.reason = ""
        self.results: int | None = None
        self.text: list[str] = []
        self.started: float | None = None
        self.finished: float | None = None
        self.sourcestamps: list[SourceStamp] = []
        self.workername: str | None = None
        self.buildsetid: int | None = None
        self.buildrequestid: int | None = None
        # The master that runs it.
        self.masterid: int | None = None
        # What this build is expected to take (see _build_data.load_expectations).
        self.expected_duration: float | None = None
        self.expected_steps: dict[str, float] = {}
        self.logfilenames: set[str] = set()
        self._logfile_names: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} #{self.number}>"

    async def refresh(self, build: Any) -> None:
        """L{fill} from a data-API build (or an mq message about one)."""
        self.fill(await load_build_data(self.builder.master.data, build))

    def fill(self, data: BuildData) -> None:
        """Take what the database says of this build now."""
        build = data.build
        self.set_properties(data.properties, replace=True)
        self.workername = data.workername
        self.reason = data.reason
        self.sourcestamps = list(data.sourcestamps)
        self.buildsetid = data.buildsetid
        self.buildrequestid = build.get("buildrequestid")
        self.masterid = build.get("masterid")
        self.started = epoch(build.get("started_at"))
        self.finished = epoch(build.get("complete_at"))
        self.results = legacy_results(build.get("results"))
        # 0.8's build text: its result's words once finished; getText adds
        # the steps' text2.
        if self.results is None:
            self.text = []
        else:
            self.text = list(_RESULT_TEXT.get(self.results, ["build", "successful"]))

    def set_properties(self, properties: dict[str, Any], *, replace: bool = False) -> None:
        """Properties as the data API gives them: C{{name: (value, source)}}."""
        if replace:
            self.properties = Properties()
            self.properties.build = self
        for name, (value, source) in properties.items():
            self.properties.setProperty(name, value, source)
        # 0.8's worker set "slavename" on every build (Buildbot 4 sets
        # "workername" only); plugins read it, and render it in their mail.
        worker = properties.get("workername")
        if worker is not None and "slavename" not in properties:
            self.properties.setProperty("slavename", worker[0], "BuildSlave")

    # The 0.8 API

    def getBuilder(self) -> BuilderStatus:
        return self.builder

    def getNumber(self) -> int:
        return self.number

    def getPreviousBuild(self) -> BuildStatus | None:
        """The build of this builder numbered one less, if there is one."""
        return self.builder.getBuild(self.number - 1) if self.number > 0 else None

    def getNextBuild(self) -> BuildStatus | None:
        """The build of this builder numbered one more, if there is one."""
        return self.builder.getBuild(self.number + 1)

    def getSourceStamps(self, absolute: bool = False) -> list[SourceStamp]:
        """
        What the build was built from, one stamp per codebase (0.8.7+);
        with C{absolute}, at the revisions it got (C{got_revision}).
        """
        if not absolute:
            return list(self.sourcestamps)
        got = self.getAllGotRevisions()
        return [ss.getAbsoluteSourceStamp(got.get(ss.codebase)) for ss in self.sourcestamps]

    def getAllSourceStamps(self) -> list[SourceStamp]:
        """Buildbot's name for L{getSourceStamps}, which C{Interpolate("%(src::...)s")} uses."""
        return self.getSourceStamps()

    def allChanges(self) -> list[LegacyChange]:
        """Buildbot's name for L{getChanges}, which renderables use."""
        return self.getChanges()

    def getSourceStamp(self, codebase: str | None = None) -> SourceStamp | None:
        """0.8.0-0.8.6's single source stamp: the first, or the one of C{codebase}."""
        for ss in self.sourcestamps:
            if codebase is None or ss.codebase == codebase:
                return ss
        return None

    def getReason(self) -> str:
        return self.reason

    def getChanges(self) -> list[LegacyChange]:
        """The changes of the build's own source stamps, oldest first."""
        seen: dict[int | None, LegacyChange] = {}
        for ss in self.sourcestamps:
            for change in ss.changes:
                seen.setdefault(change.number, change)
        return sorted(seen.values(), key=lambda c: c.number or 0)

    def getRevisions(self) -> str:
        """
        The changes' revisions as 0.8 listed them: each cut to 7 characters
        (for long hashes; 0.8 meant to spare short ones, but its check was
        always true), and "None" for a change without one.
        """
        return ", ".join(str(c.revision)[:7] for c in self.getChanges())

    def getResponsibleUsers(self) -> list[str]:
        """The changes' authors and a patch's author, sorted, each once (0.8's blamelist)."""
        users = {c.who for c in self.getChanges() if c.who}
        users.update(
            ss.patch_info[0] for ss in self.sourcestamps if ss.patch_info and ss.patch_info[0]
        )
        return sorted(users)

    def getInterestedUsers(self) -> list[str]:
        """
        Who asked for the build and did not make its changes, as 0.8 meant
        it: the build's owner (who forced it or sent the try), where it
        has one.  (0.8 read its C{owners} property, which held only
        those; Buildbot 4's holds the blamelist too.)
        """
        owner = self.getProperty("owner")
        return [str(owner)] if owner else []

    def getAllGotRevisions(self) -> dict[str, str]:
        """C{got_revision} by codebase; a plain string is the default codebase's."""
        got = self.getProperty("got_revision")
        if isinstance(got, dict):
            return {str(k): str(v) for k, v in got.items()}
        return {"": str(got)} if got is not None else {}

    @property
    def steps(self) -> list[BuildStepStatus]:
        """
        0.8's attribute: the build's steps in order, started or not.  Only
        the build's own master knows those still to start; elsewhere they
        are the steps started so far.
        """
        return self._settled + [step for _, step in self._to_come]

    @property
    def started_steps(self) -> list[BuildStepStatus]:
        """The steps the data API told of, in order."""
        return [step for step in self._settled if step.stepid is not None]

    def getSteps(self) -> list[BuildStepStatus]:
        return self.steps

    def getCurrentStep(self) -> BuildStepStatus | None:
        """
        The step started last, until the build finishes: as in 0.8, that
        is the one that ran last between two steps too.
        """
        if self.isFinished():
            return None
        started = [step for step in self.started_steps if step.isStarted()]
        return started[-1] if started else None

    def getTimes(self) -> tuple[float | None, float | None]:
        return (self.started, self.finished)

    def getETA(self) -> float | None:
        """
        Seconds until the build is expected to finish, from the mean duration
        of the builder's last successful builds; None once finished or
        without a successful build to go by.
        """
        if self.isFinished() or self.expected_duration is None or self.started is None:
            return None
        now = self.builder.master.reactor.seconds()
        return max(0.0, self.started + self.expected_duration - now)

    def getText(self) -> list[str]:
        """
        The build's text as 0.8's list of words: its result's words once
        it has finished, then the text2 of each step (the names of those
        that failed it).
        """
        return self.text + [word for step in self.started_steps for word in step.text2]

    def getResults(self) -> int | None:
        return self.results

    def getWorkername(self) -> str | None:
        return self.workername

    getSlavename = getWorkername

    def getProperty(self, name: str, default: Any = None) -> Any:
        return self.properties.getProperty(name, default)

    def hasProperty(self, name: str) -> bool:
        return bool(self.properties.hasProperty(name))

    has_key = hasProperty

    def setProperty(
        self, name: str, value: Any, source: str = "Unknown", runtime: bool | None = None
    ) -> None:
        """
        Set a property here, as 0.8 let plugins (the database keeps its
        own); a runtime one unless said otherwise, as 0.8's build status set them.
        """
        self.properties.setProperty(name, value, source, runtime=runtime is None or runtime)

    def getProperties(self) -> Properties:
        return self.properties

    def getSummaryStatistic(
        self, name: str, summary_fn: Callable[[Any, Any], Any], initial_value: Any = _NO_INITIAL
    ) -> Any:
        """C{summary_fn} folded over the steps' statistic C{name}, as 0.8's C{reduce}."""
        found = [step.getStatistic(name) for step in self.steps if step.hasStatistic(name)]
        if initial_value is _NO_INITIAL:
            return functools.reduce(summary_fn, found)
        return functools.reduce(summary_fn, found, initial_value)

    def getLogs(self) -> list[LogFile]:
        return [lf for step in self.started_steps for lf in step.getLogs()]

    def getTestResults(self) -> dict[Any, Any]:
        """0.8's test results; Buildbot 4 keeps them elsewhere: none here."""
        return {}

    def getStep(self, name: str) -> BuildStepStatus | None:
        for step in self.steps:
            if step.name == name:
                return step
        return None

    def render(self, value: Any) -> defer.Deferred[Any]:
        """
        C{value} rendered with this build's properties (C{Interpolate},
        C{WithProperties}, C{Property}...): a Deferred, as 0.8.8 to 0.8.14
        gave (0.8's mail and its subclasses add callbacks to it).
        """
        return defer.maybeDeferred(self.properties.render, value)

    def subscribe(self, receiver: Any, updateInterval: float | None = None) -> None:
        """
        Deliver this build's step events to C{receiver}, and with
        C{updateInterval} a C{buildETAUpdate(build, eta)} now and that
        often, whenever there is an estimate (as 0.8 did).
        """
        self.watchers.append(receiver)
        if updateInterval:

            def update() -> None:
                eta = self.getETA()
                if eta is not None:
                    deliver(receiver, "buildETAUpdate", self, eta)

            self._every(receiver, updateInterval, self.builder.master.reactor, update)

    def asDict(self) -> dict[str, Any]:
        """As 0.8's JSON status gave it."""
        status = self.builder.status
        current = self.getCurrentStep()
        return {
            "builderName": self.builder.name,
            "number": self.number,
            "sourceStamps": [ss.asDict() for ss in self.getSourceStamps()],
            "reason": self.reason,
            "blame": self.getResponsibleUsers(),
            "properties": self.properties.asList(),
            "times": self.getTimes(),
            "text": self.getText(),
            "results": self.results,
            "slave": self.workername,
            "logs": [[lf.getName(), status.getURLForThing(lf)] for lf in self.getLogs()],
            "eta": self.getETA(),
            "steps": [step.asDict() for step in self.steps],
            "currentStep": current.asDict() if current is not None else None,
        }

    # Beyond 0.8: what the bridge and the lookups use

    def add_step(self, step: BuildStepStatus) -> None:
        """A step the data API told of, kept in step-number order."""
        self._settle(step)
        self._number_to_come()

    def _settle(self, step: BuildStepStatus) -> None:
        self._settled.append(step)
        self._settled.sort(key=lambda s: s.number)  # stable: a tie stays in arrival order

    def expect_steps(self, to_come: list[tuple[Any, str]]) -> None:
        """
        The steps this master's running build has yet to start: its
        C{BuildStep}s, each with the name it will start under (see
        C{_running.steps_to_come}), listed after the started ones as 0.8
        listed a build's steps.  A step listed before keeps its status
        object, which L{take_step_to_come} hands over when it starts.  One
        the build will never start (it halted) stays, not started, as 0.8
        left it.
        """
        listed = {id(step) for step, _ in to_come}
        known = {id(step): status for step, status in self._to_come}
        kept = [(step, status) for step, status in self._to_come if id(step) not in listed]
        for step, name in to_come:
            status = known.get(id(step))
            if status is None:
                status = BuildStepStatus(self, name, 0, None)
            status.name = name  # a renderable name, rendered anew
            kept.append((step, status))
        self._to_come = kept
        self._number_to_come()

    def take_step_to_come(self, running: Any, number: int) -> BuildStepStatus | None:
        """
        The status listed for C{BuildStep} C{running}, which has started
        as step C{number}, if any.  Those listed before it that have not
        started the build passed over: they stay before it, unstarted.
        """
        for i, (step, status) in enumerate(self._to_come):
            if step is running:
                passed_over = [s for _, s in self._to_come[:i]]
                del self._to_come[: i + 1]
                for skipped in passed_over:
                    skipped.number = number  # where it would have run
                    self._settle(skipped)
                return status
        return None

    def end_steps_to_come(self) -> None:
        """
        The build ended: the steps it never started stay, not started, as
        0.8 left them, and its C{BuildStep}s are let go.
        """
        for _, status in self._to_come:
            self._settle(status)
        self._to_come = []

    def _number_to_come(self) -> None:
        # Numbered as they will be if they start in order.
        started = len(self.started_steps)
        for i, (_, status) in enumerate(self._to_come, start=started):
            status.number = i

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

    def reserve_logfile_name(self, logid: int, name: str) -> None:
        """A log's spool name given elsewhere (see L{LogMirror.adopt}), kept from others."""
        self._logfile_names[logid] = name
        self.logfilenames.add(name)

    @property
    def changes(self) -> list[LegacyChange]:
        """0.8's attribute: L{getChanges}."""
        return self.getChanges()


# IProperties(build), as 0.8 registered it: a build's properties.
components.registerAdapter(lambda build: build.properties, BuildStatus, IProperties)
