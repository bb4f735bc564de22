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

from buildbot_logfile._delivery import deliver, each_watcher
from buildbot_logfile.status import BuilderStatus

# The build id a builder expects until the builds that ran before the
# service have been looked for (build ids are positive).
UNKNOWN_BUILDS = -1


class Builders:
    """
    The master's builders as L{BuilderStatus} objects.  C{status} is the
    0.8 C{Status}: its C{watchers} hear of builders added and removed.
    """

    def __init__(self, status: Any) -> None:
        self.status = status
        self.running: dict[str, BuilderStatus] = {}
        # Builds that ran before the service, expected by builders not yet
        # added (see expect_build): builder id -> build ids.
        self._expected: dict[int, set[int]] = {}
        # Until the feed has looked for the builds that ran before the
        # service (see settle), no builder can say whether it runs one.
        self._settled = False

    @property
    def master(self) -> Any:
        return self.status.master

    async def load(self) -> None:
        """The builders some master of the cluster runs now."""
        for data in await self.master.data.get(("builders",)):
            if data["masterids"]:
                self.add(data)

    async def load_configured(self, builders: list[Any]) -> None:
        """
        The builders of this master's config, before the master runs them;
        those known already take its tags and description, as 0.8's
        reconfig set them (the database may not have them yet).
        """
        for config in builders:
            known = self.running.get(config.name)
            if known is not None:
                known.tags = list(config.tags or []) or None
                known.description = config.description
                continue
            builderid = await self.master.data.updates.findBuilderId(config.name)
            self.add({
                "name": config.name, "builderid": builderid,
                "tags": config.tags or [], "description": config.description,
            })  # fmt: skip

    def add(self, data: Mapping[str, Any]) -> BuilderStatus:
        """A builder the cluster runs, from the data API; new ones are announced."""
        builder = self.running.get(data["name"])
        if builder is None:
            builder = self.running[data["name"]] = BuilderStatus.from_data(self.status, data)
            for buildid in self._expected.pop(builder.builderid, ()):
                builder.expect_build(buildid)
            if not self._settled:
                builder.expect_build(UNKNOWN_BUILDS)
            for w in each_watcher(self.status.watchers):
                self.announce(w, builder)
        return builder

    async def started(self, builderid: int) -> None:
        """A builder started on a master."""
        data = await self.master.data.get(("builders", builderid))
        if data is not None:
            self.add(data)

    async def stopped(self, builderid: int, name: str) -> None:
        """
        A builder left a master: removed once no master runs it, unless
        this master is stopping (or was taken for dead).  0.8 told its
        receivers of no builder removed as its master stopped: the builders
        are not gone, and a receiver that forgets a removed builder (a
        dashboard's) would forget them all at every restart.
        """
        data = await self.master.data.get(("builders", builderid))
        if data is not None and data["masterids"]:
            return
        own = await self.master.data.get(("masters", self.master.masterid))
        if own is None or not own["active"]:
            return
        if self.running.pop(name, None) is not None:
            for w in each_watcher(self.status.watchers):
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
        builder = self._running_by_id(builderid)
        if builder is not None:
            return builder
        data = await self.master.data.get(("builders", builderid))
        return None if data is None else self.add(data)

    def _running_by_id(self, builderid: int) -> BuilderStatus | None:
        for builder in self.running.values():
            if builder.builderid == builderid:
                return builder
        return None

    def expect_build(self, builderid: int, buildid: int) -> None:
        """
        Build C{buildid}, which ran before the service started, is about to
        be announced (see L{BuilderStatus.expect_build}), by its builder
        now or as soon as it is added.
        """
        builder = self._running_by_id(builderid)
        if builder is not None:
            builder.expect_build(buildid)
        else:
            self._expected.setdefault(builderid, set()).add(buildid)

    def unsettle(self) -> None:
        """
        The service starts (again): until the feed has looked for the builds
        that run, no builder says its state, and none holds a build from
        before (see L{settle}).
        """
        self._settled = False
        self._expected.clear()
        for builder in self.running.values():
            builder.forget_builds()
            builder.expect_build(UNKNOWN_BUILDS)

    def settle(self) -> None:
        """
        The builds that ran before the service are known, and each is
        expected by its builder: a builder that expects none says its
        state to the watchers that wait for it.
        """
        self._settled = True
        for builder in list(self.running.values()):
            builder.not_expected(UNKNOWN_BUILDS)

    def not_expected(self, builderid: int, buildid: int) -> None:
        """Build C{buildid} has been announced, or will not be."""
        builder = self._running_by_id(builderid)
        if builder is not None:
            builder.not_expected(buildid)
        expected = self._expected.get(builderid)
        if expected is not None:
            expected.discard(buildid)
            if not expected:
                del self._expected[builderid]
