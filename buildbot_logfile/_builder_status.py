"""0.8's C{BuilderStatus}."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from buildbot_logfile._delivery import deliver
from buildbot_logfile._status_base import Watched, builder_dirname

if TYPE_CHECKING:
    from buildbot_logfile._build_status import BuildStatus


class BuilderStatus(Watched):
    """
    One builder, with its spool directory (C{basedir}).  C{status} is the
    0.8 C{Status} (L{LegacyStatus}); it finds builds the builder no longer
    runs (see L{getBuild}).
    """

    def __init__(self, status: Any, name: str, builderid: int, tags: list[str]) -> None:
        super().__init__()
        self.status = status
        self.master = status.master
        self.name = name
        self.builderid = builderid
        self.tags = list(tags)
        self.basedir = os.path.join(status.spool_dir, builder_dirname(name))
        self._current: dict[int, BuildStatus] = {}
        self._state: str | None = None

    @classmethod
    def from_data(cls, status: Any, builder: Mapping[str, Any]) -> BuilderStatus:
        """A builder of the 0.8 C{status} from a data-API builder."""
        return cls(status, builder["name"], builder["builderid"], builder.get("tags") or [])

    def getName(self) -> str:
        return self.name

    def getTags(self) -> list[str]:
        return self.tags

    def getCategory(self) -> str | None:
        """0.8.0-0.8.9's category: the builder's first tag."""
        return self.tags[0] if self.tags else None

    @property
    def category(self) -> str | None:
        return self.getCategory()

    def matchesAnyTag(self, tags: Iterable[str]) -> bool:
        return bool(set(tags) & set(self.tags))

    def getState(self) -> tuple[str, list[BuildStatus]]:
        """0.8's C{(state, current builds)}: C{"building"} or C{"idle"}."""
        builds = self.getCurrentBuilds()
        return ("building" if builds else "idle", builds)

    def getCurrentBuilds(self) -> list[BuildStatus]:
        return sorted(self._current.values(), key=lambda b: b.number)

    @property
    def currentBuilds(self) -> list[BuildStatus]:
        """0.8's attribute: the running builds, a list."""
        return self.getCurrentBuilds()

    def getBuild(self, number: int) -> BuildStatus | None:
        """A running build, or one the lookups have at hand."""
        build = self._current.get(number)
        if build is None:
            build = self.status.cached_build(self, number)
        return build

    def subscribe(self, receiver: Any) -> None:
        """Deliver this builder's events to C{receiver}, starting with its state."""
        self.watchers.append(receiver)
        deliver(receiver, "builderChangedState", self.name, self.getState()[0])

    def asDict(self) -> dict[str, Any]:
        """As 0.8's JSON status gave it."""
        current = [b.number for b in self.getCurrentBuilds()]
        return {
            "basedir": os.path.basename(self.basedir),
            "category": self.category,
            "tags": self.tags,
            "slaves": [],
            "schedulers": [],
            "cachedBuilds": current,
            "currentBuilds": current,
            "state": self.getState()[0],
            "pendingBuilds": 0,
        }

    # Beyond 0.8: what the bridge uses

    def build_started(self, build: BuildStatus) -> None:
        """A build of this builder is running; its watchers hear a new state."""
        self._current[build.number] = build
        self.announce_state()

    def build_finished(self, build: BuildStatus) -> None:
        """A build of this builder ended (L{announce_state} tells watchers, once they heard)."""
        self._current.pop(build.number, None)

    def running_build(self, number: int) -> BuildStatus | None:
        return self._current.get(number)

    def announce_state(self) -> None:
        """C{builderChangedState} to the watchers, if the state changed."""
        state = self.getState()[0]
        if state != self._state:
            self._state = state
            for w in list(self.watchers):
                deliver(w, "builderChangedState", self.name, state)
