"""
0.8's C{buildbot.status.status_push}: C{StatusPush} turns every status
event into a packet of the status objects' C{asDict()} and queues it;
C{HttpStatusPush} POSTs the queued packets to a server, as a form field
C{packets} holding a JSON list, the way 0.8.12 did.

Nothing is lost while the server is away: packets that a push did not
deliver go back to the front of the queue and are tried again every
C{retryDelay} seconds, one at a time until one gets through.  When the
master stops, the last packets are tried once more and what is left is
saved (to disk for C{HttpStatusPush}, in 0.8's layout) and sent after the
restart.  Packet ids keep counting across restarts (the C{state} file).
"""

from __future__ import annotations

import datetime
import io
import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode, urljoin, urlparse

from twisted.internet import defer, protocol
from twisted.python import log
from twisted.web.client import Agent, FileBodyProducer, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from buildbot_logfile._json_status import FilterOut
from buildbot_logfile._persistent_queue import (
    DiskQueue,
    IndexedQueue,
    MemoryQueue,
    PersistentQueue,
)
from buildbot_logfile.base import StatusReceiverMultiService


def _utcnow() -> str:
    # 0.8's str(datetime.datetime.utcnow()): naive, space-separated.
    return str(datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None))


class StatusPush(StatusReceiverMultiService):
    """
    Every status event as a packet, queued, then handed to
    C{serverPushCb(self)} at most every C{bufferDelay} seconds (every
    C{retryDelay} seconds while pushes fail).  The callback pops packets
    with C{self.queue.popChunk()}, puts back those it could not deliver
    with C{insertBackChunk}, and calls L{queueNextServerPush} when done.

    C{filter}: drop empty and false values from the payloads (0.8's
    C{FilterOut}).  C{blackList}: event names not to push.  C{path}: a
    directory for the C{state} file (relative to the master's basedir).
    """

    # A list, as 0.8's was: subclasses extend it (StatusPush.compare_attrs + [...]).
    compare_attrs: list[str] = [
        "serverPushCb",
        "path",
        "filter",
        "bufferDelay",
        "retryDelay",
        "blackList",
    ]
    # How long a push may take, and a stopping master waits for the last ones (seconds).
    timeout = 60

    def __init__(
        self,
        serverPushCb: Callable[[Any], Any],
        queue: Any = None,
        path: str | None = None,
        filter: bool = True,
        bufferDelay: float = 1,
        retryDelay: float = 5,
        blackList: Iterable[str] | None = None,
    ) -> None:
        StatusReceiverMultiService.__init__(self)
        if not callable(serverPushCb):
            raise NotImplementedError("Please pass serverPushCb parameter.")
        self.serverPushCb = serverPushCb
        self.queue = IndexedQueue(MemoryQueue() if queue is None else queue)
        self.path = path
        self.filter = filter
        self.bufferDelay = bufferDelay
        self.retryDelay = retryDelay
        self.blackList = list(blackList) if blackList else None
        self.status: Any = None
        # The next push, as an IDelayedCall, and the one running, as a Deferred.
        self.task: Any = None
        self._pushing: defer.Deferred[Any] | None = None
        self.stopped = False
        self.lastIndex = -1
        self.state: dict[str, Any] = {"started": _utcnow(), "next_id": 1, "last_id_pushed": 0}

    # Lifecycle

    def _legacy_status(self) -> Any:
        assert self.parent is not None, "a StatusPush runs under a LegacyStatus"
        return self.parent

    def _master(self) -> Any:
        return self._legacy_status().master

    def _state_path(self) -> str | None:
        if not self.path:
            return None
        return os.path.join(self._master().basedir, self.path, "state")

    def startService(self) -> Any:
        self.stopped = False
        self._load_state()
        d = StatusReceiverMultiService.startService(self)
        self.status = self._legacy_status().getStatus()
        self.status.subscribe(self)
        self.initialPush()
        return d

    def _load_state(self) -> None:
        path = self._state_path()
        if path is None or not os.path.isfile(path):
            return
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            next_id = int(saved["next_id"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            # Ids start over; the packets themselves are in the queue.
            log.msg(f"{self.__class__.__name__}: ignoring the unreadable state file {path}: {e}")
            return
        self.state.update(saved, next_id=next_id)

    def _save_state(self) -> None:
        path = self._state_path()
        if path is None:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = path + ".tmp"
        with open(partial, "w", encoding="utf-8") as f:
            json.dump(self.state, f, sort_keys=True, indent=2)
        os.replace(partial, path)

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        """
        Push what is queued while the server takes it, then keep the rest
        for the next start.
        """
        if self.status is not None:
            self.finalPush()
            self.status.unsubscribe(self)
        self.stopped = True
        if self.task is not None and self.task.active():
            self.task.cancel()
        self.task = None
        # A push cut short by the deadline puts its packets back; the rest are saved.
        reactor = self._master().reactor
        deadline = reactor.seconds() + self.timeout
        if self._pushing is not None:
            yield self._by(self._pushing, deadline)
        while self.wasLastPushSuccessful() and self.queue.nbItems():
            left = self.queue.nbItems()
            yield self._by(self._push_now(), deadline)
            if self.queue.nbItems() >= left or reactor.seconds() >= deadline:
                break
        try:
            self.queue.save()
        except OSError as e:
            log.msg(f"{self.__class__.__name__}: {self.queue.nbItems()} packets not saved: {e}")
        try:
            # Even with packets unsaved: ids must not repeat those on disk.
            self._save_state()
        except OSError as e:
            log.msg(f"{self.__class__.__name__}: the state (next packet id) not saved: {e}")
        yield StatusReceiverMultiService.stopService(self)

    def _by(self, pushing: defer.Deferred[Any], deadline: float) -> defer.Deferred[Any]:
        """C{pushing}, cancelled if it runs past C{deadline}; never failing."""
        reactor = self._master().reactor
        pushing.addTimeout(max(0.0, deadline - reactor.seconds()), reactor)
        return pushing.addErrback(lambda f: log.msg(f"{self.__class__.__name__}: {f.value!r}"))

    # Pushing

    def wasLastPushSuccessful(self) -> bool:
        """Whether the last push took anything out of the queue for good."""
        return self.lastIndex <= self.queue.getIndex()

    def queueNextServerPush(self) -> defer.Deferred[None]:
        """
        Plan the next push: C{bufferDelay} from now, or C{retryDelay} after a
        push that delivered nothing; nothing if one is planned or running.
        An already-fired Deferred, as 0.8's subclasses expect.
        """
        planned = self.task is not None and self.task.active()
        if not (self.stopped or planned or self._pushing is not None):
            delay = self.bufferDelay if self.wasLastPushSuccessful() else self.retryDelay
            self.task = self._master().reactor.callLater(delay, self._push_now)
        return defer.succeed(None)

    def _push_now(self) -> defer.Deferred[Any]:
        """Call the push callback if anything is queued; it plans the next push."""
        self.task = None
        if not self.queue.nbItems():
            return defer.succeed(None)
        self.lastIndex = self.queue.getIndex()
        # Set before the callbacks: a callback that finishes at once clears it.
        self._pushing = pushing = defer.maybeDeferred(self.serverPushCb, self)
        pushing.addErrback(self._push_failed)
        pushing.addBoth(self._pushed)
        return pushing

    def _push_failed(self, failure: Any) -> None:
        log.msg(f"{self.__class__.__name__}: the push callback failed: {failure.getErrorMessage()}")

    def _pushed(self, result: Any) -> None:
        # A 0.8 callback's own queueNextServerPush() came while it ran; plan it now.
        self._pushing = None
        if not self.stopped and self.queue.nbItems():
            self.queueNextServerPush()

    def push(self, event: str, **objs: Any) -> defer.Deferred[None]:
        """
        Queue C{event} with the C{asDict()} of C{objs} as its payload.  An
        already-fired Deferred, as 0.8's subclasses expect (they add an
        errback); a packet that cannot be made or queued is logged here,
        and the event's receiver goes on.
        """
        try:
            self._push(event, objs)
        except Exception:
            log.err(None, f"{self.__class__.__name__}: while pushing {event}")
        return defer.succeed(None)

    def _push(self, event: str, objs: dict[str, Any]) -> None:
        if self.blackList and event in self.blackList:
            return
        packet: dict[str, Any] = {
            "id": self.state["next_id"],
            "timestamp": _utcnow(),
            "project": self.status.getTitle(),
            "started": self.state["started"],
            "event": event,
            "payload": {},
        }
        self.state["next_id"] += 1
        for name, obj in objs.items():
            value = obj.asDict() if hasattr(obj, "asDict") else obj
            packet["payload"][name] = FilterOut(value) if self.filter else value
        dropped = self.queue.pushItem(packet)
        if dropped is not None:
            log.msg(f"{self.__class__.__name__}: queue full, packet {dropped.get('id')} dropped")
        self.queueNextServerPush()

    # The events, as 0.8.12 pushed them

    def initialPush(self) -> None:
        self.push("start", status=self.status)

    def finalPush(self) -> None:
        self.push("shutdown", status=self.status)

    def requestSubmitted(self, request: Any) -> None:
        self.push("requestSubmitted", request=request)

    def requestCancelled(self, builder: Any, request: Any) -> None:
        self.push("requestCancelled", builder=builder, request=request)

    def buildsetSubmitted(self, buildset: Any) -> None:
        self.push("buildsetSubmitted", buildset=buildset)

    def builderAdded(self, builderName: str, builder: Any) -> Any:
        self.push("builderAdded", builderName=builderName, builder=builder)
        return self

    def builderChangedState(self, builderName: str, state: str) -> None:
        self.push("builderChangedState", builderName=builderName, state=state)

    def buildStarted(self, builderName: str, build: Any) -> Any:
        self.push("buildStarted", build=build)
        return self

    def buildETAUpdate(self, build: Any, ETA: float) -> None:
        self.push("buildETAUpdate", build=build, ETA=ETA)

    def stepStarted(self, build: Any, step: Any) -> None:
        self.push("stepStarted", properties=build.getProperties().asList(), step=step)

    def stepTextChanged(self, build: Any, step: Any, text: list[str]) -> None:
        self.push(
            "stepTextChanged", properties=build.getProperties().asList(), step=step, text=text
        )

    def stepText2Changed(self, build: Any, step: Any, text2: list[str]) -> None:
        self.push(
            "stepText2Changed", properties=build.getProperties().asList(), step=step, text2=text2
        )

    def stepETAUpdate(self, build: Any, step: Any, ETA: float, expectations: Any) -> None:
        self.push(
            "stepETAUpdate",
            properties=build.getProperties().asList(),
            step=step,
            ETA=ETA,
            expectations=expectations,
        )

    def logStarted(self, build: Any, step: Any, log: Any) -> None:
        self.push("logStarted", properties=build.getProperties().asList(), step=step)

    def logFinished(self, build: Any, step: Any, log: Any) -> None:
        self.push("logFinished", properties=build.getProperties().asList(), step=step)

    def stepFinished(self, build: Any, step: Any, results: Any) -> None:
        self.push("stepFinished", properties=build.getProperties().asList(), step=step)

    def buildFinished(self, builderName: str, build: Any, results: Any) -> None:
        self.push("buildFinished", build=build)

    def builderRemoved(self, builderName: str) -> None:
        # 0.8.12's spelling, which its servers expect.
        self.push("buildedRemoved", builderName=builderName)

    def changeAdded(self, change: Any) -> None:
        self.push("changeAdded", change=change)

    def slaveConnected(self, slavename: str) -> None:
        self.push("slaveConnected", slave=self.status.getSlave(slavename))

    def slaveDisconnected(self, slavename: str) -> None:
        self.push("slaveDisconnected", slavename=slavename)

    def slavePaused(self, slavename: str) -> None:
        self.push("slavePaused", slavename=slavename)

    def slaveUnpaused(self, slavename: str) -> None:
        self.push("slaveUnpaused", slavename=slavename)


class HttpStatusPush(StatusPush):
    """
    POSTs the queued packets to C{serverUrl}, C{chunkSize} at a time, as
    the form field C{packets} (a JSON list; indented with C{debug}) plus
    C{extra_post_params}.  A body over C{maxHttpRequestSize} bytes is sent
    as halves; a single packet over it is dropped and logged, as in 0.8.
    Packets wait in memory (C{maxMemoryItems}) and then on disk
    (C{maxDiskItems}; 0 for no disk), in C{events_<server host>} in the
    master's basedir, as 0.8 kept them.

    A push that gets no answer within L{timeout} seconds, or an answer
    other than 2xx, delivered nothing: its packets are sent again.
    """

    compare_attrs: list[str] = [
        *StatusPush.compare_attrs,
        "serverUrl",
        "debug",
        "maxMemoryItems",
        "maxDiskItems",
        "chunkSize",
        "maxHttpRequestSize",
        "extra_post_params",
    ]

    def __init__(
        self,
        serverUrl: str,
        debug: bool | None = None,
        maxMemoryItems: int | None = None,
        maxDiskItems: int | None = None,
        chunkSize: int = 200,
        maxHttpRequestSize: int = 2**20,
        extra_post_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.serverUrl = serverUrl
        self.debug = debug
        self.maxMemoryItems = maxMemoryItems
        self.maxDiskItems = maxDiskItems
        self.chunkSize = chunkSize
        self.maxHttpRequestSize = maxHttpRequestSize
        self.extra_post_params = dict(extra_post_params or {})
        self.lastPushWasSuccessful = True
        self._folder = ""
        host = _checked_host(serverUrl)
        path = None if maxDiskItems == 0 else f"events_{host}"
        StatusPush.__init__(
            self,
            serverPushCb=HttpStatusPush.pushHttp,
            queue=MemoryQueue(maxItems=maxMemoryItems),
            path=path,
            **kwargs,
        )

    def startService(self) -> Any:
        # The disk queue lives in the master's basedir, known only now
        # (0.8's master ran there); what a previous run left is sent first.
        if self.path is not None and not isinstance(self.queue.queue, PersistentQueue):
            self.path = _folder_of_08(self._master().basedir, self.serverUrl) or self.path
            memory = self.queue.queue
            where = os.path.realpath(os.path.join(self._master().basedir, self.path))
            try:
                if where in _FOLDERS_IN_USE:
                    raise OSError(
                        f"another HttpStatusPush to {self.serverUrl!r} keeps its queue there"
                    )
                disk = DiskQueue(where, maxItems=self.maxDiskItems)
                queue = PersistentQueue(primaryQueue=memory, secondaryQueue=disk)
            except OSError as e:
                # The master runs on; only a restart would lose what is queued.
                log.msg(f"HttpStatusPush: packets are kept in memory only, not in {where}: {e}")
                self.path = None
            else:
                _FOLDERS_IN_USE.add(where)
                self._folder = where
                self.queue = IndexedQueue(queue)
        return StatusPush.startService(self)

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        try:
            yield StatusPush.stopService(self)
        finally:
            _FOLDERS_IN_USE.discard(self._folder)

    def wasLastPushSuccessful(self) -> bool:
        return self.lastPushWasSuccessful

    def popChunk(self) -> tuple[bytes, list[Any]]:
        """
        The next body and its packets: C{chunkSize} of them, or one while
        the server is failing; halved until the body fits.
        """
        size = self.chunkSize if self.wasLastPushSuccessful() else 1
        while True:
            items = self.queue.popChunk(size)
            # default=str: a packet a plugin pushed with something JSON lacks still goes.
            if self.debug:
                packets = json.dumps(items, indent=2, sort_keys=True, default=str)
            else:
                packets = json.dumps(items, separators=(",", ":"), default=str)
            data = urlencode({"packets": packets, **self.extra_post_params}).encode("ascii")
            if not self.maxHttpRequestSize or len(data) < self.maxHttpRequestSize:
                return data, items
            if len(items) == 1:
                log.msg(
                    "ERROR: packet %s was dropped, too large: %d > %d"
                    % (items[0]["id"], len(data), self.maxHttpRequestSize)
                )
                size = self.chunkSize
            else:
                self.queue.insertBackChunk(items)
                size = max(1, len(items) // 2)
            if not self.queue.nbItems():
                return b"", []

    @defer.inlineCallbacks
    def pushHttp(self) -> Any:
        """POST the next chunk; put it back if the server did not take it."""
        data, items = self.popChunk()
        if not items:
            return
        reactor = self._master().reactor
        try:
            # One deadline for connecting, sending, and reading the whole answer.
            exchange = self._post(data)
            exchange.addTimeout(self.timeout, reactor)
            yield exchange
        except Exception as e:
            log.msg(f"Failed to push {len(items)} events to {self.serverUrl}: {e!r}")
            dropped = self.queue.insertBackChunk(items)
            if dropped:
                ids = ", ".join(str(p.get("id")) for p in dropped)
                log.msg(f"HttpStatusPush: queue full, packets {ids} dropped")
            self.lastPushWasSuccessful = False
            return
        log.msg(f"Sent {len(items)} events to {self.serverUrl}")
        self.state["last_id_pushed"] = items[-1]["id"]
        self.lastPushWasSuccessful = True

    @defer.inlineCallbacks
    def _post(self, data: bytes) -> Any:
        """
        POST C{data}; a redirect is followed with the same POST, as 0.8's
        C{getPage} followed it (an http URL moved to https, a path to its
        slash), at most L{REDIRECTS} times.
        """
        reactor = self._master().reactor
        agent = Agent(reactor, connectTimeout=self.timeout)
        headers = Headers(
            {
                b"Content-Type": [b"application/x-www-form-urlencoded"],
                b"User-Agent": [b"buildbot"],
            }
        )
        url = self.serverUrl.encode("ascii")
        for _ in range(REDIRECTS + 1):
            body = FileBodyProducer(io.BytesIO(data))
            response = yield agent.request(b"POST", url, headers, body)
            drain = _Drain()
            response.deliverBody(drain)
            yield drain.done
            location = response.headers.getRawHeaders(b"location")
            if response.code not in (301, 302, 307, 308) or not location:
                break
            url = urljoin(url, location[0])
            if urlparse(url).scheme not in (b"http", b"https"):
                raise _Refused(f"HTTP {response.code} to {url!r}, not an http(s) URL")
        else:
            raise _Refused(f"more than {REDIRECTS} redirects")
        if not 200 <= response.code < 300:
            raise _Refused(f"HTTP {response.code} {response.phrase.decode('latin-1')}")


# Redirects a push follows, as Twisted's getPage did for 0.8.
REDIRECTS = 20

# The disk queues of the running HttpStatusPushes: two in one folder would
# overwrite each other's packets (0.8 named the folder by host alone).
_FOLDERS_IN_USE: set[str] = set()


def _folder_of_08(basedir: str, url: str) -> str | None:
    """
    The queue folder 0.8 named for C{url}, if one is there and its name is
    not this one's: 0.8 took the host as written (C{Dashboard.Example.com}),
    and what came before a C{:} in the address (a user name, before a
    password).
    """
    name = "events_" + urlparse(url).netloc.split(":")[0]
    if "/" in name or name == f"events_{_checked_host(url)}":
        return None
    return name if os.path.isdir(os.path.join(basedir, name)) else None


def _checked_host(url: str) -> str:
    """The host of an http(s) URL Twisted can request, or a clear error."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"HttpStatusPush: {url!r} is not an http(s) URL")
    if not url.isascii() or any(c.isspace() for c in url):
        raise ValueError(
            f"HttpStatusPush: {url!r} must be ASCII without spaces (quote it; IDNA for the host)"
        )
    return parsed.hostname


class _Drain(protocol.Protocol):
    """
    Reads an answer's body and drops it.  Cancelling C{done} closes the
    connection: C{readBody}'s cancel cannot reach it through an Agent's
    response, and a server that stalls mid-body would hold it forever.
    """

    def __init__(self) -> None:
        self.done: defer.Deferred[None] = defer.Deferred(self._cancel)

    def _cancel(self, done: defer.Deferred[None]) -> None:
        if self.transport is not None:
            # An Agent's response gives its body protocol the connection as a producer.
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(None)
        else:
            self.done.errback(reason)


class _Refused(Exception):
    """The server answered, but not with 2xx."""
