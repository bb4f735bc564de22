"""
0.8's C{buildbot.status.client}: C{PBListener}, the Perspective Broker port
that 0.8's C{buildbot statuslog} and C{statusgui} and third-party tools
logged into to follow the master, the C{StatusClientPerspective} each login
gets, and the C{Remote*} references to builders, builds, steps and logs that
travel in its events.

The port is Buildbot 4's PB manager's, as the workers', C{PBChangeSource}'s
and C{try}'s are: a listener may share the workers' port under a user name
of its own.  Events come from the 0.8 C{Status} (L{LegacyStatus}) like any
receiver's and go out as they came, in 0.8's order; the master never waits
for a client, and a client that fails or goes away never reaches the build
or the other receivers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from buildbot.pbutil import NewCredPerspective
from buildbot.util.eventual import eventually
from twisted.internet import defer, error
from twisted.python import components
from twisted.python import log as twlog
from twisted.python.failure import Failure
from twisted.spread import banana, pb
from zope.interface import Interface

from buildbot_logfile._builder_status import Event
from buildbot_logfile._changes import LegacyChange
from buildbot_logfile._pb_python2 import speak_python2
from buildbot_logfile._status_base import checked_interval
from buildbot_logfile.base import StatusReceiverBase, StatusReceiverMultiService
from buildbot_logfile.logfile import LogFile
from buildbot_logfile.status import (
    BuilderStatus,
    BuildRequestStatus,
    BuildSetStatus,
    BuildStatus,
    BuildStepStatus,
    SlaveStatus,
)

__all__ = [
    "BuildSubscriber",
    "IRemote",
    "PBListener",
    "RemoteBuild",
    "RemoteBuildRequest",
    "RemoteBuildSet",
    "RemoteBuildStep",
    "RemoteBuilder",
    "RemoteChange",
    "RemoteEvent",
    "RemoteLog",
    "RemoteSlave",
    "StatusClientPerspective",
    "makeRemote",
]

# 0.8's subscription modes, each following one level deeper than the last:
# builders; their builds; the builds' steps; the steps' logs; the logs' text.
MODES = ("builders", "builds", "steps", "logs", "full")

# A client that leaves this many events unanswered is not keeping up: the
# master would hold every event for it, so it is disconnected instead.
MAX_UNANSWERED = 10_000
# Nor may the log text waiting for it (characters) grow past this.
MAX_UNANSWERED_BYTES = 32 * 1024 * 1024
# One getChunks answer holds at most this much text (it is built in memory).
MAX_CHUNKS_ANSWER = 64 * 1024 * 1024

# PB refuses a string of more UTF-8 bytes than this, on either side, and
# drops the connection over one it receives.
_MAX_STRING = banana.SIZE_LIMIT
# Characters per piece of a longer text: at most _MAX_STRING bytes.
_PIECE = _MAX_STRING // 4

# What tells that a client went away, rather than that it failed.
_GONE = (pb.PBConnectionLost, pb.DeadReferenceError, error.ConnectionDone, error.ConnectionLost)


class UnknownName(pb.Error, KeyError):
    """
    No builder or worker of that name.  A C{pb.Error}, so it reaches the
    client without a traceback in the master's log; a C{KeyError}, as 0.8
    raised.
    """


class TooLarge(pb.Error):
    """An answer PB cannot carry in one string (see L{RemoteLog.remote_getText})."""


def _pieces(text: str) -> list[str]:
    """C{text} in pieces PB can send (one, almost always)."""
    if len(text) <= _PIECE or len(text.encode("utf-8")) <= _MAX_STRING:
        return [text]
    return [text[i : i + _PIECE] for i in range(0, len(text), _PIECE)]


def _fits(text: str) -> str:
    size = len(text.encode("utf-8"))
    if size > _MAX_STRING:
        raise TooLarge(
            f"the text is {size} bytes and PB sends at most {_MAX_STRING} in one string:"
            " read it with getChunks"
        )
    return text


def _same_reference(a: Any, b: Any) -> bool:
    """
    Whether two C{RemoteReference}s name one client object: each time a
    client sends an object, the master gets a new reference to it.
    """
    if a is b:
        return True
    if getattr(a, "luid", None) is None or getattr(b, "luid", None) is None:
        return False
    return bool(a.broker is b.broker and a.luid == b.luid)


def _describe(ref: Any) -> str:
    """The client's address, for the log."""
    try:
        peer = ref.broker.transport.getPeer()
    except AttributeError:
        return "a PB status client"
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    return f"PB status client {host}:{port}" if host is not None else f"PB status client {peer}"


class _Events:
    """
    Sends events to one client object, and takes whatever becomes of them,
    so that nothing a client does reaches the master.  A client that went
    away is forgotten (C{on_gone}); one whose remote method failed is
    logged, once per method, and kept, as in 0.8 (a client need not have a
    method for every event); one that leaves L{MAX_UNANSWERED} events, or
    L{MAX_UNANSWERED_BYTES} of log text, unanswered is disconnected and
    forgotten.
    """

    def __init__(self, target: Any, on_gone: Callable[[], None]) -> None:
        self.target = target
        self.on_gone = on_gone
        self.name = _describe(target)
        self.gone = False
        self.unanswered = 0
        self.unanswered_bytes = 0
        self._failed: set[str] = set()

    def send(self, method: str, *args: Any) -> None:
        if self.gone:
            return
        try:
            d = self.target.callRemote(method, *args)
        except pb.DeadReferenceError:
            self._lost(f"it went away before {method}")
            return
        except Exception as e:
            # Raised while encoding: no client can take this one event.
            twlog.msg(f"{self.name}: {method} could not be sent ({e!r}); skipped")
            return
        size = sum(len(a) for a in args if isinstance(a, str))
        self.unanswered += 1
        self.unanswered_bytes += size
        d.addBoth(self._answered, method, size)
        if self.unanswered > MAX_UNANSWERED or self.unanswered_bytes > MAX_UNANSWERED_BYTES:
            self._lost(
                f"it left {self.unanswered} events ({self.unanswered_bytes} characters) unanswered"
            )
            self.disconnect()

    def _answered(self, result: Any, method: str, size: int) -> None:
        self.unanswered -= 1
        self.unanswered_bytes -= size
        if not isinstance(result, Failure) or self.gone:
            return
        if not isinstance(result, pb.CopiedFailure) and isinstance(result.value, _GONE):
            self._lost(f"its connection ended ({result.getErrorMessage()})")
        elif method not in self._failed:
            self._failed.add(method)
            twlog.msg(
                f"{self.name}: its remote_{method} failed ({result.getErrorMessage()});"
                " it is kept, and further failures of that method are not logged"
            )

    def _lost(self, why: str) -> None:
        if not self.gone:
            self.gone = True
            twlog.msg(f"{self.name}: {why}; forgotten")
            self.on_gone()

    def stop(self) -> None:
        """Send nothing more, and take the answers still due quietly."""
        self.gone = True

    def disconnect(self) -> None:
        _disconnect(self.target)


def _disconnect(ref: Any) -> None:
    """End the connection C{ref} (a client's reference) came over."""
    transport = getattr(getattr(ref, "broker", None), "transport", None)
    if transport is not None:
        transport.loseConnection()


class IRemote(Interface):
    """What a status object becomes when sent to a PB client (0.8's name)."""


def makeRemote(obj: Any) -> Any:
    """0.8's C{IRemote(obj)} that leaves C{None} as it is."""
    return None if obj is None else IRemote(obj)


class Remotes:
    """
    The C{Remote*} references one client is sent: one per status object
    while it runs, so that every event of a log sends the same three
    references and the client's side holds them once.  (PB drops a
    connection that holds more than 1024 references: a new set per
    C{logChunk} would overrun that with a fast log.)  Finished objects
    get a new reference each time, and leave the cache as it grows.
    """

    SWEEP_FROM = 256

    def __init__(self) -> None:
        self._live: dict[int, tuple[Any, pb.Referenceable]] = {}
        self._sweep_at = self.SWEEP_FROM

    def of(self, thing: Any) -> Any:
        """C{thing}'s reference for this client; C{None} for C{None}."""
        if thing is None:
            return None
        found = self._live.get(id(thing))
        if found is not None and found[0] is thing:
            return found[1]
        remote = _remote_class(thing)(thing, self)
        if _is_live(thing):
            self._live[id(thing)] = (thing, remote)
            if len(self._live) >= self._sweep_at:
                self._sweep()
        return remote

    def all_of(self, things: Iterable[Any]) -> list[Any]:
        return [self.of(thing) for thing in things]

    def clear(self) -> None:
        self._live.clear()

    def _sweep(self) -> None:
        self._live = {key: entry for key, entry in self._live.items() if _is_live(entry[0])}
        self._sweep_at = max(self.SWEEP_FROM, 2 * len(self._live))


def _is_live(thing: Any) -> bool:
    finished = getattr(thing, "isFinished", None)
    if finished is None:
        return isinstance(thing, (BuilderStatus, SlaveStatus))
    if isinstance(thing, BuildStepStatus) and thing.getBuild().isFinished():
        return False  # also a step its build never started
    return not finished()


class _Remote(pb.Referenceable):
    """A status object as a client sees it; what it hands on shares C{remotes}."""

    def __init__(self, remotes: Remotes | None = None) -> None:
        self.remotes = remotes if remotes is not None else Remotes()


class RemoteBuildSet(_Remote):
    """0.8's C{RemoteBuildSet}: a buildset not finished yet (see C{getBuildSets})."""

    def __init__(self, buildset: BuildSetStatus, remotes: Remotes | None = None) -> None:
        super().__init__(remotes)
        self.b = buildset

    def remote_getSourceStamp(self) -> dict[str, Any] | None:
        """The first source stamp, as a dict (0.8's C{SourceStamp} is no PB type)."""
        stamps = self.b.getSourceStamps()
        return stamps[0].asDict() if stamps else None

    def remote_getReason(self) -> str:
        return self.b.getReason()

    def remote_getID(self) -> str | None:
        return self.b.getID()

    def remote_getBuilderNames(self) -> defer.Deferred[list[str]]:
        return self.b.getBuilderNames()

    @defer.inlineCallbacks
    def remote_getBuildRequests(self) -> Any:
        """0.8's C{(builderName, RemoteBuildRequest)} pairs."""
        requests = yield self.b.getBuildRequests()
        return [(r.getBuilderName(), self.remotes.of(r)) for r in requests]

    def remote_isFinished(self) -> bool:
        return self.b.isFinished()

    def remote_waitUntilFinished(self) -> defer.Deferred[Any]:
        return self.b.waitUntilFinished().addCallback(self.remotes.of)

    def remote_getResults(self) -> int | None:
        return self.b.getResults()


class RemoteBuilder(_Remote):
    """0.8's C{RemoteBuilder}."""

    def __init__(self, builder: BuilderStatus, remotes: Remotes | None = None) -> None:
        super().__init__(remotes)
        self.b = builder

    def remote_getName(self) -> str:
        return self.b.getName()

    def remote_getCategory(self) -> str | None:
        return self.b.getCategory()

    def remote_getState(self) -> tuple[str, None, list[Any]]:
        """0.8's C{(state, None, builds)}: the None is 0.8's leftover ETA."""
        state, builds = self.b.getState()
        return (state, None, self.remotes.all_of(builds))

    def remote_getSlaves(self) -> list[Any]:
        return self.remotes.all_of(self.b.getSlaves())

    def remote_getLastFinishedBuild(self) -> Any:
        return self.remotes.of(self.b.getLastFinishedBuild())

    def remote_getCurrentBuilds(self) -> list[Any]:
        return self.remotes.all_of(self.b.getCurrentBuilds())

    def remote_getBuild(self, number: int) -> Any:
        return self.remotes.of(self.b.getBuild(number))

    def remote_getEvent(self, number: int) -> Any:
        return self.remotes.of(self.b.getEvent(number))


class RemoteBuildRequest(_Remote):
    """0.8's C{RemoteBuildRequest}."""

    def __init__(self, buildreq: BuildRequestStatus, remotes: Remotes | None = None) -> None:
        super().__init__(remotes)
        self.b = buildreq
        # (observer, the local callable subscribed for it)
        self.observers: list[tuple[Any, Callable[[Any], None]]] = []

    @defer.inlineCallbacks
    def remote_getSourceStamp(self) -> Any:
        """The first source stamp, as a dict (0.8's C{SourceStamp} is no PB type)."""
        ss = yield self.b.getSourceStamp()
        return None if ss is None else ss.asDict()

    def remote_getBuilderName(self) -> str:
        return self.b.getBuilderName()

    def remote_subscribe(self, observer: Any) -> None:
        """C{observer.remote_newbuild(build, builderName)} for each build of the request."""
        events = _Events(observer, lambda: self.remote_unsubscribe(observer))

        def send(build: Any) -> None:
            events.send("newbuild", self.remotes.of(build), self.b.getBuilderName())

        self.observers.append((observer, send))
        self.b.subscribe(send)

    def remote_unsubscribe(self, observer: Any) -> None:
        for pair in self.observers:
            if _same_reference(pair[0], observer):
                self.observers.remove(pair)
                self.b.unsubscribe(pair[1])
                return


class RemoteBuild(_Remote):
    """0.8's C{RemoteBuild}."""

    def __init__(self, build: BuildStatus, remotes: Remotes | None = None) -> None:
        super().__init__(remotes)
        self.b = build
        self.observers: list[tuple[Any, BuildSubscriber]] = []

    def remote_getBuilderName(self) -> str:
        return self.b.getBuilder().getName()

    def remote_getNumber(self) -> int:
        return self.b.getNumber()

    def remote_getReason(self) -> str:
        return self.b.getReason()

    def remote_getChanges(self) -> list[Any]:
        return self.remotes.all_of(self.b.getChanges())

    def remote_getRevisions(self) -> str:
        return self.b.getRevisions()

    def remote_getResponsibleUsers(self) -> list[str]:
        return self.b.getResponsibleUsers()

    def remote_getSteps(self) -> list[Any]:
        return self.remotes.all_of(self.b.getSteps())

    def remote_getTimes(self) -> tuple[float | None, float | None]:
        return self.b.getTimes()

    def remote_isFinished(self) -> bool:
        return self.b.isFinished()

    def remote_waitUntilFinished(self) -> defer.Deferred[Any]:
        """Fires with this build once it finished."""
        return self.b.waitUntilFinished().addCallback(lambda _: self)

    def remote_getETA(self) -> float | None:
        return self.b.getETA()

    def remote_getCurrentStep(self) -> Any:
        return self.remotes.of(self.b.getCurrentStep())

    def remote_getText(self) -> list[str]:
        return self.b.getText()

    def remote_getResults(self) -> int | None:
        return self.b.getResults()

    def remote_getLogs(self) -> list[Any]:
        """
        Every log of every step, in order, as the local C{getLogs} lists
        them (0.8 meant a dict by name here, but its C{getLogs} gave a list,
        so the call failed; names repeat across steps).
        """
        return self.remotes.all_of(self.b.getLogs())

    def remote_getProperties(self) -> dict[str, Any]:
        """0.8's C{{name: (value, source)}}."""
        return dict(self.b.getProperties().asDict())

    def remote_subscribe(self, observer: Any, updateInterval: float | None = None) -> None:
        """
        C{observer} hears this build's C{stepStarted}, C{stepFinished} and,
        with C{updateInterval}, C{buildETAUpdate} (see L{BuildSubscriber}).
        """
        subscriber = BuildSubscriber(observer, self.remotes)
        subscriber.on_gone = lambda: self.remote_unsubscribe(observer)
        self.observers.append((observer, subscriber))
        self.b.subscribe(subscriber, updateInterval)

    def remote_unsubscribe(self, observer: Any) -> None:
        for pair in list(self.observers):
            if _same_reference(pair[0], observer):
                self.observers.remove(pair)
                self.b.unsubscribe(pair[1])


class BuildSubscriber:
    """0.8's C{BuildSubscriber}: one build's events, for C{RemoteBuild.remote_subscribe}."""

    def __init__(self, observer: Any, remotes: Remotes | None = None) -> None:
        self.observer = observer
        self.remotes = remotes if remotes is not None else Remotes()
        self.on_gone: Callable[[], None] = lambda: None
        self._events = _Events(observer, lambda: self.on_gone())

    def buildETAUpdate(self, build: BuildStatus, eta: float | None) -> None:
        self._events.send(
            "buildETAUpdate", build.getBuilder().getName(), self.remotes.of(build), eta
        )

    def stepStarted(self, build: BuildStatus, step: BuildStepStatus) -> None:
        self._events.send(
            "stepStarted",
            build.getBuilder().getName(),
            self.remotes.of(build),
            step.getName(),
            self.remotes.of(step),
        )

    def stepFinished(self, build: BuildStatus, step: BuildStepStatus, results: Any) -> None:
        self._events.send(
            "stepFinished",
            build.getBuilder().getName(),
            self.remotes.of(build),
            step.getName(),
            self.remotes.of(step),
            results,
        )


class RemoteBuildStep(_Remote):
    """0.8's C{RemoteBuildStep}."""

    def __init__(self, step: BuildStepStatus, remotes: Remotes | None = None) -> None:
        super().__init__(remotes)
        self.s = step

    def remote_getName(self) -> str:
        return self.s.getName()

    def remote_getBuild(self) -> Any:
        return self.remotes.of(self.s.getBuild())

    def remote_getTimes(self) -> tuple[float | None, float | None]:
        return self.s.getTimes()

    def remote_getExpectations(self) -> list[tuple[str, float, float]]:
        return self.s.getExpectations()

    def remote_getLogs(self) -> dict[str, Any]:
        """The step's logs by name, as 0.8 gave them."""
        return {lf.getName(): self.remotes.of(lf) for lf in self.s.getLogs()}

    def remote_isFinished(self) -> bool:
        return self.s.isFinished()

    def remote_waitUntilFinished(self) -> defer.Deferred[Any]:
        """Fires with this step once it finished (0.8 fired with the step status, no PB type)."""
        return self.s.waitUntilFinished().addCallback(lambda _: self)

    def remote_getETA(self) -> float | None:
        return self.s.getETA()

    def remote_getText(self) -> list[str]:
        return self.s.getText()

    def remote_getResults(self) -> tuple[int | None, list[str]]:
        return self.s.getResults()


class RemoteSlave(_Remote):
    """0.8's C{RemoteSlave}: a worker."""

    def __init__(self, slave: SlaveStatus, remotes: Remotes | None = None) -> None:
        super().__init__(remotes)
        self.s = slave

    def remote_getName(self) -> str:
        return self.s.getName()

    def remote_getAdmin(self) -> str | None:
        return self.s.getAdmin()

    def remote_getHost(self) -> str | None:
        return self.s.getHost()

    def remote_isConnected(self) -> bool:
        return self.s.isConnected()


class RemoteLog(_Remote):
    """0.8's C{RemoteLog}."""

    def __init__(self, log: LogFile, remotes: Remotes | None = None) -> None:
        super().__init__(remotes)
        self.l = log  # 0.8's name

    def remote_getName(self) -> str:
        return self.l.getName()

    def remote_isFinished(self) -> bool:
        return self.l.isFinished()

    def remote_waitUntilFinished(self) -> defer.Deferred[Any]:
        """Fires with this log once it finished."""
        return self.l.waitUntilFinished().addCallback(lambda _: self)

    def remote_getText(self) -> str:
        """
        The stdout and stderr text.  PB carries a string of at most 640 KiB:
        a longer text raises L{TooLarge}, and C{getChunks} reads it.
        """
        self._not_over(4 * _MAX_STRING)
        return _fits(self.l.getText())

    def remote_getTextWithHeaders(self) -> str:
        """All of the text, headers included; as L{remote_getText} for its size."""
        self._not_over(4 * _MAX_STRING)
        return _fits(self.l.getTextWithHeaders())

    def _not_over(self, limit: int) -> None:
        # Before reading: a log of a gigabyte must not be read into memory to say so.
        if self.l.length > limit:
            raise TooLarge(f"the log holds {self.l.length} bytes of text: read it with getChunks")

    def remote_getChunks(self) -> list[tuple[int, str]]:
        """
        The log as C{(channel, text)} chunks, each small enough for PB (a
        long run of one channel comes in several).
        """
        if self.l.length > MAX_CHUNKS_ANSWER:
            raise TooLarge(
                f"the log holds {self.l.length} bytes of text; one answer carries at most"
                f" {MAX_CHUNKS_ANSWER}: read its text page instead"
            )
        chunks = [
            (channel, piece)
            for channel, text in self.l.getChunks()
            for piece in _pieces(text)
        ]  # fmt: skip
        if len(chunks) > _MAX_STRING:
            raise TooLarge(f"the log is {len(chunks)} chunks; PB sends at most {_MAX_STRING}")
        return chunks


class RemoteChange(_Remote):
    """
    0.8's C{RemoteChange}.  0.8's had no C{remote_} methods and was no PB
    type, so no client could call it; here its methods answer.
    """

    def __init__(self, change: LegacyChange, remotes: Remotes | None = None) -> None:
        super().__init__(remotes)
        self.c = change

    def remote_getWho(self) -> str | None:
        return self.c.who

    def remote_getFiles(self) -> list[str]:
        return list(self.c.files)

    def remote_getComments(self) -> str | None:
        return self.c.comments


class RemoteEvent(_Remote):
    """
    0.8's C{RemoteEvent}: a builder's event (see C{BuilderStatus.getEvent}).
    0.8's read an attribute it did not have, so its calls failed.
    """

    def __init__(self, event: Event, remotes: Remotes | None = None) -> None:
        super().__init__(remotes)
        self.e = event

    def remote_getTimes(self) -> tuple[float | None, float | None]:
        return self.e.getTimes()

    def remote_getText(self) -> list[str]:
        return list(self.e.getText())


# Most derived first: a subclass of one of these becomes what it derives from.
_REMOTE_CLASSES: list[tuple[type, Callable[..., _Remote]]] = [
    (BuildSetStatus, RemoteBuildSet),
    (BuilderStatus, RemoteBuilder),
    (BuildRequestStatus, RemoteBuildRequest),
    (BuildStatus, RemoteBuild),
    (BuildStepStatus, RemoteBuildStep),
    (SlaveStatus, RemoteSlave),
    (LogFile, RemoteLog),
    (LegacyChange, RemoteChange),
    (Event, RemoteEvent),
]


def _remote_class(thing: Any) -> Callable[..., _Remote]:
    for cls, remote in _REMOTE_CLASSES:
        if isinstance(thing, cls):
            return remote
    raise TypeError(f"{thing!r} has no PB status reference")


for _cls, _remote in _REMOTE_CLASSES:
    # IRemote(obj), as 0.8 wrote it: a reference of its own.
    components.registerAdapter(_remote, _cls, IRemote)


class StatusClientPerspective(StatusReceiverBase, NewCredPerspective):
    """
    0.8's C{StatusClientPerspective}: what one login to a L{PBListener}
    gets.  It is a status receiver that forwards events to the client's
    C{target} as deep as the client subscribed (see
    L{perspective_subscribe}), with 0.8's event names and arguments.
    """

    subscribed: str | None = None
    client: Any = None

    def __init__(self, status: Any, listener: PBListener | None = None) -> None:
        self.status = status
        self.listener = listener
        self.interval: float | None = None
        self.subscribed_to_builders: list[str] = []  # builders followed, by name
        self.subscribed_to: list[Any] = []  # the Status, builds, steps and logs followed
        self.remotes = Remotes()
        self._events: _Events | None = None
        self._minds: list[Any] = []
        self._pending: object | None = None
        self._broker: pb.Broker | None = None

    def attached(self, mind: Any) -> StatusClientPerspective:
        if mind is not None:
            self._minds.append(mind)
        return self

    def detached(self, mind: Any) -> None:
        """The client logged out or its connection ended."""
        self._forget()
        if self.listener is not None and self in self.listener.perspectives:
            self.listener.perspectives.remove(self)

    def disconnect(self) -> None:
        """Forget the client and end its connection (the listener is stopping)."""
        events = self._events
        self._forget()
        for ref in [*self._minds, *([events.target] if events is not None else [])]:
            _disconnect(ref)

    # What the client calls

    def perspectiveMessageReceived(
        self, broker: pb.Broker, message: bytes, args: Any, kw: Any
    ) -> Any:
        self._broker = broker
        return super().perspectiveMessageReceived(broker, message, args, kw)

    def _name(self, value: Any) -> Any:
        """
        A name the client sent.  A Python 2 client (0.8's own tools) sends
        C{bytes}; from then on it gets its text as Python 2's C{str}
        (L{_pb_python2}).
        """
        if not isinstance(value, bytes):
            return value
        if self._broker is not None:
            speak_python2(self._broker)
        return value.decode("utf-8", "replace")

    def perspective_subscribe(self, mode: str, interval: float | None, target: Any) -> None:
        """
        Send C{target} the events of C{mode}:

          - C{builders}: builderAdded, builderRemoved
          - C{builds}: and builderChangedState, buildStarted, buildFinished
          - C{steps}: and buildETAUpdate, stepStarted, stepFinished
          - C{logs}: and stepETAUpdate, logStarted, logFinished
          - C{full}: and logChunk, the logs' text

        C{interval}: seconds between ETA updates (none if 0 or None).  A
        new subscription replaces the last (0.8 added one: the client heard
        everything twice), and applies from the next build.
        """
        mode = self._name(mode)
        if mode not in MODES:
            raise pb.Error(f"unknown subscription mode {mode!r}: one of {', '.join(MODES)}")
        if target is None:
            raise pb.Error("subscribe needs a target to send the events to")
        try:
            checked_interval(self._name(interval))
        except ValueError as e:
            raise pb.Error(str(e)) from None
        self._forget()
        self.client = target
        self.subscribed = mode
        self.interval = interval
        events = self._events = _Events(target, self._forget)
        twlog.msg(f"{events.name}: subscribed to {mode}")
        # After this call has answered, so the client hears of its
        # subscription before the builders it brings (0.8's order).
        pending = self._pending = object()
        eventually(self._subscribe, pending)

    def _subscribe(self, pending: object) -> None:
        if pending is self._pending and self._events is not None:
            self._pending = None
            self.subscribed_to.append(self.status)
            self.status.subscribe(self)

    def perspective_unsubscribe(self) -> None:
        """No more events."""
        self._forget()

    def perspective_getBuildSets(self) -> defer.Deferred[list[tuple[Any, int]]]:
        """The buildsets not finished yet, as C{(RemoteBuildSet, bsid)} (0.8's C{try} used it)."""
        d = self.status.getBuildSets()
        d.addCallback(lambda buildsets: [(self.remotes.of(bs), int(bs.bsid)) for bs in buildsets])
        return d

    def perspective_getBuilderNames(self) -> list[str]:
        return list(self.status.getBuilderNames())

    def perspective_getBuilder(self, name: str) -> Any:
        name = self._name(name)
        try:
            return self.remotes.of(self.status.getBuilder(name))
        except KeyError:
            raise UnknownName(f"no builder named {name!r}") from None

    def perspective_getSlave(self, name: str) -> Any:
        name = self._name(name)
        try:
            return self.remotes.of(self.status.getSlave(name))
        except KeyError:
            raise UnknownName(f"no worker named {name!r}") from None

    def perspective_ping(self) -> str:
        """For clients to check their connection."""
        return "pong"

    # The events, as far as the client subscribed

    def _follows(self, mode: str) -> bool:
        return self.subscribed is not None and MODES.index(self.subscribed) >= MODES.index(mode)

    def _send(self, method: str, *args: Any) -> None:
        if self._events is not None:
            self._events.send(method, *args)

    def _step_args(self, build: BuildStatus, step: BuildStepStatus) -> tuple[Any, ...]:
        # 0.8 added the names, so that a client need not ask for them.
        return (
            build.getBuilder().getName(),
            self.remotes.of(build),
            step.getName(),
            self.remotes.of(step),
        )

    def builderAdded(self, name: str, builder: BuilderStatus) -> Any:
        self._send("builderAdded", name, self.remotes.of(builder))
        if self._follows("builds"):
            self.subscribed_to_builders.append(name)
            return self
        return None

    def builderChangedState(self, name: str, state: str) -> None:
        self._send("builderChangedState", name, state, None)  # None: 0.8's leftover ETA

    def builderRemoved(self, name: str) -> None:
        if name in self.subscribed_to_builders:
            self.subscribed_to_builders.remove(name)
        self._send("builderRemoved", name)

    def buildStarted(self, name: str, build: BuildStatus) -> Any:
        self._send("buildStarted", name, self.remotes.of(build))
        if self._follows("steps"):
            self.subscribed_to.append(build)
            return (self, self.interval)
        return None

    def buildFinished(self, name: str, build: BuildStatus, results: Any) -> None:
        if build in self.subscribed_to:
            self.subscribed_to.remove(build)
        self._send("buildFinished", name, self.remotes.of(build), results)

    def buildETAUpdate(self, build: BuildStatus, ETA: float) -> None:
        self._send("buildETAUpdate", build.getBuilder().getName(), self.remotes.of(build), ETA)

    def stepStarted(self, build: BuildStatus, step: BuildStepStatus) -> Any:
        self._send("stepStarted", *self._step_args(build, step))
        if self._follows("logs"):
            self.subscribed_to.append(step)
            return (self, self.interval)
        return None

    def stepFinished(self, build: BuildStatus, step: BuildStepStatus, results: Any) -> None:
        self._send("stepFinished", *self._step_args(build, step), results)
        if step in self.subscribed_to:
            self.subscribed_to.remove(step)

    def stepETAUpdate(
        self, build: BuildStatus, step: BuildStepStatus, ETA: float, expectations: Any
    ) -> None:
        self._send("stepETAUpdate", *self._step_args(build, step), ETA, expectations)

    def logStarted(self, build: BuildStatus, step: BuildStepStatus, log: LogFile) -> Any:
        self._send("logStarted", *self._step_args(build, step), log.getName(), self.remotes.of(log))
        if self._follows("full"):
            self.subscribed_to.append(log)
            return self
        return None

    def logFinished(self, build: BuildStatus, step: BuildStepStatus, log: LogFile) -> None:
        self._send(
            "logFinished", *self._step_args(build, step), log.getName(), self.remotes.of(log)
        )
        if log in self.subscribed_to:
            self.subscribed_to.remove(log)

    def logChunk(
        self, build: BuildStatus, step: BuildStepStatus, log: LogFile, channel: int, text: str
    ) -> None:
        args = (*self._step_args(build, step), log.getName(), self.remotes.of(log), channel)
        for piece in _pieces(text):
            self._send("logChunk", *args, piece)

    def _forget(self) -> None:
        """Follow nothing and send nothing more (idempotent)."""
        if self._events is not None:
            self._events.stop()
            self._events = None
        self._pending = None
        self.client = None
        self.subscribed = None
        for name in self.subscribed_to_builders:
            try:
                self.status.getBuilder(name).unsubscribe(self)
            except KeyError:
                pass  # removed meanwhile
        for thing in self.subscribed_to:
            thing.unsubscribe(self)
        self.subscribed_to_builders = []
        self.subscribed_to = []
        self.remotes.clear()


class PBListener(StatusReceiverMultiService):
    """
    0.8's C{PBListener(port, user="statusClient", passwd="clientpw")}: a
    PB port that status clients log into.  C{port} is a strports string, or
    a number: the workers' port if it is theirs (0.8 shared it), else that
    port on loopback only (a strports string says where else).  It listens
    while its C{LegacyStatus} runs, through the master's PB manager.
    """

    compare_attrs: list[str] = ["port", "cred"]  # a list, as 0.8's was

    def __init__(
        self, port: str | int, user: str = "statusClient", passwd: str = "clientpw"
    ) -> None:
        super().__init__()
        self.port = port
        self.cred = (user, passwd)
        self.status: Any = None
        self.registration: Any = None
        self.perspectives: list[StatusClientPerspective] = []

    def setServiceParent(self, parent: Any) -> Any:
        self.status = parent.getStatus()
        return super().setServiceParent(parent)

    def getStatus(self) -> Any:
        """The 0.8 C{Status}: the C{LegacyStatus} this listener was given to."""
        if self.status is None:
            raise RuntimeError("PBListener: give it to reporters.LegacyStatus(receivers=[...])")
        return self.status

    @property
    def listening_port(self) -> int | None:
        """Beyond 0.8: the TCP port number it listens on (for C{tcp:0}), or None."""
        return None if self.registration is None else int(self.registration.getPort())

    @defer.inlineCallbacks
    def startService(self) -> Any:
        yield super().startService()
        user, passwd = self.cred
        master = self.getStatus().master
        portstr = _listening_portstr(self.port, master.config.protocols)
        if "interface=127." not in portstr and "interface=\\:\\:1" not in portstr:
            twlog.msg(
                f"PBListener: status clients may log in from other hosts on {portstr!r},"
                f" as {self.cred[0]!r}"
            )
        try:
            self.registration = yield master.pbmanager.register(
                portstr, user, passwd, self._new_perspective
            )
        except Exception:
            # A port taken, an ssl: key file missing...
            yield _drop_deaf_dispatcher(master.pbmanager, portstr)
            raise

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        registration, self.registration = self.registration, None
        if registration is not None:
            yield registration.unregister()
        perspectives, self.perspectives = self.perspectives, []
        for perspective in perspectives:
            perspective.disconnect()
        yield super().stopService()

    def _new_perspective(self, mind: Any, username: str) -> StatusClientPerspective:
        perspective = StatusClientPerspective(self.getStatus(), self)
        self.perspectives.append(perspective)
        return perspective


@defer.inlineCallbacks
def _drop_deaf_dispatcher(manager: Any, portstr: str) -> Any:
    """
    Buildbot's PB manager keeps the dispatcher of a port it could not open:
    a later registration there (this listener started again at the next
    reconfig) would find it and never listen, and stopping it fails.
    """
    dispatcher = manager.dispatchers.get(portstr)
    if dispatcher is not None and dispatcher.port is None:
        del manager.dispatchers[portstr]
        # It never started listening: there is nothing to stop (as Buildbot
        # itself does for a service it has stopped already).
        dispatcher.stopService = lambda: None
        yield dispatcher.disownServiceParent()


def _port_number(portstr: str | int) -> str | None:
    """The TCP port a strports string (or a bare number) names, or None."""
    text = str(portstr)
    if ":" not in text:
        return text
    kind, *parts = text.split(":")
    if kind not in ("tcp", "tcp6"):
        return None
    for part in parts:
        key, equals, value = part.partition("=")
        if not equals:
            return part
        if key == "port":
            return value
    return None


def _listening_portstr(port: str | int, protocols: dict[str, Any]) -> str:
    """Where a C{PBListener} given C{port} listens: see L{PBListener}."""
    if isinstance(port, str) and ":" in port:
        return port
    workers = (protocols.get("pb") or {}).get("port")
    if workers is not None and _port_number(workers) == str(port):
        # The string the workers' port was registered under, as the PB manager keys it.
        return str(workers) if ":" in str(workers) else f"tcp:{workers}"
    return f"tcp:{port}:interface=127.0.0.1"
