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
from buildbot.process.properties import Properties
from buildbot.util.twisted import async_to_deferred
from twisted.internet import defer
from twisted.python import log
from zope.interface import implementer

from buildbot_logfile._built_changes import built_changes, read_requested_changes
from buildbot_logfile._changes import LegacyChange, SourceStamp
from buildbot_logfile._delivery import deliver, each_watcher
from buildbot_logfile._lru import LRU
from buildbot_logfile._status_base import Finishes, as_datetime, epoch, legacy_results
from buildbot_logfile.interfaces import IBuildRequestStatus, IBuildSetStatus

if TYPE_CHECKING:
    from buildbot_logfile._build_status import BuildStatus
    from buildbot_logfile._builder_status import BuilderStatus


def _number(build: Mapping[str, Any]) -> int:
    return int(build["number"])


@implementer(IBuildRequestStatus)
class BuildRequestStatus:
    """
    0.8's C{BuildRequestStatus}: a request for a build on one builder.  As
    in 0.8.x, what needed the database answers with a Deferred.  Its source
    stamps and properties are its buildset's, as 0.8's C{BuildRequest}
    took them.
    """

    def __init__(
        self,
        status: Any,
        request: Mapping[str, Any],
        builder: BuilderStatus,
        buildset: BuildSetStatus | None = None,
    ) -> None:
        self.status = status
        self.brid = request["buildrequestid"]
        self.bsid = request["buildsetid"]
        self.builder = builder
        self.buildset = buildset
        self.submitted_at = epoch(request.get("submitted_at"))
        self.watchers: list[Any] = []

    @property
    def sourcestamps(self) -> list[SourceStamp]:
        return list(self.buildset.sourcestamps) if self.buildset is not None else []

    def getBuilderName(self) -> str:
        return self.builder.name

    def getBsid(self) -> defer.Deferred[int]:
        return defer.succeed(int(self.bsid))

    def getSubmitTime(self) -> defer.Deferred[float | None]:
        return defer.succeed(self.submitted_at)

    def getSourceStamp(self) -> defer.Deferred[SourceStamp | None]:
        stamps = self.sourcestamps
        return defer.succeed(stamps[0] if stamps else None)

    def getSourceStamps(self) -> defer.Deferred[list[SourceStamp]]:
        return defer.succeed(self.sourcestamps)

    def getBuildProperties(self) -> defer.Deferred[Properties]:
        """The buildset's properties, as 0.8's C{BuildRequest.properties} held them."""
        if self.buildset is None:
            return defer.succeed(Properties())
        return self.buildset.properties()

    @async_to_deferred
    async def getBuilds(self) -> list[BuildStatus]:
        """The builds that ran (or run) for this request, oldest first."""
        found = await self.status.master.data.get(("buildrequests", self.brid, "builds"))
        builds = (self.builder.getBuild(b["number"]) for b in sorted(found or [], key=_number))
        return [b for b in builds if b is not None]

    def subscribe(self, observer: Any) -> None:
        """
        Call C{observer(build)} for each build started for this request, as
        0.8 did: those that started already, then each new one (a request
        whose build was interrupted gets another).
        """
        self.watchers.append(observer)
        watch = self.status.requests.observe(self.brid, observer)

        def tell(builds: list[BuildStatus]) -> None:
            for build in builds:
                watch.tell(build)

        self.getBuilds().addCallback(tell).addErrback(
            log.err, f"LegacyStatus: the builds of build request {self.brid}"
        )

    def unsubscribe(self, observer: Any) -> None:
        if observer in self.watchers:
            self.watchers.remove(observer)
        self.status.requests.unobserve(self.brid, observer)

    def asDict(self) -> dict[str, Any]:
        """As 0.8's JSON status gave it."""
        stamps = self.sourcestamps
        source = stamps[0].asDict() if stamps else None
        return {
            "source": source,
            "builderName": self.builder.name,
            "submittedAt": self.submitted_at,
        }

    @async_to_deferred
    async def asDict_async(self) -> dict[str, Any]:
        """0.8.14's: with its properties (as a list) and builds, read from the database."""
        result = self.asDict()
        result["properties"] = (await self.getBuildProperties()).asList()
        result["builds"] = [build.asDict() for build in await self.getBuilds()]
        return result


@implementer(IBuildSetStatus)
class BuildSetStatus(Finishes):
    """
    0.8's C{BuildSetStatus}: the builds asked for together.  Its builder
    names and requests come from the database when asked for, as in 0.8:
    at C{buildsetSubmitted} the requests are there, though their own
    events come after.
    """

    def __init__(self, status: Any, buildset: Mapping[str, Any]) -> None:
        super().__init__()
        self.status = status
        self.bsid = buildset["bsid"]
        self.external_idstring: str | None = buildset.get("external_idstring")
        self.reason = buildset.get("reason") or ""
        self.submitted_at = epoch(buildset.get("submitted_at"))
        self.complete_at = epoch(buildset.get("complete_at"))
        # -1 until the buildset completes, as 0.8's database had it (and
        # Buildbot 4's has; its message of a new buildset has none).
        self.results: int | None = -1
        self.sourcestamps: list[SourceStamp] = []
        self._properties: Properties | None = None
        # Waiting for the source stamps to be read (see Requests._buildset).
        self._loading: list[defer.Deferred[None]] | None = []
        if buildset.get("complete"):
            self.finished(buildset.get("results"), self.complete_at)

    def getID(self) -> str | None:
        """The buildset's external id string (the id a try job gave it), or None."""
        return self.external_idstring

    def getReason(self) -> str:
        return self.reason

    def getResults(self) -> int | None:
        return self.results

    def getSourceStamps(self) -> list[SourceStamp]:
        return list(self.sourcestamps)

    def getBuilderNames(self) -> defer.Deferred[list[str]]:
        """The builders of its requests, sorted, once for each request, as 0.8 listed them."""
        return self.getBuildRequests().addCallback(
            lambda requests: sorted(r.getBuilderName() for r in requests)
        )

    def getBuildRequests(self) -> defer.Deferred[list[BuildRequestStatus]]:
        return defer.ensureDeferred(self.status.requests.of_buildset(self))

    def getBuilderNamesAndBuildRequests(self) -> defer.Deferred[dict[str, BuildRequestStatus]]:
        """0.8's undocumented C{{builder name: request}}."""
        return self.getBuildRequests().addCallback(
            lambda requests: {r.getBuilderName(): r for r in requests}
        )

    def properties(self) -> defer.Deferred[Properties]:
        """Its properties (read once): those of its requests, as 0.8 gave them."""
        if self._properties is not None:
            return defer.succeed(self._properties)
        d = defer.ensureDeferred(self.status.requests.buildset_properties(self.bsid))

        def keep(properties: Properties) -> Properties:
            self._properties = properties
            return properties

        return d.addCallback(keep)

    def finished(self, results: int | None, complete_at: float | None) -> None:
        self.results = legacy_results(results)
        self.complete_at = complete_at
        self.mark_finished()

    def when_loaded(self) -> defer.Deferred[None]:
        """Fires once the source stamps have been read (or reading them failed)."""
        if self._loading is None:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._loading.append(d)
        return d

    def loaded(self) -> None:
        waiting, self._loading = self._loading or [], None
        for d in waiting:
            d.callback(None)

    def asDict(self) -> dict[str, Any]:
        """0.8.14's: its database row, times as C{str} of a UTC datetime; and its source stamps."""
        return {
            "bsid": self.bsid,
            "external_idstring": self.external_idstring,
            "reason": self.reason,
            "submitted_at": str(as_datetime(self.submitted_at)),
            "complete": self.isFinished(),
            "complete_at": str(as_datetime(self.complete_at)) if self.complete_at else None,
            "results": self.results,
            "sourceStamps": [ss.asDict() for ss in self.sourcestamps],
        }


class _RequestObserver:
    """
    One C{BuildRequestStatus.subscribe} observer: told of each build once,
    whether it heard of it from the database (a build that started before)
    or from the build's start.
    """

    def __init__(self, observer: Any) -> None:
        self.observer = observer
        self.active = True
        self.told: set[int] = set()

    def tell(self, build: BuildStatus) -> None:
        if self.active and build.buildid not in self.told:
            self.told.add(build.buildid)
            deliver(self.observer, "__call__", build)


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
        # BuildRequestStatus observers, by request: told of each build started for it.
        self.observers: dict[int, list[_RequestObserver]] = {}

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
            for w in each_watcher(self.status.watchers):
                deliver(w, "buildsetSubmitted", bs)
        elif kind == "complete":
            finished = self.buildsets.pop(buildset["bsid"], None)
            if finished is not None:
                finished.finished(buildset.get("results"), epoch(buildset.get("complete_at")))

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
                for w in each_watcher(found.builder.watchers):
                    deliver(w, "requestSubmitted", found)
        elif kind in ("claimed", "complete"):
            gone = self.pending.pop(brid, None)
            if gone is not None:
                self._left.put(brid, gone)
            if kind == "complete":
                # No build starts for a complete request: its observers are done.
                for watch in self.observers.pop(brid, []):
                    watch.active = False
        elif kind == "cancel":
            cancelled = self.pending.pop(brid, None) or self._left.get(brid)
            if cancelled is not None:
                for w in each_watcher(cancelled.builder.watchers):
                    deliver(w, "requestCancelled", cancelled.builder, cancelled)
        elif kind == "unclaimed":
            await self._request(request)

    async def change_event(self, change: Mapping[str, Any]) -> None:
        legacy = LegacyChange.from_data(change)
        for w in each_watcher(self.status.watchers):
            deliver(w, "changeAdded", legacy)

    def observe(self, brid: int, observer: Any) -> _RequestObserver:
        watch = _RequestObserver(observer)
        self.observers.setdefault(brid, []).append(watch)
        return watch

    def unobserve(self, brid: int, observer: Any) -> None:
        watches = self.observers.get(brid, [])
        for watch in [w for w in watches if w.observer == observer]:
            watch.active = False
            watches.remove(watch)
        if not watches:
            self.observers.pop(brid, None)

    def build_started(self, build: BuildStatus) -> None:
        """Tell the observers of the build's request (0.8's C{BuildRequestStatus.subscribe})."""
        if build.buildrequestid is None:
            return
        for watch in list(self.observers.get(build.buildrequestid, [])):
            watch.tell(build)

    def of_builder(self, builder: BuilderStatus) -> list[BuildRequestStatus]:
        return sorted(
            (r for r in self.pending.values() if r.builder is builder), key=lambda r: r.brid
        )

    async def of_buildset(self, bs: BuildSetStatus) -> list[BuildRequestStatus]:
        """The requests of buildset C{bs}, from the database, by number."""
        found = await self.data.get(
            ("buildrequests",), filters=[resultspec.Filter("buildsetid", "eq", [bs.bsid])]
        )
        requests = []
        for request in sorted(found or [], key=lambda r: r["buildrequestid"]):
            brid = request["buildrequestid"]
            known = self.pending.get(brid) or self._left.get(brid)
            if known is None:
                builder = await self.status.builders.by_id(request["builderid"])
                if builder is None:
                    continue  # a builder this master does not know (any more)
                known = BuildRequestStatus(self.status, request, builder, bs)
            requests.append(known)
        return requests

    async def buildset_properties(self, bsid: int) -> Properties:
        return _properties(await self.data.get(("buildsets", bsid, "properties")) or {})

    async def _buildset(self, buildset: Mapping[str, Any]) -> BuildSetStatus:
        """
        The buildset's status, with its source stamps read.  One not
        complete is kept as soon as it is made, so that its events find it,
        and whoever else wants it meanwhile waits for its source stamps.
        """
        bs = self.buildsets.get(buildset["bsid"])
        if bs is not None:
            await bs.when_loaded()
            return bs
        bs = BuildSetStatus(self.status, buildset)
        if not bs.isFinished():  # a complete one has no events to come
            self.buildsets[bs.bsid] = bs
        try:
            await self._read_sourcestamps(bs, buildset.get("sourcestamps") or [])
        except Exception:
            # Read whole by the next that asks (the event, tried again).
            if self.buildsets.get(bs.bsid) is bs:
                del self.buildsets[bs.bsid]
            raise
        finally:
            bs.loaded()
        return bs

    async def _read_sourcestamps(
        self, bs: BuildSetStatus, sourcestamps: list[Mapping[str, Any]]
    ) -> None:
        """Each with the changes its scheduler gathered (see L{_built_changes})."""
        if not sourcestamps:
            return
        master = self.status.master
        found = await self.data.get(("buildsets", bs.bsid, "properties")) or {}
        bs._properties = _properties(found)  # read once, here
        for ss in sourcestamps:
            changes = await master.db.pool.do(
                lambda conn, ssid=ss["ssid"]: read_requested_changes(
                    conn, master.db.model, bs.bsid, ssid
                )
            )
            bs.sourcestamps.append(
                SourceStamp.from_data(ss, built_changes(changes, found, master.config))
            )

    async def _request(self, request: Mapping[str, Any]) -> BuildRequestStatus | None:
        builder = await self.status.builders.by_id(request["builderid"])
        if builder is None:
            return None
        bs = self.buildsets.get(request["buildsetid"])
        if bs is not None:
            await bs.when_loaded()
        else:
            buildset = await self.data.get(("buildsets", request["buildsetid"]))
            bs = await self._buildset(buildset) if buildset else None
        found = BuildRequestStatus(self.status, request, builder, bs)
        self.pending[found.brid] = found
        return found


def _properties(found: Mapping[str, Any]) -> Properties:
    """Properties as the data API gives them: C{{name: (value, source)}}."""
    properties = Properties()
    for name, (value, source) in found.items():
        properties.setProperty(name, value, source)
    return properties
