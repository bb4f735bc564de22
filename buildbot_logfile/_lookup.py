"""
Finding builds, steps and logs by the names 0.8's URLs use, running or
finished, for the pages and for C{LegacyStatus.getLogFile}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from buildbot_logfile._builders import Builders
from buildbot_logfile._lru import LRU
from buildbot_logfile._mirror import MirrorRegistry
from buildbot_logfile._producer import ChunkConsumer
from buildbot_logfile.logfile import LogFile
from buildbot_logfile.status import BuilderStatus, BuildStatus, BuildStepStatus

# Finished builds kept in memory for lookups.
FINISHED_BUILDS_CACHE_SIZE = 64
# The log lists of finished steps kept in memory: final once every log is
# complete, and asked for by every page of one of the step's logs.
FINISHED_STEP_LOGS_CACHE_SIZE = 256

LogData = Mapping[str, Any]


class OpenLog(Protocol):
    """A log opened for the pages: its LogFile, and reading it whatever its spool does."""

    @property
    def logfile(self) -> LogFile | None: ...

    def stream(self, consumer: ChunkConsumer) -> None: ...

    async def text_bytes(self, start: int, limit: int) -> tuple[bytes, int, bool]: ...


class LogSource(Protocol):
    """What the pages need to find and open logs."""

    async def locate_build(self, builder_name: str, number: int) -> BuildStatus | None: ...

    async def locate_log(
        self, builder_name: str, number: int, step_name: str, log_name: str
    ) -> tuple[BuildStepStatus, LogData] | None: ...

    async def open_log(self, step: BuildStepStatus, log_data: LogData) -> OpenLog | None: ...

    async def step_logs(self, step: BuildStepStatus) -> list[LogData]: ...

    def builder_names(self) -> list[str]: ...

    async def locate_builder(self, builder_name: str) -> BuilderStatus | None: ...

    async def recent_builds(self, builder: BuilderStatus, limit: int) -> list[LogData]: ...


class Lookup:
    """Finds any build of the database by builder name and number (a L{LogSource})."""

    def __init__(self, master: Any, builders: Builders, mirrors: MirrorRegistry) -> None:
        self.master = master
        self.builders = builders
        self.mirrors = mirrors
        self._finished_builds: LRU[int, BuildStatus] = LRU(FINISHED_BUILDS_CACHE_SIZE)
        # (builderid, number) -> buildid of the builds ever cached: a few
        # integers a build.
        self._by_number: dict[tuple[int, int], int] = {}
        self._finished_step_logs: LRU[int, list[LogData]] = LRU(FINISHED_STEP_LOGS_CACHE_SIZE)

    def remember(self, build: BuildStatus) -> None:
        """A finished build the feed followed: lookups use the same objects."""
        self._finished_builds.put(build.buildid, build)
        self._by_number[(build.builder.builderid, build.number)] = build.buildid

    def cached_build(self, builderid: int, number: int) -> BuildStatus | None:
        """A finished build at hand, without asking the database."""
        buildid = self._by_number.get((builderid, number))
        return None if buildid is None else self._finished_builds.get(buildid)

    def builder_names(self) -> list[str]:
        """The builders of the cluster, by name."""
        return sorted(self.builders.running)

    async def locate_builder(self, builder_name: str) -> BuilderStatus | None:
        """A builder of the database by name, or None."""
        return await self.builders.named(builder_name)

    async def recent_builds(self, builder: BuilderStatus, limit: int) -> list[LogData]:
        """The data API's last C{limit} builds of C{builder}, newest first."""
        builds = await self.master.data.get(
            ("builders", builder.builderid, "builds"), order=["-number"], limit=limit
        )
        return list(builds or [])

    async def locate_build(self, builder_name: str, number: int) -> BuildStatus | None:
        """A build by builder name and number, running or finished, or None."""
        if not 0 <= number < 2**63:  # beyond what any database column holds
            return None
        builder = await self.builders.named(builder_name)
        if builder is None:
            return None
        build = builder.running_build(number) or self.cached_build(builder.builderid, number)
        if build is None:
            build = await self._load_build(builder, number)
        return build

    async def locate_log(
        self, builder_name: str, number: int, step_name: str, log_name: str
    ) -> tuple[BuildStepStatus, LogData] | None:
        """A log by the names 0.8's URLs use (a log's slug works too), or None."""
        build = await self.locate_build(builder_name, number)
        step = build.getStep(step_name) if build is not None else None
        if step is None:
            return None
        logs = await self.step_logs(step)
        for key in ("name", "slug"):
            for log_data in logs:
                if log_data[key] == log_name:
                    return step, log_data
        return None

    async def open_log(self, step: BuildStepStatus, log_data: LogData) -> OpenLog | None:
        """A log that L{locate_log} found, opened (None: HTML not yet complete)."""
        return await self.mirrors.open(step, log_data)

    async def step_logs(self, step: BuildStepStatus) -> list[LogData]:
        """The data API's description of a step's logs, in order."""
        if step.stepid is None:
            return []  # a step yet to start
        cached = self._finished_step_logs.get(step.stepid)
        if cached is not None:
            return list(cached)
        # Finished before the question: a log added as it finished is in the answer.
        finished = step.isFinished()
        logs = list(await self.master.data.get(("steps", step.stepid, "logs")) or [])
        if finished and all(log_data["complete"] for log_data in logs):
            self._finished_step_logs.put(step.stepid, list(logs))
        return logs

    async def get_logfile(
        self, builder_name: str, number: int, step_name: str, log_name: str
    ) -> LogFile | None:
        """
        The LogFile of a log by the names 0.8's URLs use, or None.  It
        holds at least every line the database had when asked: the mirror
        of a live log may still be reading them (as it is just after the
        service started).  The pages do not wait so: their producers
        follow the log.
        """
        found = await self.locate_log(builder_name, number, step_name, log_name)
        if found is None:
            return None
        step, log_data = found
        mirror = await self.mirrors.open(step, log_data)
        if mirror is None:
            return None
        await mirror.holding(log_data["num_lines"])
        return mirror.logfile

    async def _load_build(self, builder: BuilderStatus, number: int) -> BuildStatus | None:
        """
        A build the feed did not follow, from the database, with every
        log's spool file name assigned in 0.8's order.
        """
        data = self.master.data
        build_data = await data.get(("builders", builder.builderid, "builds", number))
        if build_data is None:
            return None
        cached = self._finished_builds.get(build_data["buildid"])
        if cached is not None:
            return cached
        build = BuildStatus(builder, number, build_data["buildid"])
        await build.refresh(build_data)
        if build_data["complete"]:
            build.mark_finished()
        for step_data in await data.get(("builds", build.buildid, "steps")) or []:
            step = BuildStepStatus.from_data(build, step_data)
            build.add_step(step)
            for log_data in await data.get(("steps", step.stepid, "logs")) or []:
                build.logfile_name_for(log_data["logid"], step.name, log_data["name"])
        if build.isFinished():
            self.remember(build)
        return build
