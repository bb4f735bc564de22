"""0.8's C{BuildStepStatus}."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from buildbot.process.results import (
    CANCELLED,
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
    Results,
)
from zope.interface import implementer

from buildbot_logfile._delivery import deliver
from buildbot_logfile._status_base import Watched, epoch, legacy_results, words
from buildbot_logfile.interfaces import IBuildStepStatus, IStatusEvent

if TYPE_CHECKING:
    from buildbot_logfile._build_status import BuildStatus
    from buildbot_logfile.logfile import LogFile

# Buildbot 4 ends the state string of a step that did not succeed with its
# result, "(failure)"; 0.8 ended the step's text with a word (its
# BuildStep.getText, and "skipped" or "interrupted" where it stopped one).
_RESULT_WORDS = {
    FAILURE: "failed",
    WARNINGS: "warnings",
    EXCEPTION: "exception",
    SKIPPED: "skipped",
    RETRY: "retry",
    CANCELLED: "interrupted",
}
_SUFFIX_WORDS = {f"({Results[results]})": word for results, word in _RESULT_WORDS.items()}
# The flags that made 0.8 name a step in its build's text, by its result
# (BuildStep.maybeGetText2).
_TEXT2_FLAGS = {
    WARNINGS: ("flunkOnWarnings", "warnOnWarnings"),
    FAILURE: ("haltOnFailure", "flunkOnFailure", "warnOnFailure"),
    EXCEPTION: ("haltOnFailure", "flunkOnFailure", "warnOnFailure"),
    RETRY: ("haltOnFailure", "flunkOnFailure", "warnOnFailure"),
}


@implementer(IBuildStepStatus, IStatusEvent)
class BuildStepStatus(Watched):
    """
    One step of a build, filled from data-API steps (L{update}) as events
    arrive: its text follows the step's state string while it runs.
    """

    def __init__(self, build: BuildStatus, name: str, number: int, stepid: int | None) -> None:
        """C{stepid} None: a step its build has yet to start (see C{BuildStatus.expect_steps})."""
        super().__init__()
        self.build = build
        self.name = name
        self.number = number
        self.stepid = stepid
        self.logs: list[LogFile] = []
        self.results: int | None = None
        self.text: list[str] = []
        self.text2: list[str] = []
        self.started: float | None = None
        self.finished: float | None = None
        self.urls: dict[str, str] = {}
        self.hidden = False
        # Whether the step waits for its locks: this master's BuildStep
        # knows while it runs (as 0.8's did); for another master's step,
        # the database's last word (see note_locks).
        self.running_step: Any = None
        self.locks_pending = False
        # What its BuildStep counted (setStatistic: warnings, tests...),
        # where this master ran it: Buildbot 4 keeps none in its database.
        self.statistics: dict[str, Any] = {}
        # A step of a build from history: its logs as the database lists
        # them, made LogFiles when first asked for.
        self.history_logs: list[dict[str, Any]] = []
        # How the step described itself as it started, where this master
        # runs it: its text until Buildbot's own description comes.
        self.started_as: str | None = None

    @property
    def step_number(self) -> int:
        """0.8's name for the step's number in its build."""
        return self.number

    @classmethod
    def from_data(cls, build: BuildStatus, step: Mapping[str, Any]) -> BuildStepStatus:
        """A step of C{build} from a data-API step, finished if it is complete."""
        status = cls(build, step["name"], step["number"], step["stepid"])
        status.update(step)
        if step.get("started_at") is not None:
            status.started = epoch(step["started_at"])
        if step.get("complete"):
            status.update(step, finished=True)
            status.mark_finished()
        return status

    def mark_started(self, step: Mapping[str, Any], now: float) -> None:
        """Started at the data-API step's C{started_at}, or C{now} if it has none."""
        if self.started is None:
            self.started = epoch(step.get("started_at")) or now

    def update(
        self, step: Mapping[str, Any], *, finished: bool = False, running: Any = None
    ) -> None:
        """
        Take what a data-API step says now: its text, URLs and hidden flag,
        and once C{finished} its times and results (0.8 had none before).
        C{running}: the step's own C{BuildStep}, where this master runs it.
        """
        text = words(step.get("state_string"))
        if text == ["pending"] and not finished:
            # Buildbot's word for a step it has not described yet; 0.8's
            # steps had their description, or their name at least.
            text = words(self.started_as) or [self.name]
        elif text and text[-1] in _SUFFIX_WORDS:
            # Buildbot adds the result as the step finishes, in an update
            # just before the one that says it finished: 0.8 set the final
            # text once.
            text = [*text[:-1], _SUFFIX_WORDS[text[-1]]]
        self.text = text
        self.urls = {u["name"]: u["url"] for u in step.get("urls") or []}
        self.hidden = bool(step.get("hidden"))
        if running is not None:
            self.statistics = running.getStatistics()
        if finished:
            self.started = epoch(step.get("started_at")) or self.started
            self.finished = epoch(step.get("complete_at"))
            results = step.get("results")
            self.results = legacy_results(results)
            self.text2 = self._text2(results, running)

    def _text2(self, results: int | None, running: Any) -> list[str]:
        """
        0.8's summary of the step for its build's text: its name, where
        its result counted against the build by its flags.  A step of
        another master (or of the past) is named whenever it did not
        succeed: its flags are not in the database.
        """
        if results == CANCELLED:
            return ["interrupted"]
        if results in (SUCCESS, SKIPPED, None):
            return []
        flags = _TEXT2_FLAGS.get(results, ())
        if running is None or any(getattr(running, flag, False) for flag in flags):
            return [self.name]
        return []

    def getName(self) -> str:
        return self.name

    def getBuild(self) -> BuildStatus:
        return self.build

    def getLogs(self) -> list[LogFile]:
        if self.history_logs and not self.logs:
            self.logs = self.build.builder.status.history_logfiles(self)
        return self.logs

    def getResults(self) -> tuple[int | None, list[str]]:
        """0.8's C{(result, text2)}; C{(None, [])} while running."""
        return (self.results, self.text2)

    def getText(self) -> list[str]:
        """The step's text as 0.8's list of words, current while it runs."""
        return self.text

    def getTimes(self) -> tuple[float | None, float | None]:
        return (self.started, self.finished)

    def isStarted(self) -> bool:
        return self.started is not None

    def isHidden(self) -> bool:
        return self.hidden

    def getURLs(self) -> dict[str, str]:
        return dict(self.urls)

    def isSkipped(self) -> bool:
        return self.results == SKIPPED

    def note_locks(self, step: Mapping[str, Any]) -> None:
        """
        From a data-API step updated after it started: Buildbot notes when
        its locks were taken (as it starts, if it has none to wait for).
        """
        self.locks_pending = "locks_acquired_at" in step and step["locks_acquired_at"] is None

    def isWaitingForLocks(self) -> bool:
        """Whether the step has started and waits for its locks."""
        if self.isFinished() or not self.isStarted():
            return False
        if self.running_step is not None:
            return bool(getattr(self.running_step, "_waitingForLocks", False))
        return self.locks_pending

    def hasStatistic(self, name: str) -> bool:
        return name in self.statistics

    def getStatistic(self, name: str, default: Any = None) -> Any:
        """What the step counted as C{name} where this master ran it, else C{default}."""
        return self.statistics.get(name, default)

    def getStatistics(self) -> dict[str, Any]:
        return dict(self.statistics)

    def _expected(self) -> float | None:
        return self.build.expected_steps.get(self.name)

    def getExpectations(self) -> list[tuple[str, float, float]]:
        """0.8's progress: C{[("time", elapsed, expected)]} when this step took time before."""
        expected = self._expected()
        if expected is None or self.started is None:
            return []
        end = self.finished or self.build.builder.master.reactor.seconds()
        return [("time", end - self.started, expected)]

    def getETA(self) -> float | None:
        """
        Seconds until the step is expected to finish, from the time it took
        in the builder's last successful build; None if finished or unknown.
        """
        expected = self._expected()
        if self.isFinished() or expected is None or self.started is None:
            return None
        return max(0.0, self.started + expected - self.build.builder.master.reactor.seconds())

    def subscribe(self, receiver: Any, updateInterval: float | None = 10) -> None:
        """
        Deliver this step's text changes and log events to C{receiver}, and
        a C{stepETAUpdate} now and every C{updateInterval} seconds (0.8's
        default: 10; None or 0: none).
        """
        self.watchers.append(receiver)
        if updateInterval:

            def update() -> None:
                eta, expectations = self.getETA(), self.getExpectations()
                deliver(receiver, "stepETAUpdate", self.build, self, eta, expectations)

            self._every(receiver, updateInterval, self.build.builder.master.reactor, update)

    def asDict(self) -> dict[str, Any]:
        """As 0.8's JSON status gave it."""
        status = self.build.builder.status
        return {
            "name": self.getName(),
            "text": self.getText(),
            "results": self.getResults(),
            "isStarted": self.isStarted(),
            "isFinished": self.isFinished(),
            "statistics": self.getStatistics(),
            "times": self.getTimes(),
            "expectations": self.getExpectations(),
            "eta": self.getETA(),
            "urls": self.getURLs(),
            "step_number": self.step_number,
            "hidden": self.hidden,
            "logs": [[lf.getName(), status.getURLForThing(lf)] for lf in self.getLogs()],
        }
