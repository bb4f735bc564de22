"""
L{LegacyStatus}: the 0.8 C{Status} object as a service of a Buildbot 4
master.

It does configuration, lifecycle and receivers, and answers the 0.8
C{Status} API; the work is delegated: L{EventFeed} turns the master's
events into 0.8 callbacks, L{MirrorRegistry} mirrors the database's logs
into spool files, L{Lookup} finds builds and logs by name, and
L{PagesListener} serves the old pages on their own port.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote as _url_quote

from buildbot import config
from buildbot.changes.changes import Change
from buildbot.util import identifiers, naturalSort, service
from buildbot.util.twisted import async_to_deferred
from twisted.application.service import IService
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.python import log
from twisted.python.failure import Failure
from zope.interface import implementer

from buildbot_logfile import _shims
from buildbot_logfile._appends import LogAppends
from buildbot_logfile._builders import Builders
from buildbot_logfile._changes import LegacyChange
from buildbot_logfile._feed import EventFeed
from buildbot_logfile._history import History, history_logfiles
from buildbot_logfile._logdb import LogReader
from buildbot_logfile._lookup import Lookup
from buildbot_logfile._mirror import MirrorRegistry
from buildbot_logfile._render import link_name, log_link_name
from buildbot_logfile._requests import BuildSetStatus, Requests
from buildbot_logfile._workers import SlaveStatus, Workers
from buildbot_logfile.interfaces import IStatus, IStatusReceiver
from buildbot_logfile.logfile import LogFile
from buildbot_logfile.status import BuilderStatus, BuildStatus, BuildStepStatus
from buildbot_logfile.web import AnonymousAuthorizer, LegacyLogPages, PagesListener

__all__ = ["LegacyStatus"]


def _segment(name: str) -> str:
    """A builder's or step's name as one segment of the old pages' URLs (see link_name)."""
    return _url_quote(link_name(name), safe="")


# What a 0.8 status receiver has at least one of.
_RECEIVER_METHODS = (
    "setServiceParent",
    "builderAdded",
    "builderRemoved",
    "builderChangedState",
    "buildStarted",
    "buildFinished",
    "stepStarted",
    "stepFinished",
    "logStarted",
    "logChunk",
    "logFinished",
    "requestSubmitted",
    "buildsetSubmitted",
    "changeAdded",
    "slaveConnected",
    "slaveDisconnected",
)


def _receiver_problem(receiver: Any) -> str | None:
    if isinstance(receiver, type):
        return f"is a class, not a receiver: write {receiver.__name__}(...)"
    if IStatusReceiver.providedBy(receiver) or IService.providedBy(receiver):
        return None
    if any(callable(getattr(receiver, name, None)) for name in _RECEIVER_METHODS):
        return None
    return "is not a 0.8 status receiver: it has none of builderAdded, buildStarted, logChunk..."


def _port_problem(http_port: Any) -> str | None:
    if http_port is None:
        return None
    if isinstance(http_port, bool) or not isinstance(http_port, (str, int)):
        return "must be a strports string such as 'tcp:8011:interface=127.0.0.1', or a port number"
    if isinstance(http_port, int):
        return None if 0 <= http_port <= 65535 else f"{http_port} is not a port number"
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    try:
        serverFromString(reactor, http_port)
    except (ValueError, KeyError, TypeError) as e:
        return f"{http_port!r} is not a strports string Twisted understands: {e}"
    return None


def _raise_first(failures: list[Failure], also: str) -> None:
    """Raise the first of C{failures}, if any, logging the others as C{also}."""
    for failure in failures[1:]:
        log.err(failure, also)
    if failures:
        failures[0].raiseException()


@implementer(IStatus)
class LegacyStatus(service.BuildbotService):
    """
    0.8's C{Status} object.  Status receivers given in C{receivers} become
    its child services (or, if they are not services, subscribers), so a
    0.8 plugin's C{setServiceParent} / C{self.parent.subscribe(self)} works
    unchanged.
    """

    name = "LegacyStatus"

    def checkConfig(
        self,
        receivers: list[Any] | tuple[Any, ...] | None = None,
        logdir: str = "legacy_logs",
        http_port: str | int | None = None,
    ) -> None:
        if receivers is not None and not isinstance(receivers, (list, tuple)):
            config.error("LegacyStatus: receivers must be a list of status receivers")
        for i, receiver in enumerate(receivers if isinstance(receivers, (list, tuple)) else []):
            problem = _receiver_problem(receiver)
            if problem:
                config.error(f"LegacyStatus: receivers[{i}] ({receiver!r}) {problem}")
        if not isinstance(logdir, str) or not logdir:
            config.error("LegacyStatus: logdir must be a non-empty directory name")
        problem = _port_problem(http_port)
        if problem:
            config.error(f"LegacyStatus: http_port {problem}")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # A master.cfg that configures this may load 0.8 plugins next.
        _shims.install()
        super().__init__(*args, **kwargs)
        self.watchers: list[Any] = []
        self.receivers: list[Any] = []
        # Receivers whose start failed: started again at the next reconfig.
        self._failed_receivers: list[Any] = []
        self._adding: defer.Deferred[None] | None = None
        self.spool_dir = ""
        self.builders = Builders(self)
        self.workers = Workers(self)
        self.requests = Requests(self)
        # Set while running: what the pages look logs up in.
        self.lookup: Lookup | None = None
        self._feed: EventFeed | None = None
        self._mirrors: MirrorRegistry | None = None
        self._reader: LogReader | None = None
        self._history: History | None = None
        self._listener: PagesListener | None = None

    @async_to_deferred
    async def reconfigService(
        self,
        receivers: list[Any] | tuple[Any, ...] | None = None,
        logdir: str = "legacy_logs",
        http_port: str | int | None = None,
    ) -> None:
        """
        Apply the configuration as far as it goes: a receiver that fails to
        start and a port that cannot be opened are logged, and the rest goes
        on; see L{_failed}.
        """
        try:
            self.spool_dir = os.path.join(self.master.basedir, logdir)
            # Receivers that ask for builder names as they attach find them.
            await self.builders.load_configured(self.master.config.builders)
            await self.workers.load()
            failures = await self._set_receivers(list(receivers or []))
            if isinstance(http_port, int):
                http_port = f"tcp:{http_port}:interface=127.0.0.1"
            if self._listener is None:
                pages = LegacyLogPages(lambda: self.lookup, AnonymousAuthorizer(self.master))
                self._listener = PagesListener(pages)
            try:
                await self._listener.listen_on(http_port)
            except CannotListenError:
                failures.append(Failure())
        except BaseException:
            self.configured = False
            raise
        self._failed(failures)

    def _failed(self, failures: list[Failure]) -> None:
        """
        Raise the first of C{failures}, logging the others: a master that is
        starting stops, and a reconfig reports it.  The next reconfig applies
        the configuration again, even one that leaves it as it is (Buildbot
        skips those), and starts the receivers that failed again.
        """
        if failures:
            self.configured = False
        _raise_first(failures, "LegacyStatus: and also")

    @property
    def http_listener(self) -> Any:
        """The listening port of the standalone pages, or None."""
        return self._listener.port if self._listener is not None else None

    @async_to_deferred
    async def startService(self) -> None:
        self.builders.unsettle()
        reader = self._reader = LogReader(self.master)
        mirrors = self._mirrors = MirrorRegistry(self.master, reader, LogAppends(self.master))
        lookup = Lookup(self.master, self.builders, mirrors)
        self._history = History(reader, lookup)
        self._feed = EventFeed(
            self.master, self.builders, self.workers, self.requests, mirrors, lookup.remember
        )
        # What fails here is raised once the rest has started: a reconfig
        # that adds this service keeps it running (see _failed).
        failures: list[Failure] = []
        try:
            # A master starts a service before it configures it: the receivers
            # must be there before the feed announces running builds to them.
            if not self.configured:
                try:
                    await self.configureService()
                except Exception:
                    failures.append(Failure())
            await self.requests.load()
            # The feed's subscriptions come before those receivers make as they
            # start (the cluster tests' readiness probe relies on that order).
            await self._feed.start()
            failures += await self._start_receivers()
            await self.builders.load()
        except BaseException:
            # Nothing of a failed start keeps running (the reader's threads
            # would keep the master's process alive), and the next reconfig
            # starts it again (see reconfigServiceWithSibling).
            for failure in failures:
                log.err(failure, "LegacyStatus: before its start failed")
            self.configured = False
            await self._stop_parts()
            raise
        self.lookup = lookup
        self._failed(failures)

    @defer.inlineCallbacks
    def reconfigServiceWithSibling(self, sibling: Any) -> Any:
        try:
            yield super().reconfigServiceWithSibling(sibling)
            if self.running:
                # Every reconfig, this service's own settings changed or not:
                # the builders' tags and descriptions, as 0.8's reconfig set them.
                yield defer.ensureDeferred(
                    self.builders.load_configured(self.master.config.builders)
                )
        finally:
            # A start that failed (the database, the message queue) left this
            # service stopped, but Buildbot keeps it: a reconfig starts it.
            # (Its own first configuring, from startService, is with itself.)
            parent = self.parent
            if sibling is not self and not self.running and parent is not None and parent.running:
                yield self.startService()

    @async_to_deferred
    async def stopService(self) -> None:
        self.lookup = None
        await self._stop_parts()

    async def _stop_parts(self) -> None:
        """
        Stop what L{startService} started, as far as it got (again: nothing
        more).  Each part is stopped even if one before it failed (a
        receiver that raises as it stops): the first failure is raised
        at the end, the others logged.
        """
        feed, listener, mirrors, reader = self._feed, self._listener, self._mirrors, self._reader
        # As Buildbot's reporters do: no new events, then the queued ones
        # run out before anything they use goes away.
        parts = [
            feed.stop if feed is not None else None,
            listener.stop if listener is not None else None,
            super().stopService if self.running else None,
            mirrors.close if mirrors is not None else None,
            reader.close if reader is not None else None,
        ]
        failures = []
        for stop in parts:
            if stop is not None:
                try:
                    await defer.maybeDeferred(stop)
                except Exception:
                    failures.append(Failure())
        _raise_first(failures, "LegacyStatus: and also, as it stopped")

    # Receivers

    async def _start_receivers(self) -> list[Failure]:
        """
        Start the child services (receivers) together, as Buildbot's
        services do, noting those that fail.  (Not BuildbotService's
        startService: all it adds is configuring, done already.)
        """
        service.AsyncService.startService(self)
        children = list(self)
        results = await defer.DeferredList(
            [defer.maybeDeferred(child.startService) for child in children], consumeErrors=True
        )
        failures = []
        for child, (started, result) in zip(children, results):
            if not started:
                self._receiver_failed(child)
                failures.append(result)
        return failures

    async def _set_receivers(self, new: list[Any]) -> list[Failure]:
        """
        Receivers that compare equal (0.8 plugins could use compare_attrs)
        are kept, unless they failed to start; the others are stopped and
        replaced.  Returns the failures of those that failed to start.
        """
        kept = [r for r in self.receivers if r in new and r not in self._failed_receivers]
        removed = [r for r in self.receivers if r not in kept]
        added = [r for r in new if r not in kept]
        # Replaced, an old receiver hears no more as it starts to stop; the
        # builds' events wait for the new ones (see EventFeed.hold).
        release = self._feed.hold() if removed and added and self._feed is not None else None
        try:
            for old in removed:
                self._forget_receiver(old)
                if IService.providedBy(old) and old.parent is self:
                    try:
                        await defer.maybeDeferred(old.disownServiceParent)
                    except Exception:
                        log.err(None, f"LegacyStatus: receiver {old!r} failed to stop")
            self.receivers = kept + added
            self._failed_receivers = []
            return await self._add_receivers(added)
        finally:
            if release is not None:
                release()

    async def _add_receivers(self, added: list[Any]) -> list[Failure]:
        """Start C{added}; the failures of those that failed to start."""
        failures = []
        for receiver in added:
            try:
                if IService.providedBy(receiver):
                    self._give_master(receiver)
                    self._adding = None
                    await defer.maybeDeferred(receiver.setServiceParent, self)
                    adding, self._adding = self._adding, None
                    if adding is not None:
                        await adding
                else:
                    self.subscribe(receiver)
            except Exception:
                self._receiver_failed(receiver)
                failures.append(Failure())
        return failures

    def _give_master(self, receiver: Any) -> None:
        """
        0.8's C{Status} set each receiver's C{master} as it added it, before
        C{setServiceParent}, where 0.8's chat bots took
        C{interfaces.IControl(self.master)}: here Buildbot 4's master, which
        that adapts.  A receiver that has something else as its master
        keeps it, and one that cannot take the attribute goes without.
        """
        from buildbot.master import BuildMaster

        if isinstance(getattr(type(receiver), "master", None), property):
            return
        if isinstance(getattr(receiver, "master", None), (type(None), BuildMaster)):
            with contextlib.suppress(AttributeError):
                receiver.master = self.master

    def addService(self, child: IService) -> defer.Deferred[None]:
        # Twisted's setServiceParent, which 0.8 receivers have, drops the
        # Deferred of their start: kept for _set_receivers to wait on.
        adding = self._adding = super().addService(child)
        return adding

    def _receiver_failed(self, receiver: Any) -> None:
        self._failed_receivers.append(receiver)
        log.msg(f"LegacyStatus: receiver {receiver!r} failed to start")

    def _forget_receiver(self, receiver: Any) -> None:
        """Unsubscribe C{receiver} from everything it may follow."""
        self.unsubscribe(receiver)
        for builder in self.builders.running.values():
            builder.unsubscribe(receiver)
        for build in self._feed.running_builds() if self._feed is not None else []:
            build.unsubscribe(receiver)
            for step in build.getSteps():
                step.unsubscribe(receiver)
                for lf in step.getLogs():
                    lf.unsubscribe(receiver)

    # The 0.8 Status API

    def getStatus(self) -> LegacyStatus:
        """0.8 plugins asked their parent (the master) for the Status."""
        return self

    def subscribe(self, target: Any) -> None:
        """Announce every builder to C{target}, now and as they are added."""
        self.watchers.append(target)
        for name in self.getBuilderNames():
            self.builders.announce(target, self.builders.running[name])

    def unsubscribe(self, target: Any) -> None:
        if target in self.watchers:
            self.watchers.remove(target)

    def getBuilderNames(
        self, categories: list[str] | None = None, tags: list[str] | None = None
    ) -> list[str]:
        """
        The cluster's builders in 0.8's natural order (C{b9} before
        C{b10}): all of them, or with C{tags} (or C{categories}, which
        0.8 took first) those with any of them; an empty list matches none.
        """
        wanted = categories if categories is not None else tags
        return naturalSort(
            [
                name
                for name, b in self.builders.running.items()
                if wanted is None or b.matchesAnyTag(wanted)
            ]
        )

    def getBuilder(self, name: str) -> BuilderStatus:
        return self.builders.running[name]

    def getBuildSets(self) -> defer.Deferred[list[BuildSetStatus]]:
        """The buildsets not finished yet (a Deferred, as in 0.8.x)."""
        return defer.succeed(sorted(self.requests.buildsets.values(), key=lambda b: b.bsid))

    def generateFinishedBuilds(
        self,
        builders: list[str] | tuple[str, ...] = (),
        branches: list[str | None] | tuple[str | None, ...] = (),
        num_builds: int | None = None,
        finished_before: float | None = None,
        max_search: int | None = 200,
    ) -> Iterator[BuildStatus]:
        """
        The finished builds of the given builders (all if none), newest
        finish first, as 0.8 merged each builder's
        C{generateFinishedBuilds}; at most C{num_builds}.
        """
        sources = [
            self.getBuilder(name).generateFinishedBuilds(
                branches, finished_before=finished_before, max_search=max_search
            )
            for name in self.getBuilderNames()
            if not builders or name in builders
        ]
        heads: list[BuildStatus | None] = [next(source, None) for source in sources]
        got = 0
        while True:
            # The newest finish; on a tie, the later builder's, as 0.8's sort left it.
            found = [(b.finished or 0, i, b) for i, b in enumerate(heads) if b is not None]
            if not found:
                return
            _, i, build = max(found, key=lambda f: f[:2])
            heads[i] = next(sources[i], None)
            got += 1
            yield build
            if num_builds is not None and got >= num_builds:
                return

    def getChangeSources(self) -> list[Any]:
        return list(self.master.change_svc)

    def getChange(self, number: int) -> defer.Deferred[LegacyChange | None]:
        """Change C{number} (a Deferred), or None, as 0.8 read it from the database."""
        d = defer.ensureDeferred(self.master.data.get(("changes", number)))
        return d.addCallback(lambda found: LegacyChange.from_data(found) if found else None)

    def getSchedulers(self) -> list[Any]:
        return list(self.master.scheduler_manager)

    def getMetrics(self) -> Any:
        """Buildbot 4's metrics log observer, which kept 0.8's."""
        return self.master.metrics

    def getSlaveNames(self) -> list[str]:
        """The workers of the cluster, by name."""
        return sorted(self.workers.by_name)

    def getSlave(self, name: str) -> SlaveStatus:
        """A worker's C{SlaveStatus}; C{KeyError} for an unknown one, as in 0.8."""
        return self.workers.by_name[name]

    def getBuildbotURL(self) -> str:
        return str(self.master.config.buildbotURL)

    def getTitle(self) -> str:
        return str(self.master.config.title)

    def getTitleURL(self) -> str:
        return str(self.master.config.titleURL)

    def asDict(self) -> dict[str, Any]:
        """As 0.8's JSON status gave the project."""
        return {
            "title": self.getTitle(),
            "titleURL": self.getTitleURL(),
            "buildbotURL": self.getBuildbotURL(),
        }

    @property
    def basedir(self) -> str:
        """0.8's C{Status.basedir}: the master's."""
        return str(self.master.basedir)

    @property
    def db(self) -> Any:
        """
        0.8.4's C{BuildMaster.db}, which receivers whose parent was the
        master used: Buildbot 4's C{DBConnector}, whose components
        (C{changes}, C{buildsets}, C{buildrequests}, ...) kept most of their
        0.8 method names; their answers are Buildbot 4's (dataclasses that
        still answer C{d["key"]}, with a deprecation warning).
        """
        return self.master.db

    @property
    def caches(self) -> Any:
        """0.8.4's C{BuildMaster.caches}: Buildbot 4's, with 0.8's C{get_cache(name, miss_fn)}."""
        return self.master.caches

    @property
    def status(self) -> LegacyStatus:
        """0.8's C{BuildMaster.status}, for receivers whose parent was the master."""
        return self

    @property
    def botmaster(self) -> Any:
        """
        0.8's C{Status.botmaster}: Buildbot 4's C{BotMaster}, which kept
        what plugins used of 0.8's (C{builders} by name, C{getBuildernames},
        C{master}).
        """
        return self.master.botmaster

    def getURLForThing(self, thing: Any) -> str | None:
        """
        Where the status, a builder, build, step, log, worker or change is
        shown: the old pages' URL (C{.../builders/B/builds/N/steps/S/logs/L},
        the paths 0.8 gave, to which plugins append) when the
        C{legacy_logs} www plugin serves them, else the modern UI's.
        Workers and changes are always the modern UI's: the old pages have
        none of theirs.
        """
        root = self.getBuildbotURL()
        old = self._old_pages()
        if thing is self:
            return root
        if isinstance(thing, BuilderStatus):
            if old is not None:
                return f"{old}/builders/{_segment(thing.name)}"
            return f"{root}#/builders/{thing.builderid}"
        if isinstance(thing, BuildStatus):
            return f"{self.getURLForThing(thing.builder)}/builds/{thing.number}"
        if isinstance(thing, BuildStepStatus):
            if old is not None:
                return f"{self.getURLForThing(thing.build)}/steps/{_segment(thing.name)}"
            if thing.stepid is None:
                # The UI has a step's page once it has started; a step to
                # come, or one the build passed over, is shown in its build.
                return self.getURLForThing(thing.build)
            return f"{self.getURLForThing(thing.build)}/steps/{thing.number}"
        if isinstance(thing, LogFile):
            # The UI names a log by its slug; a LogFile made by a plugin has none.
            slug = thing.slug or identifiers.forceIdentifier(50, thing.name)
            if old is not None:
                name = _url_quote(log_link_name(thing.name, slug), safe="")
                return f"{self.getURLForThing(thing.step)}/logs/{name}"
            return f"{self.getURLForThing(thing.step)}/logs/{slug}"
        if isinstance(thing, SlaveStatus):
            return f"{root}#/workers/{thing.workerid}"
        if isinstance(thing, Change) and thing.number is not None:
            return f"{root}#/changes/{thing.number}"
        return None

    def getURLForBuild(self, builder_name: str, build_number: int) -> str | None:
        """Where build C{build_number} of C{builder_name} is shown, as 0.8 had it."""
        builder = self.builders.running.get(builder_name)
        if builder is None:
            # A builder this cluster no longer runs: only the old pages
            # find it by name.
            old = self._old_pages()
            if old is None:
                return None
            return f"{old}/builders/{_segment(builder_name)}/builds/{build_number}"
        return f"{self.getURLForThing(builder)}/builds/{build_number}"

    def _old_pages(self) -> str | None:
        """The old pages' root URL, when the C{legacy_logs} www plugin serves them."""
        plugins = (getattr(self.master.config, "www", None) or {}).get("plugins") or {}
        if "legacy_logs" not in plugins:
            return None
        return self.getBuildbotURL() + "plugins/legacy_logs"

    # What the status objects ask of the service (not 0.8 API)

    def find_build(self, builder: BuilderStatus, number: int) -> BuildStatus | None:
        """Build C{number} (negative: from the newest) of C{builder}, or None."""
        return None if self._history is None else self._history.build(builder, number)

    def find_build_by_revision(self, builder: BuilderStatus, rev: str) -> BuildStatus | None:
        """The newest build of C{builder} that got revision C{rev}, or None."""
        if self._history is None:
            return None
        number = self._history.number_by_revision(builder.builderid, rev)
        return None if number is None else builder.getBuild(number)

    def finished_builds(
        self, builder: BuilderStatus, first: int | None, search: int
    ) -> Iterator[BuildStatus]:
        """C{builder}'s finished builds, newest first, from number C{first} down."""
        if self._history is not None:
            yield from self._history.finished_builds(builder, first, search)

    def history_logfiles(self, step: BuildStepStatus) -> list[LogFile]:
        """The LogFiles of a step of a build from history."""
        assert self._reader is not None
        assert self._mirrors is not None
        return history_logfiles(step, self._reader, self._mirrors)

    @async_to_deferred
    async def getLogFile(
        self, builderName: str, number: int, stepName: str, logName: str
    ) -> LogFile | None:
        """
        Beyond 0.8: the LogFile of any log in the database, live or
        finished, or None, holding at least every line the database had
        when asked.  A missing or partial spool file is rebuilt from the
        database; a log still running goes on live.  Concurrent lookups
        share one rebuild.
        """
        if self.lookup is None:
            raise RuntimeError("LegacyStatus is not running")
        return await self.lookup.get_logfile(builderName, number, stepName, logName)
