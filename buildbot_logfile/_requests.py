"""
Build requests, buildsets and changes as 0.8 status receivers heard of
them: C{BuildRequestStatus}, C{BuildSetStatus}, and the events
C{requestSubmitted}, C{requestCancelled}, C{buildsetSubmitted} and
C{changeAdded}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from buildbot.data import resultspec
from twisted.internet import defer

from buildbot_logfile._changes import LegacyChange, SourceStamp
from buildbot_logfile._delivery import deliver
from buildbot_logfile._lru import LRU
from buildbot_logfile._status_base import Finishes, epoch

if TYPE_CHECKING:
    from buildbot_logfile._build_status import BuildStatus
    from buildbot_logfile._builder_status import BuilderStatus


class BuildRequestStatus:
    """
    0.8's C{BuildRequestStatus}: a request for a build on one builder.  As
    in 0.8.x, what needed the database answers with a Deferred.
    """

    def __init__(self, status: Any, request: Mapping[str, Any], builder: BuilderStatus) -> None:
        self.status = status
        self.brid = request["buildrequestid"]
        self.bsid = request["buildsetid"]
        self.builder = builder
        self.submitted_at = epoch(request.get("submitted_at"))
        self.properties: dict[str, Any] = dict(request.get("properties") or {})
        self.sourcestamps: list[SourceStamp] = []
        self.watchers: list[Any] = []

    def getBuilderName(self) -> str:
        return self.builder.name

    def getBsid(self) -> int:
        return int(self.bsid)

    def getSubmitTime(self) -> defer.Deferred[float | None]:
        return defer.succeed(self.submitted_at)

    def getSourceStamp(self) -> defer.Deferred[SourceStamp | None]:
        return defer.succeed(self.sourcestamps[0] if self.sourcestamps else None)

    def getSourceStamps(self) -> defer.Deferred[list[SourceStamp]]:
        return defer.succeed(list(self.sourcestamps))

    def getBuildProperties(self) -> defer.Deferred[dict[str, Any]]:
        return defer.succeed(dict(self.properties))

    def getBuilds(self) -> defer.Deferred[list[BuildStatus]]:
        """The builds that ran (or run) for this request."""
        return defer.succeed(
            [b for b in self.builder.getCurrentBuilds() if b.buildrequestid == self.brid]
        )

    def subscribe(self, observer: Any) -> None:
        """0.8 told observers of each build started for the request; accepted, not told."""
        self.watchers.append(observer)

    def unsubscribe(self, observer: Any) -> None:
        if observer in self.watchers:
            self.watchers.remove(observer)

    def asDict(self) -> dict[str, Any]:
        """As 0.8's JSON status gave it."""
        source = self.sourcestamps[0].asDict() if self.sourcestamps else None
        return {
            "source": source,
            "builderName": self.builder.name,
            "submittedAt": self.submitted_at,
        }

    def asDict_async(self) -> defer.Deferred[dict[str, Any]]:
        return defer.succeed(self.asDict())


class BuildSetStatus(Finishes):
    """0.8's C{BuildSetStatus}: the builds asked for together."""

    def __init__(self, status: Any, buildset: Mapping[str, Any]) -> None:
        super().__init__()
        self.status = status
        self.bsid = buildset["bsid"]
        self.reason = buildset.get("reason") or ""
        self.submitted_at = epoch(buildset.get("submitted_at"))
        self.results: int | None = buildset.get("results")
        self.requests: list[BuildRequestStatus] = []
        self.sourcestamps: list[SourceStamp] = []
        if buildset.get("complete"):
            self.mark_finished()

    def getID(self) -> int:
        return int(self.bsid)

    def getReason(self) -> str:
        return self.reason

    def getResults(self) -> int | None:
        return self.results

    def getSourceStamps(self) -> list[SourceStamp]:
        return list(self.sourcestamps)

    def getBuilderNames(self) -> defer.Deferred[list[str]]:
        return defer.succeed(sorted({r.getBuilderName() for r in self.requests}))

    def getBuildRequests(self) -> defer.Deferred[list[BuildRequestStatus]]:
        return defer.succeed(list(self.requests))

    def finished(self, results: int | None) -> None:
        self.results = results
        self.mark_finished()

    def asDict(self) -> dict[str, Any]:
        return {
            "bsid": self.bsid,
            "reason": self.reason,
            "submittedAt": self.submitted_at,
            "results": self.results,
            "complete": self.isFinished(),
            "sourceStamps": [ss.asDict() for ss in self.sourcestamps],
        }


class Requests:
    """
    The build requests and buildsets not complete yet, from the database at
    start and from events after; the 0.8 C{Status} and builders' watchers
    hear of them.
    """

    def __init__(self, status: Any) -> None:
        self.status = status
        self.pending: dict[int, BuildRequestStatus] = {}
        self._left: LRU[int, BuildRequestStatus] = LRU(256)
        self.buildsets: dict[int, BuildSetStatus] = {}

    @property
    def data(self) -> Any:
        return self.status.master.data

    async def load(self) -> None:
        incomplete = [resultspec.Filter("complete", "eq", [False])]
        for buildset in await self.data.get(("buildsets",), filters=incomplete) or []:
            await self._buildset(buildset)
        for request in await self.data.get(("buildrequests",), filters=incomplete) or []:
            if not request.get("claimed"):
                await self._request(request)

    async def buildset_event(self, kind: str, buildset: Mapping[str, Any]) -> None:
        if kind == "new":
            bs = await self._buildset(buildset)
            for w in list(self.status.watchers):
                deliver(w, "buildsetSubmitted", bs)
        elif kind == "complete":
            finished = self.buildsets.pop(buildset["bsid"], None)
            if finished is not None:
                finished.finished(buildset.get("results"))

    async def request_event(self, kind: str, brid: int, request: Any) -> None:
        """
        An mq event about build request C{brid}.  Buildbot cancels a request
        by claiming it, completing it, then saying C{cancel} (with a
        database model, not a dict): the request is remembered a while
        after it left the pending ones, for that.
        """
        if kind == "new":
            found = await self._request(request)
            if found is not None:
                for w in list(found.builder.watchers):
                    deliver(w, "requestSubmitted", found)
        elif kind in ("claimed", "complete"):
            gone = self.pending.pop(brid, None)
            if gone is not None:
                self._left.put(brid, gone)
        elif kind == "cancel":
            cancelled = self.pending.pop(brid, None) or self._left.get(brid)
            if cancelled is not None:
                for w in list(cancelled.builder.watchers):
                    deliver(w, "requestCancelled", cancelled.builder, cancelled)
        elif kind == "unclaimed":
            await self._request(request)

    async def change_event(self, change: Mapping[str, Any]) -> None:
        legacy = LegacyChange.from_data(change)
        for w in list(self.status.watchers):
            deliver(w, "changeAdded", legacy)

    def of_builder(self, builder: BuilderStatus) -> list[BuildRequestStatus]:
        return sorted(
            (r for r in self.pending.values() if r.builder is builder), key=lambda r: r.brid
        )

    async def _buildset(self, buildset: Mapping[str, Any]) -> BuildSetStatus:
        bs = self.buildsets.get(buildset["bsid"])
        if bs is None:
            bs = self.buildsets[buildset["bsid"]] = BuildSetStatus(self.status, buildset)
            for ss in buildset.get("sourcestamps") or []:
                changes = await self.data.get(("sourcestamps", ss["ssid"], "changes")) or []
                bs.sourcestamps.append(
                    SourceStamp.from_data(ss, [LegacyChange.from_data(c) for c in changes])
                )
        return bs

    async def _request(self, request: Mapping[str, Any]) -> BuildRequestStatus | None:
        builder = await self.status.builders.by_id(request["builderid"])
        if builder is None:
            return None
        found = BuildRequestStatus(self.status, request, builder)
        bs = self.buildsets.get(request["buildsetid"])
        if bs is None:
            buildset = await self.data.get(("buildsets", request["buildsetid"]))
            bs = await self._buildset(buildset) if buildset else None
        if bs is not None:
            found.sourcestamps = list(bs.sourcestamps)
            bs.requests.append(found)
        self.pending[found.brid] = found
        return found
