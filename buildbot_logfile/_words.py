"""
0.8's C{buildbot.status.words}: C{IRC}, the status receiver that keeps a
bot on an IRC server, announcing builds to its channels and answering
commands (C{IrcStatusBot}, its C{IRCContact}s, the reconnecting
C{IrcStatusFactory}).

0.8.14's code in Python 3, on Twisted's C{IRCClient}.  It is an outgoing
client only: it listens on no port.  Beyond 0.8.14, the names older 0.8
plugins imported from this module: C{Contact} and C{IChannel} (0.7 to
0.8.5), C{StatusBot} (the protocol-independent bot of "nine", the branch
that became 0.9).
"""

from __future__ import annotations

import random
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from buildbot import config, interfaces, util, version
from buildbot.process.properties import Properties
from buildbot.process.results import EXCEPTION, FAILURE, RETRY, SUCCESS, WARNINGS
from buildbot.util.twisted import async_to_deferred
from twisted.application import internet
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python import log, usage
from twisted.python.failure import Failure
from twisted.words.protocols import irc
from zope.interface import Interface, implementer

from buildbot_logfile import base
from buildbot_logfile._changes import SourceStamp
from buildbot_logfile._status_base import TagsAlias
from buildbot_logfile._within import within
from buildbot_logfile._words_contact import (
    Contact,
    ForceOptions,
    IrcBuildRequest,
    IRCContact,
    maybeColorize,
    valid_event,
)
from buildbot_logfile._words_control import Control, UsageError
from buildbot_logfile.interfaces import IStatusReceiver

# twisted.internet.ssl requires PyOpenSSL, so be resilient if it's missing
try:
    from twisted.internet import ssl

    have_ssl = True
except ImportError:  # pragma: no cover  (Buildbot 4 brings PyOpenSSL)
    have_ssl = False

# What buildbot.status.words holds: 0.8's names, those its module had
# imported that plugins took from it (log, shlex...), and older 0.8's.
__all__ = [
    "EXCEPTION", "FAILURE", "IRC", "RETRY", "SUCCESS", "WARNINGS", "Contact", "Control",
    "ForceOptions", "IChannel", "IRCContact", "IStatusReceiver", "IrcBuildRequest",
    "IrcStatusBot", "IrcStatusFactory", "Properties", "SourceStamp", "StatusBot",
    "ThrottledClientFactory", "UsageError", "base", "config", "defer", "have_ssl", "interfaces",
    "internet", "irc", "log", "maybeColorize", "protocol", "random", "re", "reactor", "shlex",
    "task", "usage", "util", "version",
]  # fmt: skip
if have_ssl:
    __all__ += ["ssl"]


def _text(message: str | bytes) -> str:
    """What to send: plugins written for 0.8 sent bytes (UTF-8, or 0.8's ASCII)."""
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")
    return message


class IChannel(Interface):
    """I represent the buildbot's presence in a particular IM scheme.

    This provides the connection to the IRC server, or represents the
    buildbot's account with an IM service. Each Channel will have zero or
    more Contacts associated with it.  (0.7 to 0.8.5; XMPP bots declared it.)
    """


class StatusBot:
    """
    A chat bot apart from its chat protocol: the status it reports, its
    settings, and its contacts.  0.8.14 had it all in C{IrcStatusBot}; the
    nine branch split it out, and XMPP bots subclassed it
    (C{StatusBot.__init__(self, status, categories, notify_events,
    noticeOnChannel, useRevisions, showBlameList, useColors)}, or with
    keywords only).
    """

    contactClass: Callable[[Any, str], Any] = Contact
    status: Any = None
    control: Any = None

    def __init__(
        self,
        status: Any = None,
        tags: list[str] | None = None,
        notify_events: Iterable[str] | None = None,
        noticeOnChannel: bool = False,
        useRevisions: bool = False,
        showBlameList: bool = False,
        useColors: bool = True,
        categories: list[str] | None = None,
    ) -> None:
        self.status = status
        self.master = getattr(status, "master", None)
        self.tags = tags or categories
        self.notify_events = notify_events if notify_events is not None else {}
        self.noticeOnChannel = noticeOnChannel
        self.useRevisions = useRevisions
        self.showBlameList = showBlameList
        self.useColors = useColors
        self.contacts: dict[str, Any] = {}
        self._pending: set[IDelayedCall] = set()

    categories = TagsAlias()

    def getContact(self, name: str) -> Any:
        name = name.lower()  # nicknames and channel names are case insensitive
        if name in self.contacts:
            return self.contacts[name]
        new_contact = self.contactClass(self, name)
        self.contacts[name] = new_contact
        return new_contact

    def log(self, msg: str) -> None:
        log.msg("%s: %s" % (self, msg))

    # Beyond 0.8: what the contacts schedule, and the end of a connection

    def _clock(self) -> IReactorTime:
        master_reactor = getattr(self.master, "reactor", None)
        return cast(IReactorTime, master_reactor if master_reactor is not None else reactor)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> IDelayedCall:
        """
        Call C{fn(*args)} in C{delay} seconds, unless the bot's connection
        ends first (a reply to a command, a build's report): 0.8 left those
        to fire into a closed connection.  Its failure is logged.
        """

        def run() -> None:
            self._pending.discard(call)
            try:
                fn(*args)
            except Exception:
                log.err(None, f"{self!r}: while answering")

        call = self._clock().callLater(delay, run)
        self._pending.add(call)
        return call

    def forget_contacts(self) -> None:
        """The connection ended: its contacts hear and say no more."""
        for call in list(self._pending):
            if call.active():
                call.cancel()
        self._pending.clear()
        contacts, self.contacts = self.contacts, {}
        for contact in contacts.values():
            detach = getattr(contact, "detach", None)
            if detach is not None:
                try:
                    detach()
                except Exception:
                    log.err(None, f"{self!r}: while forgetting {contact!r}")


@implementer(IChannel)
class IrcStatusBot(StatusBot, irc.IRCClient):
    """I represent the buildbot to an IRC server."""

    contactClass = IRCContact

    def __init__(
        self,
        nickname: str,
        password: str | None,
        channels: Iterable[str | Mapping[str, str]],
        pm_to_nicks: Iterable[str],
        status: Any,
        tags: list[str] | None,
        notify_events: Iterable[str],
        noticeOnChannel: bool = False,
        useRevisions: bool = False,
        showBlameList: bool = False,
        useColors: bool = True,
    ) -> None:
        StatusBot.__init__(
            self, status, tags, notify_events, noticeOnChannel=noticeOnChannel,
            useRevisions=useRevisions, showBlameList=showBlameList, useColors=useColors,
        )  # fmt: skip
        self.nickname = nickname
        self.channels = channels
        self.pm_to_nicks = pm_to_nicks
        # Twisted's IRCClient also sends it as the server's PASS, as it did in 0.8.
        self.password = password  # type: ignore[assignment]
        self.hasQuit = 0
        self._keepAliveCall = task.LoopingCall(lambda: self.ping(self.nickname))
        self._keepAliveCall.clock = self._clock()

    def connectionMade(self) -> None:
        irc.IRCClient.connectionMade(self)
        self._keepAliveCall.start(60)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if self._keepAliveCall.running:
            self._keepAliveCall.stop()
        irc.IRCClient.connectionLost(self, reason)
        self.forget_contacts()

    def msgOrNotice(self, dest: str, message: str | bytes) -> None:
        if self.noticeOnChannel and dest[0] == "#":
            self.notice(dest, _text(message))
        else:
            self.msg(dest, _text(message))

    # Plugins written for Python 2 gave these bytes; 0.7's bots, reply and me.

    def msg(self, user: str, message: str | bytes, length: int | None = None) -> None:
        irc.IRCClient.msg(self, user, _text(message), length)

    def notice(self, user: str, message: str | bytes, length: int | None = None) -> None:
        irc.IRCClient.notice(self, user, _text(message), length)

    def describe(self, channel: str, action: str | bytes) -> None:
        irc.IRCClient.describe(self, channel, _text(action))

    def me(self, channel: str, action: str | bytes) -> None:
        self.describe(channel, action)

    def reply(self, dest: str, message: str | bytes) -> None:
        self.msgOrNotice(dest, message)

    # the following irc.IRCClient methods are called when we have input

    def privmsg(self, user: str, channel: str, message: str) -> None:
        # A contact that raises is logged; 0.8 lost its connection over it.
        try:
            self._privmsg(user, channel, message)
        except Exception:
            log.err(None, f"IRC: while answering {user!r} in {channel!r}")

    def _privmsg(self, user: str, channel: str, message: str) -> None:
        user = user.split("!", 1)[0]  # rest is ~user@hostname
        # channel is '#twisted' or 'buildbot' (for private messages)
        if channel == self.nickname:
            # private message
            contact = self.getContact(user)
            contact.handleMessage(message, user)
            return
        # else it's a broadcast message, maybe for us, maybe not. 'channel'
        # is '#twisted' or the like.
        contact = self.getContact(channel)
        if message.startswith(("%s:" % self.nickname, "%s," % self.nickname)):
            message = message[len("%s:" % self.nickname) :]
            contact.handleMessage(message, user)

    def action(self, user: str, channel: str, data: str) -> None:
        try:
            user = user.split("!", 1)[0]  # rest is ~user@hostname
            # somebody did an action (/me actions) in the broadcast channel
            contact = self.getContact(channel)
            if self.nickname in data:
                contact.handleAction(data, user)
        except Exception:
            log.err(None, f"IRC: while answering {user!r}'s action in {channel!r}")

    def signedOn(self) -> None:
        if self.password:
            self.msg("Nickserv", "IDENTIFY " + self.password)
        for c in self.channels:
            if isinstance(c, Mapping):
                channel = c.get("channel", None)
                password = c.get("password", None)
            else:
                channel = c
                password = None
            self.join(channel=channel, key=password)
        for c in self.pm_to_nicks:
            self.getContact(c)

    def joined(self, channel: str) -> None:
        self.log("I have joined %s" % (channel,))
        # trigger contact contructor, which in turn subscribes to notify events
        self.getContact(channel)

    def left(self, channel: str) -> None:
        self.log("I have left %s" % (channel,))

    def kickedFrom(self, channel: str, kicker: str, message: str) -> None:
        self.log("I have been kicked from %s by %s: %s" % (channel, kicker, message))


class ThrottledClientFactory(protocol.ClientFactory):
    """
    Connects again, C{lostDelay} seconds after a connection was lost and
    C{failedDelay} seconds after one could not be made.  Beyond 0.8, each
    is logged with its reason, and L{stop_retrying} cancels a retry that
    is waiting.
    """

    lostDelay = random.randint(1, 5)
    failedDelay = random.randint(45, 60)
    _retry: IDelayedCall | None = None

    def __init__(self, lostDelay: float | None = None, failedDelay: float | None = None) -> None:
        if lostDelay is not None:
            self.lostDelay = lostDelay  # type: ignore[assignment]
        if failedDelay is not None:
            self.failedDelay = failedDelay  # type: ignore[assignment]

    def _connect_in(self, delay: float, connector: Any) -> None:
        def connect() -> None:
            self._retry = None
            connector.connect()

        self._retry = cast(IReactorTime, reactor).callLater(delay, connect)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        log.msg(
            f"IRC: connection to {_where(connector)} lost ({reason.getErrorMessage()});"
            f" connecting again in {self.lostDelay} s"
        )
        self._connect_in(self.lostDelay, connector)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        log.msg(
            f"IRC: cannot connect to {_where(connector)} ({reason.getErrorMessage()});"
            f" trying again in {self.failedDelay} s"
        )
        self._connect_in(self.failedDelay, connector)

    def stop_retrying(self) -> None:
        """No more connecting: the retry waiting, if any, is cancelled."""
        retry, self._retry = self._retry, None
        if retry is not None and retry.active():
            retry.cancel()


def _where(connector: Any) -> str:
    destination = connector.getDestination()
    return f"{getattr(destination, 'host', '?')}:{getattr(destination, 'port', '?')}"


class IrcStatusFactory(ThrottledClientFactory):
    protocol = IrcStatusBot

    status: Any = None
    control: Any = None
    shuttingDown = False
    p: Any = None
    connector: Any = None

    def __init__(
        self,
        nickname: str,
        password: str | None,
        channels: Iterable[str | Mapping[str, str]],
        pm_to_nicks: Iterable[str],
        tags: list[str] | None,
        notify_events: Iterable[str],
        noticeOnChannel: bool = False,
        useRevisions: bool = False,
        showBlameList: bool = False,
        lostDelay: float | None = None,
        failedDelay: float | None = None,
        useColors: bool = True,
        allowShutdown: bool = False,
        categories: list[str] | None = None,  # deprecated, use tags instead
    ) -> None:
        ThrottledClientFactory.__init__(self, lostDelay=lostDelay, failedDelay=failedDelay)
        self.status = None
        self.nickname = nickname
        self.password = password
        self.channels = channels
        self.pm_to_nicks = pm_to_nicks
        self.tags = tags or categories
        self.notify_events = notify_events
        self.noticeOnChannel = noticeOnChannel
        self.useRevisions = useRevisions
        self.showBlameList = showBlameList
        self.useColors = useColors
        self.allowShutdown = allowShutdown
        self._lost: list[defer.Deferred[bool]] = []

    categories = TagsAlias()

    def __getstate__(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d.pop("p", None)
        return d

    def shutdown(self) -> None:
        self.shuttingDown = True
        self.stop_retrying()
        if self.p:
            self.p.quit("buildmaster reconfigured: bot disconnecting")

    def buildProtocol(self, address: Any) -> Any:
        p = self.protocol(
            self.nickname, self.password, self.channels, self.pm_to_nicks, self.status,
            self.tags, self.notify_events, noticeOnChannel=self.noticeOnChannel,
            useColors=self.useColors, useRevisions=self.useRevisions,
            showBlameList=self.showBlameList,
        )  # fmt: skip
        p.factory = self
        p.status = self.status
        p.control = self.control
        self.p = p
        return p

    def startedConnecting(self, connector: Any) -> None:
        self.connector = connector

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self._ended()
        if self.shuttingDown:
            log.msg("not scheduling reconnection attempt")
            return
        ThrottledClientFactory.clientConnectionLost(self, connector, reason)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self._ended()
        if self.shuttingDown:
            log.msg("not scheduling reconnection attempt")
            return
        ThrottledClientFactory.clientConnectionFailed(self, connector, reason)

    # Beyond 0.8: a stop waits for the connection's end

    def _ended(self) -> None:
        waiting, self._lost = self._lost, []
        for d in waiting:
            d.callback(True)

    def disconnected(self, timeout: float, *, only_if_connected: bool = False) -> Any:
        """
        A Deferred that fires with True once no connection is open or
        being made (with C{only_if_connected}: once none is open), or with
        False after C{timeout} seconds.
        """
        state = getattr(self.connector, "state", "disconnected")
        if state == "disconnected" or (only_if_connected and state != "connected"):
            return defer.succeed(True)
        d: defer.Deferred[bool] = defer.Deferred()
        self._lost.append(d)
        return within(d, timeout, cast(IReactorTime, reactor))


@implementer(IStatusReceiver)
class IRC(base.StatusReceiverMultiService):
    """I am an IRC bot which can be queried for status information. I
    connect to a single IRC server and am known by a single nickname on that
    server, however I can join multiple channels.

    Beyond 0.8: L{factory} is the factory class it makes (0.8 always made
    an C{IrcStatusFactory}); a stopping master, or a reconfig that replaces
    the bot, waits at most L{stopTimeout} seconds for the server to see it
    quit, so that the next bot can take its nickname.
    """

    in_test_harness = False

    # 0.8.14's, and what 0.8 forgot (a reconfig changing only those kept
    # the old bot); a list, as 0.8's was, for subclasses to add to.
    compare_attrs: list[str] = [
        "host", "port", "nick", "password", "channels", "pm_to_nicks", "allowForce", "useSSL",
        "useRevisions", "tags", "useColors", "lostDelay", "failedDelay", "allowShutdown",
        "notify_events", "noticeOnChannel", "showBlameList",
    ]  # fmt: skip

    factory = IrcStatusFactory
    stopTimeout: float = 5
    allowForce = False
    allowShutdown = False
    master: Any = None

    def __init__(
        self,
        host: str,
        nick: str,
        channels: Iterable[str | Mapping[str, str]],
        pm_to_nicks: Iterable[str] = (),
        port: int = 6667,
        allowForce: bool = False,
        tags: list[str] | None = None,
        password: str | None = None,
        notify_events: Iterable[str] | None = None,
        noticeOnChannel: bool = False,
        showBlameList: bool = True,
        useRevisions: bool = False,
        useSSL: bool = False,
        lostDelay: float | None = None,
        failedDelay: float | None = None,
        useColors: bool = True,
        allowShutdown: bool = False,
        categories: list[str] | None = None,  # deprecated
    ) -> None:
        base.StatusReceiverMultiService.__init__(self)

        if allowForce not in (True, False):
            config.error("allowForce must be boolean, not %r" % (allowForce,))
        if allowShutdown not in (True, False):
            config.error("allowShutdown must be boolean, not %r" % (allowShutdown,))
        if notify_events is None:
            notify_events = {}
        _check(host, nick, channels, pm_to_nicks, port, tags or categories, password,
               notify_events, lostDelay, failedDelay, useSSL)  # fmt: skip

        # need to stash these so we can detect changes later
        self.host = host
        self.port = port
        self.nick = nick
        self.channels = channels
        self.pm_to_nicks = pm_to_nicks
        self.password = password
        self.allowForce = allowForce
        self.useRevisions = useRevisions
        self.tags = tags or categories
        self.notify_events = notify_events
        self.allowShutdown = allowShutdown
        self.useSSL = useSSL
        self.lostDelay = lostDelay
        self.failedDelay = failedDelay
        self.useColors = useColors
        self.noticeOnChannel = noticeOnChannel
        self.showBlameList = showBlameList

        self.f = self.factory(
            self.nick, self.password, self.channels, self.pm_to_nicks, self.tags,
            self.notify_events, noticeOnChannel=noticeOnChannel, useRevisions=useRevisions,
            showBlameList=showBlameList, lostDelay=lostDelay, failedDelay=failedDelay,
            useColors=useColors, allowShutdown=allowShutdown,
        )  # fmt: skip

        c: internet.TCPClient | internet.SSLClient
        if useSSL and have_ssl:
            # Beyond 0.8 (and Buildbot 4's own IRC bot), which check
            # nothing: the server's certificate must be valid for host.
            c = internet.SSLClient(self.host, self.port, self.f, ssl.optionsForClientTLS(host))
        else:
            c = internet.TCPClient(self.host, self.port, self.f)

        c.setServiceParent(self)

    categories = TagsAlias()

    def setServiceParent(self, parent: Any) -> Any:
        # The factory knows the status before the client connects.
        self.master = parent.master
        self.f.status = parent
        if self.allowForce:
            self.f.control = Control(parent)
        return base.StatusReceiverMultiService.setServiceParent(self, parent)

    def startService(self) -> Any:
        # Started again (a LegacyStatus started anew): connect again too.
        self.f.shuttingDown = False
        return base.StatusReceiverMultiService.startService(self)

    @async_to_deferred
    async def stopService(self) -> None:
        # make sure the factory will stop reconnecting
        factory = self.f
        factory.shutdown()
        # The server sees the bot quit, then closes: the nickname is free.
        if not await factory.disconnected(self.stopTimeout, only_if_connected=True):
            log.msg(f"IRC: {self.host}:{self.port} did not close after the bot quit")
        await defer.maybeDeferred(base.StatusReceiverMultiService.stopService, self)
        await factory.disconnected(self.stopTimeout)


def _check(
    host: Any,
    nick: Any,
    channels: Any,
    pm_to_nicks: Any,
    port: Any,
    tags: Any,
    password: Any,
    notify_events: Any,
    lostDelay: Any,
    failedDelay: Any,
    useSSL: Any,
) -> None:
    """C{IRC}'s arguments, as C{buildbot checkconfig} should see them (0.8 checked two)."""
    if not isinstance(host, str) or not host:
        config.error(f"IRC: host must be a host name, not {host!r}")
    if not isinstance(nick, str) or not nick or " " in nick:
        config.error(f"IRC: nick must be a nickname, not {nick!r}")
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Iterable):
        config.error(f"IRC: channels must be a list of channel names, not {channels!r}")
    else:
        for c in channels:
            name = c.get("channel") if isinstance(c, Mapping) else c
            if not isinstance(name, str) or not name:
                config.error(
                    f"IRC: channel {c!r} must be a name or a dict with 'channel' (and 'password')"
                )
    if isinstance(pm_to_nicks, (str, bytes)) or not isinstance(pm_to_nicks, Iterable):
        config.error(f"IRC: pm_to_nicks must be a list of nicknames, not {pm_to_nicks!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        config.error(f"IRC: port must be a port number, not {port!r}")
    if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
        config.error(f"IRC: tags must be a list of tags, not {tags!r}")
    if password is not None and not isinstance(password, str):
        config.error("IRC: password must be a string")
    if isinstance(notify_events, (str, bytes)) or not isinstance(notify_events, Iterable):
        config.error(f"IRC: notify_events must be a list of events, not {notify_events!r}")
    else:
        for event in notify_events:
            if not valid_event(event):
                config.error(
                    f"IRC: {event!r} is not an event to notify of: started, finished,"
                    " success, warnings, failure, exception, problem, recovery, worse,"
                    " better, or xToY (x and Y one of success, warnings, failure,"
                    " exception, Y capitalized)"
                )
    for name, delay in (("lostDelay", lostDelay), ("failedDelay", failedDelay)):
        if delay is not None and (
            isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0
        ):
            config.error(f"IRC: {name} must be a number of seconds, not {delay!r}")
    if useSSL not in (True, False):
        config.error(f"IRC: useSSL must be boolean, not {useSSL!r}")
    elif useSSL and not have_ssl:  # pragma: no cover
        config.error("IRC: useSSL requires PyOpenSSL")
