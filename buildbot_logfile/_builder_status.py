"""0.8's C{BuilderStatus}."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from buildbot.util import now
from twisted.internet import defer
from zope.interface import implementer

from buildbot_logfile._delivery import deliver
from buildbot_logfile._status_base import Watched, builder_dirname
from buildbot_logfile.interfaces import IBuilderStatus, IEventSource, IStatusEvent

if TYPE_CHECKING:
    from buildbot_logfile._build_status import BuildStatus


@implementer(IStatusEvent)
class Event:
    """
    0.8's C{buildbot.status.event.Event}: something that happened to a
    builder outside its builds, as words (C{["connect", "worker1"]}).
    A point event has C{finished} 0, as in 0.8.
    """

    started: float | None = None
    finished: float | None = None
    text: list[str] = []

    def getTimes(self) -> tuple[float | None, float | None]:
        return (self.started, self.finished)

    def getText(self) -> list[str]:
        return self.text

    def getLogs(self) -> list[Any]:
        return []

    def finish(self) -> None:
        self.finished = now()


@implementer(IBuilderStatus, IEventSource)
class BuilderStatus(Watched):
    """
    One builder, with its spool directory (C{basedir}).  C{status} is the
    0.8 C{Status} (L{LegacyStatus}); it finds builds the builder no longer
    runs (see L{getBuild}).
    """

    # How many events getEvent keeps, as 0.8's default eventHorizon.
    eventHorizon = 50

    def __init__(
        self,
        status: Any,
        name: str,
        builderid: int,
        tags: list[str],
        description: str | None = None,
    ) -> None:
        super().__init__()
        self.status = status
        self.master = status.master
        self.name = name
        self.builderid = builderid
        # 0.8 kept None for a builder without tags; Buildbot 4 gives [].
        self.tags: list[str] | None = list(tags) or None
        self.description = description
        self._current: dict[int, BuildStatus] = {}
        self._state: str | None = None
        # Builds that ran before the service, not yet current (see
        # expect_build), and watchers that wait for them to hear a state.
        self._expected: set[int] = set()
        self._unstated: list[Any] = []
        # A build ended, its state not told yet (see build_finished).
        self._ending = False
        self.events: list[Event] = []

    @property
    def basedir(self) -> str:
        """
        The builder's spool directory, under the service's C{logdir} as
        configured now (0.8's was the builder's own directory, where its
        logs lived).
        """
        return os.path.join(self.status.spool_dir, builder_dirname(self.name))

    @classmethod
    def from_data(cls, status: Any, builder: Mapping[str, Any]) -> BuilderStatus:
        """A builder of the 0.8 C{status} from a data-API builder."""
        return cls(
            status,
            builder["name"],
            builder["builderid"],
            builder.get("tags") or [],
            builder.get("description"),
        )

    def getName(self) -> str:
        return self.name

    def getDescription(self) -> str | None:
        return self.description

    def getTags(self) -> list[str] | None:
        return self.tags

    def getCategory(self) -> str | None:
        """0.8.0-0.8.9's category: the builder's first tag."""
        return self.tags[0] if self.tags else None

    @property
    def category(self) -> str | None:
        return self.getCategory()

    def matchesAnyTag(self, tags: Iterable[str]) -> bool:
        return bool(set(tags) & set(self.tags or []))

    def matchesAllTags(self, tags: Iterable[str]) -> bool:
        return set(self.tags or []).issuperset(tags)

    def getState(self) -> tuple[str, list[BuildStatus]]:
        """
        0.8's C{(state, current builds)}: C{"building"} while it runs a
        build, C{"offline"} when none of its workers is connected, else
        C{"idle"}.
        """
        builds = self.getCurrentBuilds()
        if builds or self._ending:
            return ("building", builds)
        if not any(s.isConnected() for s in self.getSlaves()):
            return ("offline", builds)
        return ("idle", builds)

    @property
    def slavenames(self) -> list[str]:
        """The names of the workers configured for this builder."""
        return [s.getName() for s in self.getSlaves()]

    def getSlaves(self) -> list[Any]:
        """The C{SlaveStatus} of each worker configured for this builder."""
        return self.status.workers.of_builder(self.builderid, self.name)

    def getCurrentBuilds(self) -> list[BuildStatus]:
        return sorted(self._current.values(), key=lambda b: b.number)

    @property
    def currentBuilds(self) -> list[BuildStatus]:
        """0.8's attribute: the running builds, a list."""
        return self.getCurrentBuilds()

    def getBuild(self, number: int, revision: str | None = None) -> BuildStatus | None:
        """
        Build C{number} of this builder, running or finished, including
        builds from before this master or service started; a negative
        number counts from the newest (C{-1} is the newest).  A finished
        build not at hand is read from the database at once, as 0.8 read
        it from disk.  With a C{revision}: L{getBuildByRevision}.
        """
        if revision is not None:
            return self.getBuildByRevision(revision)
        build = self._current.get(number) if number >= 0 else None
        return build if build is not None else self.status.find_build(self, number)

    def getBuildByNumber(self, number: int) -> BuildStatus:
        """Build C{number}; IndexError if there is none, as 0.8 raised."""
        build = self.getBuild(number) if number >= 0 else None
        if build is None:
            raise IndexError(f"no such build {number}")
        return build

    def getBuildByRevision(self, rev: str) -> BuildStatus | None:
        """
        The newest build whose C{got_revision} (of its unnamed codebase) is
        C{rev}, or None, as 0.8 looked through every build.
        """
        return self.status.find_build_by_revision(self, rev)

    def getEvent(self, number: int) -> Event | None:
        """
        Event C{number} of the builder's event list (negative: from the
        newest), or None: the workers connecting and leaving, as 0.8
        before 0.8.9 listed them (0.8.9 to 0.8.12 always answered None).
        Buildbot 4 keeps no such list: it holds what this service saw, the
        last L{eventHorizon}.
        """
        try:
            return self.events[number]
        except IndexError:
            return None

    def addPointEvent(self, text: list[str] | None = None) -> Event:
        """Add an event that happened now, as 0.8 did."""
        event = Event()
        event.started = self.master.reactor.seconds()
        event.finished = 0
        event.text = list(text or [])
        self.events.append(event)
        del self.events[: -self.eventHorizon]
        return event

    def getLastFinishedBuild(self) -> BuildStatus | None:
        """The newest build that finished."""
        return next(self.generateFinishedBuilds(num_builds=1), None)

    def generateFinishedBuilds(
        self,
        branches: Iterable[str | None] = (),
        num_builds: int | None = None,
        max_buildnum: int | None = None,
        finished_before: float | None = None,
        results: Iterable[int] | None = None,
        max_search: int | None = 200,
        filter_fn: Callable[[BuildStatus], bool] | None = None,
    ) -> Iterator[BuildStatus]:
        """
        Finished builds, newest first, as 0.8 filtered them: on one of
        C{branches} (any if none; C{None} is the default branch), numbered
        at most C{max_buildnum}, finished before C{finished_before}, with
        one of C{results}, passing C{filter_fn}; at most C{num_builds} of
        them, among the newest C{max_search} (None: none, as in 0.8).
        """
        if max_search is None:
            return
        branches = set(branches)
        wanted = set(results) if results is not None else None
        got = 0
        for build in self.status.finished_builds(self, max_buildnum, max_search):
            if branches and not branches & self._getBuildBranches(build):
                continue
            if finished_before is not None and (build.finished or 0) >= finished_before:
                continue
            if wanted is not None and build.results not in wanted:
                continue
            if filter_fn is not None and not filter_fn(build):
                continue
            yield build
            got += 1
            if num_builds is not None and got >= num_builds:
                return

    @staticmethod
    def _getBuildBranches(build: BuildStatus) -> set[str | None]:
        """The branches of the build's source stamps (0.8's helper of the same name)."""
        return {ss.branch for ss in build.getSourceStamps()}

    def eventGenerator(
        self,
        branches: Iterable[str | None] = (),
        categories: Iterable[str] = (),
        committers: Iterable[str] = (),
        projects: Iterable[str] = (),
        minTime: float = 0,
    ) -> Iterator[Any]:
        """
        0.8's waterfall source: newest first, each build's started steps
        (last first, the builder's events between them by time) and then
        the build, down to builds started before C{minTime}; then the
        events left.  The filters are 0.8's.
        """
        branches, categories = set(branches), list(categories)
        committers, projects = list(committers), list(projects)
        index = -1
        event = self.getEvent(index)
        # The other filters read each build, down to the first if none
        # passes (as 0.8 read its pickles): pass a minTime.
        newest = self.getBuild(-1)
        if categories and not self.matchesAnyTag(categories):
            newest = None
        for number in range(newest.number if newest is not None else -1, -1, -1):
            build = self.getBuild(number)
            if build is None:
                break
            if (build.started or 0) < minTime:
                break
            if branches and not branches & self._getBuildBranches(build):
                continue
            if committers and not any(c.who in committers for c in build.getChanges()):
                continue
            if projects and build.getProperty("project") not in projects:
                continue
            for step in reversed(build.getSteps()):
                if step.started is None:
                    continue
                while event is not None and (event.started or 0) > step.started:
                    yield event
                    index -= 1
                    event = self.getEvent(index)
                yield step
            yield build
        while event is not None:
            yield event
            index -= 1
            event = self.getEvent(index)
            if event is not None and (event.started or 0) < minTime:
                break

    def getPendingBuildRequestStatuses(self) -> defer.Deferred[list[Any]]:
        """The requests for this builder not started yet (a Deferred, as in 0.8.x)."""
        return defer.succeed(self.getPendingBuilds())

    def getPendingBuilds(self) -> list[Any]:
        """0.8.0's name, which answered at once: the pending C{BuildRequestStatus}es."""
        return self.status.requests.of_builder(self)

    def subscribe(self, receiver: Any) -> None:
        """
        Deliver this builder's events (builds, requests, state) to
        C{receiver}, starting with its state: at once, or, while builds
        that ran before the service are being announced and none is
        current yet, once they are (see L{expect_build}).
        """
        self.watchers.append(receiver)
        if self._expected and not self._current:
            self._unstated.append(receiver)
        else:
            deliver(receiver, "builderChangedState", self.name, self.getState()[0])

    def unsubscribe(self, receiver: Any) -> None:
        super().unsubscribe(receiver)
        if receiver in self._unstated:
            self._unstated.remove(receiver)

    def _schedulers(self) -> list[str]:
        """The names of this master's schedulers that feed the builder."""
        schedulers = getattr(self.master.config, "schedulers", None) or {}
        return sorted(
            name
            for name, scheduler in schedulers.items()
            # (a renderable list names its builders only as it renders)
            if isinstance(names := getattr(scheduler, "builderNames", None), (list, tuple))
            and self.name in names
        )

    def asDict(self) -> dict[str, Any]:
        """As 0.8's JSON status gave it."""
        current = [b.number for b in self.getCurrentBuilds()]
        return {
            "basedir": os.path.basename(self.basedir),
            "category": self.category,
            "tags": self.tags,
            "slaves": self.slavenames,
            "schedulers": self._schedulers(),
            "cachedBuilds": current,
            "currentBuilds": current,
            "state": self.getState()[0],
            "pendingBuilds": len(self.getPendingBuilds()),
        }

    # Beyond 0.8: what the bridge uses

    def expect_build(self, buildid: int) -> None:
        """
        Build C{buildid}, which ran before the service started, is about to
        be announced: until it is current, or not expected any more, a
        new watcher hears no state.  A builder that runs a build is
        C{building} from its first word, not C{idle} until the bridge
        has caught up with the build.
        """
        self._expected.add(buildid)

    def forget_builds(self) -> None:
        """The service starts again: the builds it knew ran are found anew."""
        self._current.clear()
        self._expected.clear()

    def not_expected(self, buildid: int) -> None:
        """Build C{buildid} is current, or will not be: the waiting watchers hear the state."""
        self._expected.discard(buildid)
        self.announce_state()

    def build_started(self, build: BuildStatus) -> None:
        """A build of this builder is running; its watchers hear a new state."""
        self._current[build.number] = build
        self._expected.discard(build.buildid)
        self.announce_state()

    def build_finished(self, build: BuildStatus) -> None:
        """
        A build of this builder ended (L{announce_state} tells watchers,
        once they heard).  Until then the builder is still C{building},
        with the build no longer current, as 0.8's builder was while its
        watchers heard C{buildFinished}.
        """
        self._current.pop(build.number, None)
        self._ending = True

    def running_build(self, number: int) -> BuildStatus | None:
        return self._current.get(number)

    def announce_state(self) -> None:
        """
        C{builderChangedState} to the watchers, if the state changed, and
        to those that have heard none.  Nothing while a build is expected
        and none is current: C{idle} would leave the expected build out.
        """
        self._ending = False
        if self._expected and not self._current:
            return
        state = self.getState()[0]
        if state != self._state:
            self._state = state
            told = list(self.watchers)
        else:
            told = self._unstated
        self._unstated = []
        for w in told:
            deliver(w, "builderChangedState", self.name, state)
