"""
0.8.14's IRC status bot (C{buildbot.status.words}), ported: on a real
master with real builds, talking to a real IRC server (Twisted's own
C{twisted.words.service}, on a loopback port), with a second IRC client
in the channel that talks to the bot and records what it says.

The expected texts are what 0.8.14's own C{IRCContact} says of the same
builds and commands (pinned by running it under Python 2.7 on status
objects with these values).
"""

from __future__ import annotations

import datetime
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import buildbot
import pytest
from buildbot.config.errors import ConfigErrors, capture_config_errors
from buildbot.plugins import schedulers, util
from buildbot.process.buildstep import BuildStep
from buildbot.process.results import CANCELLED, FAILURE, SUCCESS
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, protocol, reactor, ssl
from twisted.python import log
from twisted.words import service
from twisted.words.iwords import IGroup
from twisted.words.protocols import irc
from zope.interface import implementer

from buildbot_logfile import _shims
from buildbot_logfile.bridge import LegacyStatus
from tests.masters import (
    LiveLog,
    MasterTestCase,
    Recorder,
    Waiters,
    live_log_step,
    poll,
    python_step,
)

_shims.install()

from buildbot.status import words  # type: ignore[import-not-found]  # noqa: E402
from buildbot.status.words import (  # type: ignore[import-not-found]  # noqa: E402
    IRC,
    Contact,
    IChannel,
    IrcBuildRequest,
    IRCContact,
    IrcStatusBot,
    IrcStatusFactory,
    StatusBot,
    UsageError,
    maybeColorize,
)

GREEN, RED, PURPLE = "\x033", "\x034", "\x036"
END = "\x03"

# 0.8.14's replies, as its own code gave them.
FORCE_USAGE = (
    "try 'force build [--branch=BRANCH] [--revision=REVISION] "
    "[--props=PROP1=VAL1,PROP2=VAL2...]  <WHICH> <REASON>'"
)
COMMANDS = (
    "buildbot commands: commands, dance, destroy, force, hello, help, last, list, mute, notify,"
    " shutdown, source, status, stop, unmute, version, watch"
)
NOTIFY_USAGE = (
    "Usage: notify on|off|list [<EVENT>] ... - Notify me about build events.  event should be"
    " one or more of: 'started', 'finished', 'failure', 'success', 'exception' or 'xToY'"
    " (where x and Y are one of success, warnings, failure, exception, but Y is capitalized)"
)


def live_logs_step(controls: list[LiveLog]) -> BuildStep:
    """
    A step whose stdio log the next of C{controls} writes, one per build;
    stopping the build ends it.
    """

    class Live(BuildStep):
        control: LiveLog | None = None

        @defer.inlineCallbacks
        def run(self) -> Any:
            control = self.control = controls.pop(0)
            control.log = yield self.addLog("stdio")
            control.opened.callback(None)
            yield control._end
            yield control.log.finish()
            return CANCELLED if self.stopped else SUCCESS

        def interrupt(self, reason: Any) -> None:
            # Stopped as a command would be: at once.
            super().interrupt(reason)
            if self.control is not None and not self.control._end.called:
                self.control.end()

    return Live(name="live")


def self_signed(name: str) -> ssl.PrivateCertificate:
    """A certificate for C{name}, signed by itself (Twisted's own maker needs an older OpenSSL)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return ssl.PrivateCertificate.loadPEM(cert.public_bytes(serialization.Encoding.PEM) + key_pem)


# The IRC server: Twisted's own, with what a test needs to see of it


@implementer(checkers.ICredentialsChecker)
class _Logins:
    """Nicknames with a password must give it; any other logs in without one."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords

    def requestAvatarId(self, creds: Any) -> Any:
        name = _str(creds.username)
        wanted = self.passwords.get(name)
        if wanted is not None and _str(creds.password) != wanted:
            return defer.fail(error.UnauthorizedLogin())
        return defer.succeed(name)


def _str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _User(service.IRCUser):
    """One connection to the server; it records what the tests check."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.factory.connections.add(self)

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        self.factory.lost(self)

    def irc_NICK(self, prefix: Any, params: Any) -> None:
        if self.password is None:
            self.password = ""  # no PASS: an anonymous login
        super().irc_NICK(prefix, params)

    def irc_JOIN(self, prefix: Any, params: Any) -> None:
        channel, key = params[0], (params[1] if len(params) > 1 else None)
        self.factory.joins.append((self.name, channel, key))
        wanted = self.factory.keys.get(channel.lower())
        if wanted is not None and key != wanted:
            self.sendMessage(irc.ERR_BADCHANNELKEY, channel, ":Cannot join channel (+k)")
            return
        super().irc_JOIN(prefix, params)

    def irc_PRIVMSG(self, prefix: Any, params: Any) -> None:
        if params[0].lower() == "nickserv":
            self.factory.nickserv.append((self.name, params[-1]))
            return
        super().irc_PRIVMSG(prefix, params)

    def irc_NOTICE(self, prefix: Any, params: Any) -> None:
        """As PRIVMSG (Twisted's server has no NOTICE), delivered as a NOTICE."""
        target, text = params[0], params[-1]
        if target.startswith("#"):
            found = self.realm.lookupGroup(target[1:])
        else:
            found = self.realm.lookupUser(target).addCallback(lambda user: user.mind)
        found.addCallbacks(
            lambda to: to and self.avatar.send(to, {"text": text, "notice": True}),
            lambda _: None,
        )

    def receive(self, sender: Any, recipient: Any, message: dict[str, Any]) -> None:
        if not message.get("notice"):
            return super().receive(sender, recipient, message)
        name = "#" + recipient.name if IGroup.providedBy(recipient) else recipient.name
        for line in message["text"].splitlines():
            self.notice(f"{sender.name}!{sender.name}@{self.hostname}", name, line)
        return None

    def irc_QUIT(self, prefix: Any, params: Any) -> None:
        self.factory.quits.append((self.name, params[-1] if params else None))
        super().irc_QUIT(prefix, params)


class IRCServer(service.IRCFactory):
    """
    Twisted's IRC server over an in-memory realm: anyone may log in, a
    nickname of C{passwords} only with its password; a channel of C{keys}
    only with its key.
    """

    protocol = _User

    def __init__(
        self, passwords: dict[str, str] | None = None, keys: dict[str, str] | None = None
    ) -> None:
        realm = service.InMemoryWordsRealm("irc.test")
        realm.createGroupOnRequest = True
        super().__init__(realm, portal.Portal(realm, [_Logins(passwords or {})]))
        self.keys = {k.lower(): v for k, v in (keys or {}).items()}
        self.joins: list[tuple[str, str, str | None]] = []
        self.nickserv: list[tuple[str, str]] = []
        self.quits: list[tuple[str, str | None]] = []
        self.connections: set[_User] = set()
        self._closed = Waiters()

    def lost(self, user: _User) -> None:
        self.connections.discard(user)
        self._closed.check()

    def all_closed(self) -> defer.Deferred[None]:
        return self._closed.wait_until(lambda: not self.connections)

    def signed_on(self, nick: str) -> bool:
        return any(getattr(u, "name", None) == nick and u.avatar for u in self.connections)

    def drop(self, nick: str) -> None:
        """Close the connection of C{nick}, as a server that drops a client."""
        (user,) = [u for u in self.connections if getattr(u, "name", None) == nick]
        user.transport.loseConnection()


# The other IRC client: someone in the channel


class Listener(irc.IRCClient):
    """A person on IRC: joins channels, records what it sees, says things."""

    def __init__(self, nickname: str, channels: dict[str, str | None]) -> None:
        self.nickname = nickname
        self.channels = channels
        self.seen: list[tuple[str, ...]] = []
        self.waiting = Waiters()
        self.gone: defer.Deferred[None] = defer.Deferred()

    def _see(self, *event: str) -> None:
        self.seen.append(event)
        self.waiting.check()

    def signedOn(self) -> None:
        for channel, key in self.channels.items():
            self.join(channel, key)

    def joined(self, channel: str) -> None:
        self._see("joined", channel)

    def privmsg(self, user: str, channel: str, message: str) -> None:
        self._see("msg", user.split("!")[0], channel, message)

    def noticed(self, user: str, channel: str, message: str) -> None:
        self._see("notice", user.split("!")[0], channel, message)

    def action(self, user: str, channel: str, data: str) -> None:
        self._see("action", user.split("!")[0], channel, data)

    def userJoined(self, user: str, channel: str) -> None:
        self._see("join", user.split("!")[0], channel)

    def userLeft(self, user: str, channel: str) -> None:
        self._see("part", user.split("!")[0], channel)

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        self.gone.callback(None)

    # What the tests ask

    def wait_until(self, check: Callable[[], bool]) -> defer.Deferred[None]:
        return self.waiting.wait_until(check)

    def said(self, nick: str = "bb", where: str | None = None, kind: str = "msg") -> list[str]:
        """What C{nick} said (C{kind}: msg, notice, action) in C{where} (default: any)."""
        return [
            e[3]
            for e in self.seen
            if e[0] == kind and e[1] == nick and (where is None or e[2] == where)
        ]

    def wait_said(self, count: int, nick: str = "bb", where: str | None = None) -> Any:
        """Until C{nick} said C{count} things in C{where}; then what it said."""
        d = self.wait_until(lambda: len(self.said(nick, where)) >= count)
        return d.addCallback(lambda _: self.said(nick, where))

    def wait_present(self, nick: str, channel: str) -> defer.Deferred[None]:
        """Until C{nick} (the bot) joined C{channel} after this client did."""
        return self.wait_until(lambda: ("join", nick, channel) in self.seen)

    def ask(self, text: str, where: str = "#ci", count: int = 1, nick: str = "bb") -> Any:
        """
        Say C{text} in C{where} (a channel, or the bot's nick for a private
        message); then C{count} new things the bot said there.
        """
        to = where if where.startswith("#") else self.nickname
        before = len(self.said(nick, to))
        self.msg(where, text)
        d = self.wait_until(lambda: len(self.said(nick, to)) >= before + count)
        return d.addCallback(lambda _: self.said(nick, to)[before:])


class _Connect(protocol.ClientFactory):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def buildProtocol(self, addr: Any) -> Listener:
        self.listener.factory = self
        return self.listener


class WordsTests(MasterTestCase):
    def setUp(self) -> None:
        self.heard = Recorder()
        self.log: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            self.log.append(log.textFromEventDict(event) or "")

        log.addObserver(observe)
        self.addCleanup(log.removeObserver, observe)

    def serve(self, server: IRCServer | None = None, port: int = 0) -> tuple[IRCServer, int]:
        """An IRC server on loopback, stopped (its connections closed) after the test."""
        server = server or IRCServer()
        listening = reactor.listenTCP(port, server, interface="127.0.0.1")
        self.addCleanup(server.all_closed)
        self.addCleanup(listening.stopListening)
        return server, listening.getHost().port

    @defer.inlineCallbacks
    def person(
        self, port: int, nick: str = "alice", channels: dict[str, str | None] | None = None
    ) -> Any:
        """An IRC client that joined C{channels} (#ci by default); gone after the test."""
        listener = Listener(nick, channels if channels is not None else {"#ci": None})
        reactor.connectTCP("127.0.0.1", port, _Connect(listener))

        def leave() -> Any:
            if listener.transport is not None and not listener.gone.called:
                listener.transport.loseConnection()
            return listener.gone

        self.addCleanup(leave)
        for channel in listener.channels:
            yield listener.wait_until(lambda c=channel: ("joined", c) in listener.seen)
        return listener

    def bot(self, port: int, **kwargs: Any) -> IRC:
        kwargs.setdefault("channels", ["#ci"])
        return IRC("127.0.0.1", kwargs.pop("nick", "bb"), port=port, **kwargs)

    def text_of(self, builder: str, number: int) -> str:
        """
        A build's text as the status objects give it (0.8's words: "failed
        <step>" for a failure), which the bot reports.
        """
        return " ".join(self.legacy_status().getBuilder(builder).getBuild(number).getText())

    def running(self, builder: str) -> defer.Deferred[Any]:
        """
        Once the status objects (what the bot asks) have the builder's
        running build at a step: that build.
        """

        def current() -> Any:
            builds = self.legacy_status().getBuilder(builder).getCurrentBuilds()
            return builds[0] if builds and builds[0].getCurrentStep() else None

        return poll(current, f"a running build of {builder}")

    @defer.inlineCallbacks
    def url(self, builder: str, number: int) -> Any:
        builderid = yield self.master.data.updates.findBuilderId(builder)
        return f"{self.master.config.buildbotURL}#/builders/{builderid}/builds/{number}"

    @defer.inlineCallbacks
    def bot_leaves(self, listener: Listener, nick: str = "bb", channel: str = "#ci") -> Any:
        """Stop LegacyStatus (so the bot quits); every message it sent has arrived."""
        parts = listener.seen.count(("part", nick, channel))
        yield self.reconfig(services=[])
        yield listener.wait_until(lambda: listener.seen.count(("part", nick, channel)) > parts)

    # Joining, and announcing builds

    @defer.inlineCallbacks
    def test_joins_with_keys_and_announces_builds_as_0_8_did(self) -> defer.Generator:
        server, port = self.serve(IRCServer(passwords={"bb": "s3cret"}, keys={"#ci": "k3y"}))
        alice = yield self.person(port, channels={"#ci": "k3y"})
        bot = self.bot(
            port, channels=[{"channel": "#ci", "password": "k3y"}, "#other"], password="s3cret",
            notify_events=["started", "finished"],
        )  # fmt: skip
        yield self.start_master(
            {
                "b1": [python_step("emit", "print('hi')")],
                "b2": [python_step("fail", "exit(1)", descriptionDone="fail")],
            },
            receivers=[bot, self.heard],
        )
        yield alice.wait_present("bb", "#ci")
        yield poll(lambda: len(server.joins) == 3, "the bot's joins")
        # The server's password (0.8 gave it as PASS too), then NickServ's.
        self.assertEqual(server.nickserv, [("bb", "IDENTIFY s3cret")])
        self.assertEqual(
            [j for j in server.joins if j[0] == "bb"],
            [("bb", "#ci", "k3y"), ("bb", "#other", None)],
        )
        yield self.force("b1")
        yield self.heard.wait_for_builds(1)
        yield self.force("b2")
        said = yield alice.wait_said(4, where="#ci")
        self.assertEqual(
            said,
            [
                "build #1 of b1 started",
                f"build #1 of b1 is complete: Success [{GREEN}build successful{END}]"
                f"  Build details are at {(yield self.url('b1', 1))}",
                "build #1 of b2 started",
                f"build #1 of b2 is complete: Failure [{RED}{self.text_of('b2', 1)}{END}]"
                f"  Build details are at {(yield self.url('b2', 1))}",
            ],
        )
        yield self.bot_leaves(alice)
        self.assertEqual(len(alice.said("bb")), 4)  # nothing more, nothing twice
        self.assertEqual(server.quits, [("bb", "buildmaster reconfigured: bot disconnecting")])

    @defer.inlineCallbacks
    def test_notify_events_choose_the_builds_announced(self) -> defer.Generator:
        _, port = self.serve()
        rooms = {"#fail": ["failure"], "#change": ["successToFailure", "failureToSuccess"],
                 "#newer": ["problem", "recovery"], "#none": []}  # fmt: skip
        alice = yield self.person(port, channels=dict.fromkeys(rooms))
        bots = [
            self.bot(port, nick=f"bot{i}", channels=[room], notify_events=events, useColors=False)
            for i, (room, events) in enumerate(rooms.items())
        ]
        outcome = os.path.abspath(self.mktemp())
        step = python_step("check", f"import sys; sys.exit(int(open({outcome!r}).read()))")
        yield self.start_master({"b1": [step]}, receivers=[*bots, self.heard])
        for i, room in enumerate(rooms):
            yield alice.wait_present(f"bot{i}", room)
        for number, result in enumerate([SUCCESS, FAILURE, FAILURE, SUCCESS], 1):
            with open(outcome, "w") as f:
                f.write(str(result))
            yield self.force("b1")
            yield self.heard.wait_for_builds(number)
        failed = self.text_of("b1", 2)
        yield self.reconfig(services=[])
        yield alice.wait_until(lambda: all(("part", f"bot{i}", r) in alice.seen
                                           for i, r in enumerate(rooms)))  # fmt: skip

        def complete(number: int, result: str, text: str) -> str:
            return f"build #{number} of b1 is complete: {result} [{text}]  Build details are at"

        said = {room: [m.split(" http")[0] for m in alice.said(f"bot{i}", room)]
                for i, room in enumerate(rooms)}  # fmt: skip
        self.assertEqual(
            said,
            {
                "#fail": [complete(2, "Failure", failed), complete(3, "Failure", failed)],
                "#change": [complete(2, "Failure", failed),
                            complete(4, "Success", "build successful")],
                "#newer": [complete(2, "Failure", failed),
                           complete(4, "Success", "build successful")],
                "#none": [],
            },
        )  # fmt: skip

    @defer.inlineCallbacks
    def test_changes_revisions_and_the_blamelist(self) -> defer.Generator:
        _, port = self.serve()
        alice = yield self.person(port, channels={"#ci": None, "#revs": None})
        plain = self.bot(port, notify_events=["started", "finished"], useColors=False)
        revisions = self.bot(
            port, nick="rb", channels=["#revs"], notify_events=["started", "failure"],
            useRevisions=True, showBlameList=False, useColors=False,
        )  # fmt: skip
        yield self.start_master(
            {"b1": [python_step("fail", "exit(1)", descriptionDone="fail")]},
            receivers=[plain, revisions, self.heard],
            schedulers=[schedulers.SingleBranchScheduler(
                name="main", change_filter=util.ChangeFilter(branch="main"),
                treeStableTimer=None, builderNames=["b1"],
            )],
        )  # fmt: skip
        yield alice.wait_present("bb", "#ci")
        yield alice.wait_present("rb", "#revs")
        for author, revision in (("carol", "c0ffee1"), ("alice", "abc1234")):
            yield self.master.data.updates.addChange(
                author=author, revision=revision, branch="main", files=["f"], comments="x",
                category=None, project="", repository="", codebase="",
            )  # fmt: skip
            yield self.heard.wait_for_builds(1 if author == "carol" else 2)
        url = yield self.url("b1", 2)
        self.assertEqual(
            (yield alice.wait_said(4, where="#ci")),
            [
                "build #1 of b1 started (including [c0ffee1])",
                f"build #1 of b1 is complete: Failure [{self.text_of('b1', 1)}]"
                f"  Build details are at {(yield self.url('b1', 1))}  blamelist: carol",
                "build #2 of b1 started (including [abc1234])",
                f"build #2 of b1 is complete: Failure [{self.text_of('b1', 2)}]"
                f"  Build details are at {url}  blamelist: alice",
            ],
        )
        said = yield alice.wait_said(4, "rb", "#revs")
        self.assertEqual(
            said,
            [
                "build containing revision(s) [c0ffee1] on b1 started",
                "build containing revision(s) [c0ffee1] on b1 is complete: Failure"
                f" [{self.text_of('b1', 1)}]  Build details are at {(yield self.url('b1', 1))}",
                "build containing revision(s) [abc1234] on b1 started",
                "build containing revision(s) [abc1234] on b1 is complete: Failure"
                f" [{self.text_of('b1', 2)}]  Build details are at {url}",
            ],
        )

    @defer.inlineCallbacks
    def test_notices_on_channels_and_categories(self) -> defer.Generator:
        _, port = self.serve()
        alice = yield self.person(port)
        bot = self.bot(
            port, categories=["fast"], notify_events=["finished"], noticeOnChannel=True,
            pm_to_nicks=["alice"],
        )  # fmt: skip
        yield self.start_master(
            {},
            receivers=[bot, self.heard],
            builders=[
                util.BuilderConfig(name=name, workernames=["local1"], tags=tags,
                                   factory=util.BuildFactory([python_step("emit", "print(1)")]))
                for name, tags in (("b1", ["fast"]), ("b2", ["slow"]), ("b3", []))
            ],
            schedulers=[schedulers.ForceScheduler(name="force", builderNames=["b1", "b2", "b3"])],
        )  # fmt: skip
        yield alice.wait_present("bb", "#ci")
        for number, builder in enumerate(["b2", "b3", "b1"], 1):
            yield self.force(builder)
            yield self.heard.wait_for_builds(number)
        # Only the builder with the tag: as a notice in the channel, a
        # message to pm_to_nicks.
        yield alice.wait_until(lambda: alice.said(kind="notice") and alice.said(where="alice"))
        replies = yield alice.ask("list builders", where="bb")
        self.assertEqual(replies, ["Configured builders: b1"])
        told = (
            f"build #1 of b1 is complete: Success [{GREEN}build successful{END}]"
            f"  Build details are at {(yield self.url('b1', 1))}"
        )
        self.assertEqual(alice.said(kind="notice"), [told])
        self.assertEqual(alice.said(where="alice"), [told, "Configured builders: b1"])
        self.assertEqual(alice.said(where="#ci"), [])

    # Commands

    @defer.inlineCallbacks
    def test_commands_answered_as_0_8_answered_them(self) -> defer.Generator:
        _, port = self.serve()
        alice = yield self.person(port)
        yield self.start_master(
            {"b1": [python_step("emit", "print('hi')")], "b2": [python_step("emit", "print(2)")]},
            receivers=[self.bot(port), self.heard],
        )
        yield alice.wait_present("bb", "#ci")
        asked = [
            ("bb: hello", ["yes?"]),
            ("bb, hello", ["yes?"]),
            ("bb: version", [f"buildbot-{buildbot.version} at your service"]),
            ("bb: source", ["My source can be found at https://github.com/buildbot/buildbot"]),
            ("bb: commands", [COMMANDS]),
            ("bb: help", ["Get help on what? (try 'help <foo>', 'help <foo> <bar>, or 'commands'"
                          " for a command list)"]),
            ("bb: help notify", [NOTIFY_USAGE]),
            ("bb: help list", ["Usage: list builders - List configured builders"]),
            ("bb: help hello", ["No usage info for 'hello'"]),
            ("bb: help shutdown check",
             ["Usage: shutdown check - check if the buildbot master is running or shutting down"]),
            ("bb: help shutdown now please", ["No usage info for 'shutdown' 'now' 'please'"]),
            ("bb: help nosuch", ["no such command 'nosuch'"]),
            ("bb: list", ["try 'list builders'"]),
            # (0.8's last space, which Twisted's IRCClient does not send)
            ("bb: list builders", ["Configured builders: b1 b2"]),
            ("bb: status", ["b1: idle", "b2: idle"]),
            ("bb: status b1 b2", ["try 'status <builder>'"]),
            ("bb: status nosuch", ["no such builder 'nosuch'"]),
            ('bb: status "b1', ["No closing quotation"]),
            ("bb: last", ["last build [b1]: (no builds run since last restart)",
                          "last build [b2]: (no builds run since last restart)"]),
            ("bb: watch b1", ["there are no builds currently running"]),
            ("bb: watch", ["try 'watch <builder>'"]),
            ("bb: notify", ["try 'notify on|off|list <EVENT>'"]),
            ("bb: notify list", ["The following events are being notified: []"]),
            ("bb: notify on", ["The following events are being notified: ['started', 'finished']"]),
            ("bb: notify off started", ["The following events are being notified: ['finished']"]),
            ("bb: notify on bogus", ["try 'notify on|off <EVENT>'"]),
            ("bb: notify maybe", ["try 'notify on|off <EVENT>'"]),
            ("bb: notify off", ["The following events are being notified: []"]),
            ("bb: force build b1 now", ["builder control is not enabled"]),
            ("bb: force", [FORCE_USAGE]),
            ("bb: force build", ["you must provide a Builder, " + FORCE_USAGE]),
            ("bb: force build --branch=a;b b1", ["sorry, bad branch 'a;b'"]),
            ("bb: stop build b1 why", ["builder control is not enabled"]),
            ("bb: stop build b1", ["try 'stop build WHICH <REASON>'"]),
            ("bb: shutdown", ["try 'shutdown check|start|stop|now'"]),
            ("bb: shutdown check", ["shutdown control is not enabled"]),
            ("bb: frobnicate!", ["What you say!"]),
            ("bb: mute", ["Shutting up for now."]),
            ("bb: unmute", ["I'm baaaaaaaaaaack!"]),
            ("bb: unmute", ["You hadn't told me to be quiet, but it's the thought that counts,"
                            " right?"]),
        ]  # fmt: skip
        for question, answer in asked:
            self.assertEqual((question, (yield alice.ask(question, count=len(answer)))),
                             (question, answer))  # fmt: skip
        # Not addressed to the bot, a command nobody knows, muted: no answer
        # (the next answer is the next question's).
        alice.msg("#ci", "hello")
        alice.msg("#ci", "bb: frobnicate")
        alice.msg("#ci", "bb:")
        yield alice.ask("bb: mute")
        alice.msg("#ci", "bb: hello")
        self.assertEqual((yield alice.ask("bb: unmute")), ["I'm baaaaaaaaaaack!"])
        # Private messages: answered in private.
        self.assertEqual((yield alice.ask("hello", where="bb")), ["yes?"])
        self.assertEqual((yield alice.ask("What happen ?", where="bb")),
                         ["Somebody set up us the bomb."])  # fmt: skip
        # Actions.
        alice.describe("#ci", "kicks bb")
        yield alice.wait_until(lambda: alice.said(kind="action"))
        alice.describe("#ci", "hugs bb")
        yield alice.wait_until(lambda: len(alice.said(kind="action")) == 2)
        self.assertEqual((yield alice.ask("bb: destroy", count=0)), [])
        yield alice.wait_until(lambda: len(alice.said(kind="action")) == 3)
        self.assertEqual(
            alice.said(kind="action"), ["kicks back", "hugs alice too", "readies phasers"]
        )
        dance = yield alice.ask("bb: dance", count=5)
        self.assertEqual(dance, ["<(^.^<)", "<(^.^)>", "(>^.^)>", "(7^.^)7", "(>^.^<)"])
        # What went wrong was said, and logged.
        self.assertEqual(
            (yield alice.ask("bb: notify off success")), ["Something bad happened (see logs)"]
        )
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    @defer.inlineCallbacks
    def test_status_last_and_watch_of_real_builds(self) -> defer.Generator:
        _, port = self.serve()
        alice = yield self.person(port)
        live = LiveLog()
        yield self.start_master(
            {"b1": [live_log_step(live)], "b2": [python_step("emit", "print(1)")]},
            receivers=[self.bot(port), self.heard],
        )
        yield alice.wait_present("bb", "#ci")
        yield self.force("b1")
        yield live.opened
        running = yield self.running("b1")
        # Buildbot says "running" of a step with no description a second
        # after it starts (its name until then): waited for, not raced.
        yield poll(lambda: running.getCurrentStep().getText() == ["running"], "the step's text")
        self.assertEqual(
            (yield alice.ask("bb: status", count=2)), ["b1: building(running)", "b2: idle"]
        )
        self.assertEqual(
            (yield alice.ask("bb: watch b1")), ["watching build b1 #1 until it finishes.."]
        )
        live.end()
        said = yield alice.wait_said(5)
        self.assertEqual(
            said[3:],
            [f"Hey! build b1 #1 is complete: Success [{GREEN}build successful{END}]",
             f"Build details are at {(yield self.url('b1', 1))}"],
        )  # fmt: skip
        # When it ended, and what it said.
        status = yield alice.ask("bb: status b1")
        self.assertRegex(status[0], r"^b1: idle, last build \d+ seconds ago: build successful$")
        last = yield alice.ask("bb: last b1")
        self.assertRegex(last[0], r"^last build \[b1\]: \d+ seconds ago: build successful$")

    @defer.inlineCallbacks
    def test_a_watched_build_of_a_notified_channel_is_told_once(self) -> defer.Generator:
        _, port = self.serve()
        alice = yield self.person(port)
        live = LiveLog()
        yield self.start_master(
            {"b1": [live_log_step(live)]},
            receivers=[self.bot(port, notify_events=["finished"]), self.heard],
        )
        yield alice.wait_present("bb", "#ci")
        yield self.force("b1")
        yield live.opened
        yield self.running("b1")
        yield alice.ask("bb: watch b1")
        live.end()
        yield self.heard.wait_for_builds(1)
        yield self.bot_leaves(alice)
        # 0.8's order: the channel's notification, then nothing for the watch.
        self.assertEqual(
            alice.said(),
            ["watching build b1 #1 until it finishes..",
             f"build #1 of b1 is complete: Success [{GREEN}build successful{END}]"
             f"  Build details are at {(yield self.url('b1', 1))}"],
        )  # fmt: skip

    # Forcing and stopping builds

    @defer.inlineCallbacks
    def test_force_and_stop_through_buildbot_4(self) -> defer.Generator:
        # The first build starts well within the delay before a bot says a
        # build is queued, however slow the machine.
        self.patch(IrcBuildRequest, "queued_delay", 3600)
        _, port = self.serve()
        alice = yield self.person(port)
        first, second = LiveLog(), LiveLog()
        yield self.start_master(
            {"b1": [live_logs_step([first, second])]},
            receivers=[self.bot(port, allowForce=True), self.heard],
            schedulers=[schedulers.ForceScheduler(
                name="force", builderNames=["b1"],
                properties=[util.StringParameter(name="x"), util.BooleanParameter(name="clean")],
            )],
        )  # fmt: skip
        yield alice.wait_present("bb", "#ci")
        forced = yield alice.ask("bb: force build b1 because I can", count=2)
        self.assertEqual(forced, ["build #1 forced", "I'll give a shout when the build finishes"])
        yield first.opened
        yield self.running("b1")
        # Through the builder's ForceScheduler: its reason, with the owner.
        self.assertEqual(
            (yield self.buildset_of("b1", 1))["reason"],
            "A build was forced by 'IRC user <alice> on channel #ci': because I can",
        )
        refused = yield alice.ask("bb: force build --props=y=2 b1")
        self.assertEqual(refused, ["sorry, force scheduler 'force' has no property 'y'"])
        refused += yield alice.ask("bb: force build --props=clean=maybe b1")
        self.assertEqual(refused[1:], ["sorry, property 'clean' is true or false"])
        # The builder is busy: the next build waits, and says so (soon).
        self.patch(IrcBuildRequest, "queued_delay", 0.5)
        queued = yield alice.ask(
            "bb: force build --branch=dev --revision=abc --props=x=1,clean=True b1"
        )
        self.assertEqual(queued, ["The build has been queued, I'll give a shout when it starts"])
        self.assertEqual((yield alice.ask("bb: stop build b1 enough")), ["build 1 interrupted"])
        yield second.opened
        yield self.heard.wait_for_builds(1)
        second.end()
        yield self.heard.wait_for_builds(2)
        stopped_text = self.text_of("b1", 1)
        yield self.bot_leaves(alice)
        stopped = yield self.master.data.get(("builders", "b1", "builds", 1))
        self.assertEqual(stopped["results"], CANCELLED)
        self.assertEqual(
            alice.said(),
            [*forced, *refused, *queued, "build 1 interrupted",
             # As 0.8 told of a build it stopped (Buildbot 4 cancels it).
             f"Hey! build b1 #1 is complete: Exception [{PURPLE}{stopped_text}{END}]",
             f"Build details are at {(yield self.url('b1', 1))}",
             "build #2 forced", "I'll give a shout when the build finishes",
             f"Hey! build b1 #2 is complete: Success [{GREEN}build successful{END}]",
             f"Build details are at {(yield self.url('b1', 2))}"],
        )  # fmt: skip
        (ss,) = (yield self.buildset_of("b1", 2))["sourcestamps"]
        self.assertEqual((ss["branch"], ss["revision"]), ("dev", "abc"))
        build = yield self.master.data.get(("builders", "b1", "builds", 2))
        properties = yield self.master.data.get(("builds", build["buildid"], "properties"))
        self.assertEqual(properties["x"], ("1", "Force Build Form"))
        self.assertEqual(properties["clean"], (True, "Force Build Form"))

    @defer.inlineCallbacks
    def buildset_of(self, builder: str, number: int) -> Any:
        build = yield self.master.data.get(("builders", builder, "builds", number))
        request = yield self.master.data.get(("buildrequests", build["buildrequestid"]))
        return (yield self.master.data.get(("buildsets", request["buildsetid"])))

    @defer.inlineCallbacks
    def test_force_refused(self) -> defer.Generator:
        _, port = self.serve()
        alice = yield self.person(port)
        yield self.start_master(
            {"b1": [python_step("emit", "print(1)")], "nosched": [python_step("e", "print(1)")]},
            receivers=[self.bot(port, allowForce=True), self.heard],
            schedulers=[
                schedulers.ForceScheduler(name="force", builderNames=["b1"]),
                schedulers.Triggerable(name="only", builderNames=["nosched"]),
            ],
        )
        yield alice.wait_present("bb", "#ci")
        refused = [
            ("bb: force build nosuch", ["no such builder 'nosuch'"]),
            ("bb: force build nosched", ["sorry, no force scheduler may force builder 'nosched'"]),
            ("bb: force build --props=a=b;c b1", ["sorry, bad property name='a', value='b;c'"]),
            ("bb: force build --props=junk b1", [FORCE_USAGE]),
            ("bb: force build --revision=a;b b1", ["sorry, bad revision 'a;b'"]),
            ("bb: stop build b1 now", ["sorry, no build is currently running"]),
            ("bb: stop build nosuch now", ["no such builder 'nosuch'"]),
        ]  # fmt: skip
        for question, answer in refused:
            self.assertEqual((question, (yield alice.ask(question))), (question, answer))
        builds = yield self.master.data.get(("builds",))
        self.assertEqual(builds, [])

    @defer.inlineCallbacks
    def test_shutdown_when_allowed(self) -> defer.Generator:
        _, port = self.serve()
        alice = yield self.person(port)
        live = LiveLog()
        yield self.start_master(
            {"b1": [live_log_step(live)]},
            receivers=[self.bot(port, allowShutdown=True), self.heard],
        )
        yield alice.wait_present("bb", "#ci")
        yield self.force("b1")
        yield live.opened
        yield self.running("b1")
        asked = [
            ("bb: shutdown check", ["Status: buildbot is running"]),
            ("bb: shutdown stop", ["Nothing to stop"]),
            ("bb: shutdown start", ["Starting clean shutdown"]),
            ("bb: shutdown check", ["Status: buildbot is shutting down"]),
            ("bb: shutdown start", ["Already started"]),
            ("bb: shutdown stop", ["Stopping clean shutdown"]),
            ("bb: shutdown check", ["Status: buildbot is running"]),
        ]
        for question, answer in asked:
            self.assertEqual((question, (yield alice.ask(question))), (question, answer))
        live.end()
        yield self.heard.wait_for_builds(1)
        # The clean shutdown that was stopped ends once the build has.
        distributor = self.master.botmaster.brd
        yield poll(lambda: not distributor.distribute_only_waited_childs, "the shutdown's end")
        stop = self.master.reactor.stop  # the harness's stand-in for the real one
        self.assertFalse(stop.called)
        self.assertEqual((yield alice.ask("bb: shutdown now")), ["Stopping buildbot"])
        self.assertTrue(stop.called)

    # Plugins of 0.8

    @defer.inlineCallbacks
    def test_a_bot_with_command_QUIET_through_IrcStatusFactory(self) -> defer.Generator:
        class QuietBot(IrcStatusBot):
            """As psycle's master.cfg had it: a command of the bot's own."""

            def __init__(self, *args: Any, **kw: Any) -> None:
                IrcStatusBot.__init__(self, *args, **kw)
                self.quiet: dict[str, bool] = {}

            def command_QUIET(self, user: str, reply: str, args: str) -> None:
                if reply.startswith("#"):
                    if reply not in self.quiet:
                        self.quiet[reply] = False
                    words = args.split()
                    if len(words) == 0:
                        self.quiet[reply] = not self.quiet[reply]
                    else:
                        self.quiet[reply] = words[0] == "on"
                    if self.quiet[reply]:
                        self.reply(reply, "I am now quiet.".encode("ascii", "replace"))
                    else:
                        self.reply(reply, "I will speak from now on!")

            command_QUIET.usage = "quiet - mutes/unmutes unsolicited reports"  # type: ignore[attr-defined]

        self.patch(IrcStatusFactory, "protocol", QuietBot)
        _, port = self.serve()
        alice = yield self.person(port)
        yield self.start_master({"b1": [python_step("emit", "print(1)")]},
                                receivers=[self.bot(port)])  # fmt: skip
        yield alice.wait_present("bb", "#ci")
        self.assertEqual((yield alice.ask("bb: quiet")), ["I am now quiet."])
        self.assertEqual((yield alice.ask("bb: quiet off")), ["I will speak from now on!"])
        self.assertEqual(
            (yield alice.ask("bb: help quiet")),
            ["Usage: quiet - mutes/unmutes unsolicited reports"],
        )
        (commands,) = yield alice.ask("bb: commands")
        self.assertIn(", quiet, ", commands)

    @defer.inlineCallbacks
    def test_a_monkeypatched_IRCContact(self) -> defer.Generator:
        def buildFinished(self: Any, builderName: str, build: Any, results: int) -> None:
            """As a 0.8.4 master.cfg coloured its messages."""
            if self.bot.categories is not None and build.getBuilder().category not in (
                self.bot.categories
            ):
                return
            if not self.notify_for_finished(build):
                return
            url = self.bot.status.getURLForThing(build)
            result, color = self.results_descriptions.get(build.getResults(), ("??", "RED"))
            self.send("\x02%s\x0f: %s [%s]" % (maybeColorize(result, color, True), url,
                                               build.getProperty("owner")))  # fmt: skip

        def buildStarted(self: Any, builderName: str, build: Any) -> None:
            raise RuntimeError("a plugin's mistake")

        self.patch(IRCContact, "buildFinished", buildFinished)
        self.patch(IRCContact, "buildStarted", buildStarted)
        _, port = self.serve()
        alice = yield self.person(port)
        yield self.start_master({"b1": [python_step("emit", "print(1)")]},
                                receivers=[self.bot(port, notify_events=["success", "started"]),
                                           self.heard])  # fmt: skip
        yield alice.wait_present("bb", "#ci")
        yield self.force("b1")
        said = yield alice.wait_said(1)
        self.assertEqual(said, [f"\x02{GREEN}Success{END}\x0f: {(yield self.url('b1', 1))} [user]"])
        # The plugin's failure is logged; the build went on, and so did the bot.
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual((yield alice.ask("bb: hello")), ["yes?"])

    @defer.inlineCallbacks
    def test_a_chat_bot_of_another_protocol(self) -> defer.Generator:
        sent: list[tuple[str | None, str]] = []

        class RoomContact(Contact):
            """As the XMPP bots built theirs on Contact."""

            def send(self, message: str) -> None:
                sent.append((self.dest, message))

            def describeUser(self, user: str) -> str:
                return f"Jabber user <{user}> on {self.dest}"

        @implementer(IChannel)
        class RoomBot(StatusBot):
            contactClass = RoomContact

        yield self.start_master({"b1": [python_step("emit", "print(1)")]}, receivers=[self.heard])
        bot = RoomBot(self.legacy_status(), None, {"finished": 1}, useColors=False)
        bot.nickname = "bb"
        room = bot.getContact("Room@conference")
        self.assertIs(bot.getContact("room@CONFERENCE"), room)
        yield room.handleMessage("status b1", "alice")
        yield self.force("b1")
        yield poll(lambda: len(sent) == 2, "the build's end told")
        yield room.handleMessage("force build b1", "alice")
        self.assertEqual(
            sent,
            [("room@conference", "b1: idle"),
             ("room@conference", "build #1 of b1 is complete: Success [build successful]"
                                 f"  Build details are at {(yield self.url('b1', 1))}"),
             ("room@conference", "builder control is not enabled")],
        )  # fmt: skip
        bot.forget_contacts()
        self.assertNotIn(room, self.legacy_status().watchers)
        self.assertTrue(issubclass(UsageError, ValueError))

    # Connections

    @defer.inlineCallbacks
    def test_reconnects_after_the_server_drops_it(self) -> defer.Generator:
        server, port = self.serve()
        alice = yield self.person(port)
        yield self.start_master(
            {"b1": [python_step("emit", "print(1)")]},
            receivers=[self.bot(port, lostDelay=0.1, notify_events=["finished"]), self.heard],
        )
        yield alice.wait_present("bb", "#ci")
        server.drop("bb")
        yield alice.wait_until(lambda: alice.seen.count(("join", "bb", "#ci")) == 2)
        # The contacts of the lost connection follow no builds: one follows them.
        yield poll(
            lambda: [w.dest for w in self.legacy_status().watchers
                     if isinstance(w, IRCContact)] == ["#ci"],
            "the new connection's contact, alone",
        )  # fmt: skip
        yield self.force("b1")
        yield self.heard.wait_for_builds(1)
        yield self.bot_leaves(alice)
        self.assertEqual(
            alice.said(),
            [f"build #1 of b1 is complete: Success [{GREEN}build successful{END}]"
             f"  Build details are at {(yield self.url('b1', 1))}"],
        )  # fmt: skip
        self.assertTrue(any("IRC: connection to 127.0.0.1:" in line and "connecting again in 0.1 s"
                            in line for line in self.log))  # fmt: skip

    @defer.inlineCallbacks
    def test_a_server_down_at_start(self) -> defer.Generator:
        closed = reactor.listenTCP(0, protocol.ServerFactory(), interface="127.0.0.1")
        port = closed.getHost().port
        yield closed.stopListening()
        yield self.start_master(
            {"b1": [python_step("emit", "print(1)")]},
            receivers=[self.bot(port, failedDelay=0.2, notify_events=["finished"]), self.heard],
        )
        # The master builds all the same; the bot says why it cannot connect.
        yield self.force("b1")
        yield self.heard.wait_for_builds(1)
        failing = f"IRC: cannot connect to 127.0.0.1:{port}"
        yield poll(lambda: any(failing in line for line in self.log), "the failure logged")
        server, _ = self.serve(port=port)
        alice = yield self.person(port)
        yield poll(lambda: server.signed_on("bb"), "the bot to connect")
        self.assertEqual((yield alice.ask("hello", where="bb")), ["yes?"])
        self.assertTrue(any(failing in line and "trying again in 0.2 s" in line
                            for line in self.log))  # fmt: skip
        yield self.reconfig(services=[])  # the bot quits before the server stops

    @defer.inlineCallbacks
    def test_ssl_checks_the_servers_certificate(self) -> defer.Generator:
        certificate = self_signed("localhost")
        server = IRCServer()
        listening = reactor.listenSSL(0, server, certificate.options(), interface="127.0.0.1")
        self.addCleanup(server.all_closed)
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        yield self.start_master(
            {"b1": [python_step("emit", "print(1)")]},
            receivers=[IRC("localhost", "bb", ["#ci"], port=port, useSSL=True), self.heard],
        )
        lost = f"IRC: connection to localhost:{port} lost"
        yield poll(lambda: [line for line in self.log if lost in line], "the refusal logged")
        self.assertFalse(server.signed_on("bb"))
        # The same server, its certificate trusted: the bot signs on.
        trusting = ssl.optionsForClientTLS
        self.patch(
            words.ssl, "optionsForClientTLS",
            lambda host: trusting(host, trustRoot=certificate),
        )  # fmt: skip
        bot = IRC("localhost", "bb", ["#ci"], port=port, useSSL=True, lostDelay=0)
        yield self.reconfig(services=[LegacyStatus(receivers=[bot])])
        yield poll(lambda: server.signed_on("bb"), "the bot on the server it trusts")
        yield self.reconfig(services=[])

    @defer.inlineCallbacks
    def test_reconfig_keeps_an_equal_bot_and_replaces_a_changed_one(self) -> defer.Generator:
        server, port = self.serve()
        alice = yield self.person(port)
        first = self.bot(port, notify_events=["finished"])
        yield self.start_master(
            {"b1": [python_step("emit", "print(1)")]}, receivers=[first, self.heard]
        )
        yield alice.wait_present("bb", "#ci")
        equal = self.bot(port, notify_events=["finished"])
        yield self.reconfig(services=[LegacyStatus(receivers=[equal, self.heard])])
        self.assertIs(self.legacy_status().receivers[0], first)
        # Changed: the old bot quits, and its nickname is free for the new
        # one at its first try (it would be refused while the old was there).
        second = self.bot(port, notify_events=["started"])
        yield self.reconfig(services=[LegacyStatus(receivers=[second, self.heard])])
        yield alice.wait_until(lambda: alice.seen.count(("join", "bb", "#ci")) == 2)
        third = self.bot(port, nick="bb2", notify_events=["started"])
        yield self.reconfig(services=[LegacyStatus(receivers=[third, self.heard])])
        yield alice.wait_present("bb2", "#ci")
        yield self.force("b1")
        yield self.heard.wait_for_builds(1)
        said = yield alice.wait_said(1, "bb2")
        yield self.bot_leaves(alice, "bb2")
        self.assertEqual(said, ["build #1 of b1 started"])
        self.assertEqual(alice.said("bb2"), said)
        self.assertEqual(alice.said("bb"), [])
        reconfigured = ("bb", "buildmaster reconfigured: bot disconnecting")
        self.assertEqual(server.quits, [reconfigured, reconfigured, ("bb2", reconfigured[1])])
        self.assertFalse([line for line in self.log if "IRC: connection to" in line])
        self.assertEqual(self.flushLoggedErrors(), [])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allowForce": "yes"}, "allowForce must be boolean, not 'yes'"),
        ({"allowShutdown": "no"}, "allowShutdown must be boolean, not 'no'"),
        ({"notify_events": ["started", "sometimes"]}, "'sometimes' is not an event to notify of"),
        ({"notify_events": "started"}, "notify_events must be a list of events"),
        ({"port": "6667"}, "IRC: port must be a port number, not '6667'"),
        ({"port": 70000}, "IRC: port must be a port number, not 70000"),
        ({"channels": "#ci"}, "channels must be a list of channel names, not '#ci'"),
        ({"channels": [{"password": "k"}]}, "must be a name or a dict with 'channel'"),
        ({"nick": "my bot"}, "IRC: nick must be a nickname, not 'my bot'"),
        ({"host": ""}, "IRC: host must be a host name, not ''"),
        ({"tags": "fast"}, "IRC: tags must be a list of tags, not 'fast'"),
        ({"lostDelay": -1}, "IRC: lostDelay must be a number of seconds, not -1"),
        ({"failedDelay": "soon"}, "IRC: failedDelay must be a number of seconds, not 'soon'"),
        ({"pm_to_nicks": "alice"}, "pm_to_nicks must be a list of nicknames, not 'alice'"),
        ({"useSSL": "yes"}, "IRC: useSSL must be boolean, not 'yes'"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"host": "irc.example.org", "nick": "bb", "channels": ["#ci"]}
    arguments.update(kwargs)
    with pytest.raises(ConfigErrors) as e:
        IRC(**arguments)
    assert message in str(e.value)


def test_a_master_cfg_hears_of_every_error_at_once() -> None:
    with capture_config_errors() as errors:
        IRC("irc.example.org", "bb", "#ci", allowForce=None, notify_events=["x"], port=0)
    assert len(errors.errors) == 4, errors.errors


def test_what_0_8_configs_and_plugins_find() -> None:
    assert words is sys.modules["buildbot.status.words"]
    bot = IRC("irc.example.org", "bb", ["#ci"], categories=["fast"], notify_events={"failure": 1})
    assert bot.tags == ["fast"]
    assert bot.categories == ["fast"]
    # 0.8.0-0.8.8's subclasses set it in their own __init__ (eAthena's did)
    bot.categories = bot.f.categories = ["slow"]
    assert (bot.tags, bot.f.tags) == (["slow"], ["slow"])
    bot.categories = bot.f.categories = ["fast"]
    assert bot.f.protocol is IrcStatusBot
    assert isinstance(bot.f, IrcStatusFactory)
    assert bot == IRC("irc.example.org", "bb", ["#ci"], tags=["fast"], notify_events={"failure": 1})
    assert bot != IRC("irc.example.org", "bb", ["#ci"], tags=["fast"])
    assert maybeColorize("x", "PURPLE", True) == PURPLE + "x" + END
    assert maybeColorize("x", "PURPLE", False) == "x"
    assert words.have_ssl is True
    for name in ("log", "reactor", "shlex", "irc", "internet", "SourceStamp", "Properties",
                 "ThrottledClientFactory", "ForceOptions", "IrcBuildRequest"):  # fmt: skip
        assert hasattr(words, name), name
    assert IChannel.implementedBy(IrcStatusBot)
    assert issubclass(IRCContact, Contact)
    assert re.match(r"^\d", words.version)
