"""
Workers as 0.8 called them, slaves: C{SlaveStatus}, and the events of
their coming and going.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from buildbot_logfile._delivery import deliver, each_watcher
from buildbot_logfile.interfaces import ISlaveStatus

if TYPE_CHECKING:
    from buildbot_logfile._build_status import BuildStatus


@implementer(ISlaveStatus)
class SlaveStatus:
    """0.8's C{SlaveStatus}: one worker, filled from data-API workers."""

    def __init__(self, status: Any, name: str, workerid: int) -> None:
        self.status = status
        self.name = name
        self.workerid = workerid
        self.info: dict[str, Any] = {}
        self.connected = False
        self.paused = False
        self.graceful = False
        self.builderids: set[int] = set()
        self.last_message: float | None = None

    def update(self, worker: Mapping[str, Any], now: float) -> None:
        """Take what a data-API worker says; a connection counts as a message."""
        connected = bool(worker.get("connected_to"))
        if connected and not self.connected:
            self.last_message = now
        self.connected = connected
        self.info = dict(worker.get("workerinfo") or {})
        self.paused = bool(worker.get("paused"))
        self.graceful = bool(worker.get("graceful"))
        self.builderids = {c["builderid"] for c in worker.get("configured_on") or []}

    def getName(self) -> str:
        return self.name

    def getAdmin(self) -> str | None:
        return self.info.get("admin")

    def getHost(self) -> str | None:
        return self.info.get("host")

    def getAccessURI(self) -> str | None:
        return self.info.get("access_uri")

    def getVersion(self) -> str | None:
        return self.info.get("version")

    def isConnected(self) -> bool:
        """Connected to a master of the cluster."""
        return self.connected

    def isPaused(self) -> bool:
        return self.paused

    def getGraceful(self) -> bool:
        return self.graceful

    def lastMessageReceived(self) -> float | None:
        """When the worker last connected (Buildbot 4 does not track each message)."""
        return self.last_message

    def getRunningBuilds(self) -> list[BuildStatus]:
        return [
            build
            for builder in self.status.builders.running.values()
            for build in builder.getCurrentBuilds()
            if build.getWorkername() == self.name
        ]

    def asDict(self, *, running: list[BuildStatus] | None = None) -> dict[str, Any]:
        """
        As 0.8's JSON status gave it.  C{running}: the running builds it
        shows, if not all of them (the JSON pages show those the user may
        view).
        """
        if running is None:
            running = self.getRunningBuilds()
        return {
            "name": self.name,
            "admin": self.getAdmin(),
            "host": self.getHost(),
            "access_uri": self.getAccessURI(),
            "version": self.getVersion(),
            "connected": self.isConnected(),
            "runningBuilds": [b.asDict() for b in running],
            "info": dict(self.info),
            "paused": self.paused,
        }


class Workers:
    """The cluster's workers as L{SlaveStatus} objects; the 0.8 C{Status}'s watchers hear them."""

    def __init__(self, status: Any) -> None:
        self.status = status
        self.by_name: dict[str, SlaveStatus] = {}

    async def load(self) -> None:
        for worker in await self.status.master.data.get(("workers",)) or []:
            self._update(worker)

    def _update(self, worker: Mapping[str, Any]) -> SlaveStatus:
        slave = self.by_name.get(worker["name"])
        if slave is None:
            slave = self.by_name[worker["name"]] = SlaveStatus(
                self.status, worker["name"], worker["workerid"]
            )
        slave.update(worker, self.status.master.reactor.seconds())
        return slave

    def event(self, kind: str, worker: Mapping[str, Any]) -> None:
        """An mq event about a worker: 0.8's slave events, and builders' states."""
        slave = self.by_name.get(worker["name"])
        was = (slave.connected, slave.paused) if slave is not None else (False, False)
        builderids = set(slave.builderids) if slave is not None else set()
        slave = self._update(worker)
        builderids |= slave.builderids
        events = []
        if slave.connected != was[0]:
            events.append("slaveConnected" if slave.connected else "slaveDisconnected")
            for builder in self.status.builders.running.values():
                if builder.builderid in builderids:
                    builder.addPointEvent(
                        ["connect" if slave.connected else "disconnect", slave.name]
                    )
        if slave.paused != was[1]:
            events.append("slavePaused" if slave.paused else "slaveUnpaused")
        for name in events:
            for w in each_watcher(self.status.watchers):
                deliver(w, name, slave.name)
        for builder in self.status.builders.running.values():
            if builder.builderid in builderids:
                builder.announce_state()

    def of_builder(self, builderid: int, name: str) -> list[SlaveStatus]:
        """
        The builder's workers, in the order of its C{workernames} in this
        master's config, as 0.8 listed them; others (of other masters) by name.
        """
        configured: list[str] = next(
            (b.workernames for b in self.status.master.config.builders if b.name == name), []
        )
        order = {worker: i for i, worker in enumerate(configured)}
        return sorted(
            (s for s in self.by_name.values() if builderid in s.builderids),
            key=lambda s: (order.get(s.name, len(order)), s.name),
        )
