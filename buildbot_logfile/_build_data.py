"""
Reading what 0.8's status objects show of a build from the data API: the
one place a build's database rows become the values its C{BuildStatus}
answers with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from buildbot.data import resultspec
from buildbot.process.results import SUCCESS

from buildbot_logfile._built_changes import built_changes, read_built_changes
from buildbot_logfile._changes import SourceStamp
from buildbot_logfile._status_base import epoch


@dataclass
class BuildData:
    """A data-API build and what 0.8 showed with it."""

    build: Mapping[str, Any]
    properties: dict[str, tuple[Any, str]] = field(default_factory=dict)
    workername: str | None = None
    reason: str = ""
    sourcestamps: list[SourceStamp] = field(default_factory=list)
    buildsetid: int | None = None


# Builds whose durations make the estimate of the next one's.
ETA_BUILDS = 5


async def load_expectations(data: Any, builderid: int) -> tuple[float | None, dict[str, float]]:
    """
    What a new build of the builder is expected to take: the mean duration
    of its last L{ETA_BUILDS} successful builds, and each step's duration
    in the newest of them (None and none without a successful build).
    """
    builds = await data.get(
        ("builders", builderid, "builds"),
        filters=[
            resultspec.Filter("complete", "eq", [True]),
            resultspec.Filter("results", "eq", [SUCCESS]),
        ],
        order=["-number"],
        limit=ETA_BUILDS,
    ) or []  # fmt: skip
    durations = [
        epoch(b["complete_at"]) - epoch(b["started_at"])  # type: ignore[operator]
        for b in builds
        if b.get("complete_at") and b.get("started_at")
    ]
    if not durations:
        return None, {}
    steps = {}
    for step in await data.get(("builds", builds[0]["buildid"], "steps")) or []:
        if step.get("complete_at") and step.get("started_at"):
            steps[step["name"]] = epoch(step["complete_at"]) - epoch(step["started_at"])  # type: ignore[operator]
    return sum(durations) / len(durations), steps


async def load_build_data(data: Any, build: Mapping[str, Any]) -> BuildData:
    """
    C{build} (a data-API build, or an mq message about one) with its
    properties, worker, reason (its buildset's), and the source stamps it
    was built from, each with the changes it built (see L{_built_changes}).
    """
    found = BuildData(build)
    found.properties = dict(await data.get(("builds", build["buildid"], "properties")) or {})
    if build.get("workerid") is not None:
        worker = await data.get(("workers", build["workerid"]))
        found.workername = worker["name"] if worker else None
    request = await data.get(("buildrequests", build["buildrequestid"]))
    if request is not None:
        buildset = await data.get(("buildsets", request["buildsetid"])) or {}
        found.buildsetid = request["buildsetid"]
        found.reason = buildset.get("reason") or ""
        master = data.master
        which = (build["builderid"], build["number"], request["buildsetid"])
        for ss in buildset.get("sourcestamps") or []:
            changes = await master.db.pool.do(
                lambda conn, ssid=ss["ssid"]: read_built_changes(conn, master.db.model, which, ssid)
            )
            found.sourcestamps.append(
                SourceStamp.from_data(ss, built_changes(changes, found.properties, master.config))
            )
    return found
