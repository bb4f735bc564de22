"""
The builders of the 0.8 C{Status}: those the cluster runs (this master or
any other sharing its database), announced to status receivers as they
come and go, and any other builder of the database, found by name for
lookups.  A 0.8 receiver on any master hears every build of the cluster,
so it is told of every builder those builds belong to; one that leaves a
master but still runs on another has not left.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from buildbot_logfile._delivery import deliver
from buildbot_logfile.status import BuilderStatus


class Builders:
    """
    The master's builders as L{BuilderStatus} objects.  C{status} is the
    0.8 C{Status}: its C{watchers} hear of builders added and removed.
    """

    def __init__(self, status: Any) -> None:
        self.status = status
        self.running: dict[str, BuilderStatus] = {}

    @property
    def master(self) -> Any:
        return self.status.master

    async def load(self) -> None:
        """The builders some master of the cluster runs now."""
        for data in await self.master.data.get(("builders",)):
            if data["masterids"]:
                self.add(data)

    async def load_configured(self, builders: list[Any]) -> None:
        """The builders of this master's config, before the master runs them."""
        for config in builders:
            builderid = await self.master.data.updates.findBuilderId(config.name)
            self.add({"name": config.name, "builderid": builderid, "tags": config.tags or []})

    def add(self, data: Mapping[str, Any]) -> BuilderStatus:
        """A builder the cluster runs, from the data API; new ones are announced."""
        builder = self.running.get(data["name"])
        if builder is None:
            builder = self.running[data["name"]] = BuilderStatus.from_data(self.status, data)
            for w in list(self.status.watchers):
                self.announce(w, builder)
        return builder

    async def started(self, builderid: int) -> None:
        """A builder started on a master."""
        data = await self.master.data.get(("builders", builderid))
        if data is not None:
            self.add(data)

    async def stopped(self, builderid: int, name: str) -> None:
        """A builder left a master: removed once no master runs it."""
        data = await self.master.data.get(("builders", builderid))
        if data is not None and data["masterids"]:
            return
        if self.running.pop(name, None) is not None:
            for w in list(self.status.watchers):
                deliver(w, "builderRemoved", name)

    @staticmethod
    def announce(target: Any, builder: BuilderStatus) -> None:
        """C{builderAdded}, and a subscription to the receiver it returns."""
        returned = deliver(target, "builderAdded", builder.name, builder)
        if returned:
            builder.subscribe(returned)

    async def named(self, name: str) -> BuilderStatus | None:
        """
        A builder by name: one this master runs, or else one of the
        database, known for lookups and announced to no one.
        """
        builder = self.running.get(name)
        if builder is None:
            data = await self.master.data.get(("builders", name))
            # The data API reads a name of digits as a builder id: only the
            # builder of that very name will do.
            if data is None or data["name"] != name:
                return None
            builder = BuilderStatus.from_data(self.status, data)
        return builder

    async def by_id(self, builderid: int) -> BuilderStatus | None:
        """A builder by id; one not yet known is added as this master's."""
        for builder in self.running.values():
            if builder.builderid == builderid:
                return builder
        data = await self.master.data.get(("builders", builderid))
        return None if data is None else self.add(data)
