"""
0.8's C{buildbot.status.buildset.BuildSetSummaryNotifierMixin}: a status
receiver that reports a whole buildset at once (0.8.12's MailNotifier and
GerritStatusPush with C{buildSetSummary=True}) is told when every build of
a buildset has finished.
"""

from __future__ import annotations

from typing import Any

from buildbot.data import resultspec
from twisted.internet import defer
from twisted.python import log

from buildbot_logfile._status_base import as_datetime, legacy_results


class BuildSetSummaryNotifierMixin:
    """
    Mixed into a status receiver: L{summarySubscribe} (from its
    C{startService}, as 0.8 plugins did) makes every finished buildset call
    C{sendBuildSetSummary(buildset, builds)}, with 0.8's buildset dict and
    the buildset's finished L{BuildStatus} objects that
    C{includeInSummary(build, results)} lets through.

    The receiver's 0.8 C{Status} is C{self.master_status}, as 0.8's
    receivers set it, or else its parent.  Any master of a cluster hears
    every buildset of the cluster.
    """

    _buildset_consumer: Any = None
    # Subscribed, or being subscribed: the message queue answers later
    # (over WAMP), and an unsubscribe meanwhile must still win.
    _summary_wanted = False

    def _summary_status(self) -> Any:
        return getattr(self, "master_status", None) or getattr(self, "parent", None)

    @defer.inlineCallbacks
    def summarySubscribe(self) -> Any:
        """Start hearing of finished buildsets."""
        if self._summary_wanted:
            return
        self._summary_wanted = True
        master = self._summary_status().master
        consumer = yield master.mq.startConsuming(
            self._buildset_completed, ("buildsets", None, "complete")
        )
        if self._summary_wanted and self._buildset_consumer is None:
            self._buildset_consumer = consumer
        else:  # unsubscribed meanwhile, or subscribed again already
            consumer.stopConsuming()

    def summaryUnsubscribe(self) -> None:
        """Hear of no more buildsets."""
        self._summary_wanted = False
        consumer, self._buildset_consumer = self._buildset_consumer, None
        if consumer is not None:
            consumer.stopConsuming()

    def includeInSummary(self, build: Any, results: int | None) -> bool:
        """Whether C{build} is part of the summary: every build, unless overridden."""
        return True

    def sendBuildSetSummary(self, buildset: dict[str, Any], builds: list[Any]) -> None:
        raise NotImplementedError

    def _buildset_completed(self, key: tuple[str, ...], msg: dict[str, Any]) -> Any:
        d = defer.ensureDeferred(
            self.buildsetFinished(msg["bsid"], legacy_results(msg.get("results")))
        )
        why = f"{type(self).__name__}: while summarising a buildset"
        return d.addErrback(lambda failure: log.err(failure, why))

    async def buildsetFinished(self, bsid: int, result: int | None) -> None:
        """0.8's hook: gather the buildset's builds, then send the summary."""
        status = self._summary_status()
        data = status.master.data
        buildset = await data.get(("buildsets", bsid))
        if buildset is None:
            return
        requests = await data.get(
            ("buildrequests",), filters=[resultspec.Filter("buildsetid", "eq", [bsid])]
        )
        builds = []
        for request in sorted(requests or [], key=lambda r: r["buildrequestid"]):
            builder = await status.builders.by_id(request["builderid"])
            if builder is None:
                continue
            for found in await data.get(("buildrequests", request["buildrequestid"], "builds")):
                build = builder.getBuild(found["number"])
                if build is not None and self.includeInSummary(build, build.getResults()):
                    builds.append(build)
        if builds:
            self.sendBuildSetSummary(_as_08_buildset(buildset), builds)


def _as_08_buildset(buildset: dict[str, Any]) -> dict[str, Any]:
    """A data-API buildset as 0.8's database gave it (C{bsdict})."""

    return {
        "bsid": buildset["bsid"],
        "external_idstring": buildset.get("external_idstring"),
        "reason": buildset.get("reason"),
        "submitted_at": as_datetime(buildset.get("submitted_at")),
        "complete": bool(buildset.get("complete")),
        "complete_at": as_datetime(buildset.get("complete_at")),
        "results": legacy_results(buildset.get("results")),
        "sourcestamps": buildset.get("sourcestamps") or [],
    }
