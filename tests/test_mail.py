"""
0.8.14's C{MailNotifier}, ported: on a real master with real builds,
mailing through a real SMTP server (Twisted's own, on a loopback port).
The expected texts are what 0.8.14's own code makes of the same builds
(pinned by running it under Python 2.7 on builds with these values).
"""

from __future__ import annotations

import email
import email.header
import email.utils
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest
import twisted.test
from buildbot.config.errors import ConfigErrors, capture_config_errors
from buildbot.interfaces import IEmailLookup
from buildbot.plugins import schedulers, util
from buildbot.process.results import FAILURE, SUCCESS
from twisted.cred import checkers, portal
from twisted.internet import defer, error, protocol, reactor, ssl
from twisted.mail import smtp
from twisted.mail._cred import LOGINCredentials
from twisted.python import log
from zope.interface import implementer

from buildbot_logfile import _shims
from buildbot_logfile.bridge import LegacyStatus
from tests.masters import MasterTestCase, Recorder, Waiters, python_step

_shims.install()

from buildbot.status.mail import (  # type: ignore[import-not-found]  # noqa: E402
    Domain,
    MailNotifier,
    defaultMessage,
)

TITLE = "Caf\u00e9 Project"


# The SMTP server


@dataclass
class Mail:
    """One mail as the server took it: the envelope, and the bytes of DATA."""

    sender: str
    recipients: list[str] = field(default_factory=list)
    data: bytes = b""
    user: bytes | None = None  # who authenticated, if anyone

    @property
    def message(self) -> Any:
        return email.message_from_bytes(self.data)

    def header(self, name: str) -> str | None:
        """A header's value, RFC 2047 words decoded."""
        value = self.message[name]
        if value is None:
            return None
        return str(email.header.make_header(email.header.decode_header(value)))

    def text(self) -> str:
        """The body, or the first part's, decoded."""
        message = self.message
        part = message.get_payload(0) if message.is_multipart() else message
        return part.get_payload(decode=True).decode(part.get_content_charset())

    @property
    def number(self) -> int:
        """The build's number, from its URL in the text."""
        return int(re.search(r"/builds/(\d+)\n", self.text()).group(1))


class Mailbox:
    """What an SMTP server received; it refuses every recipient if told to."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.mails: list[Mail] = []
        self._waiting = Waiters()

    def received(self, mail: Mail) -> None:
        self.mails.append(mail)
        self._waiting.check()

    def wait_for(self, count: int) -> defer.Deferred[None]:
        return self._waiting.wait_until(lambda: len(self.mails) >= count)

    def to(self, address: str) -> list[Mail]:
        return sorted((m for m in self.mails if address in m.recipients), key=lambda m: m.number)


@implementer(smtp.IMessage)
class _Message:
    def __init__(self, mailbox: Mailbox, mail: Mail) -> None:
        self.mailbox = mailbox
        self.mail = mail
        self.lines: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def eomReceived(self) -> defer.Deferred[None]:
        # One message per recipient, all with the same lines: keep one.
        if not self.mail.data:
            self.mail.data = b"".join(line + b"\n" for line in self.lines)
            self.mailbox.received(self.mail)
        return defer.succeed(None)

    def connectionLost(self) -> None:
        pass


@implementer(smtp.IMessageDelivery)
class _Delivery:
    """One connection's (or one login's) transactions."""

    def __init__(self, mailbox: Mailbox, user: bytes | None = None) -> None:
        self.mailbox = mailbox
        self.user = user
        self.mail: Mail | None = None

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> None:
        return None

    def validateFrom(self, helo: Any, origin: Any) -> Any:
        self.mail = Mail(sender=str(origin), user=self.user)
        return origin

    def validateTo(self, user: Any) -> Any:
        if self.mailbox.refuse:
            raise smtp.SMTPBadRcpt(user)
        mail = self.mail
        assert mail is not None
        mail.recipients.append(str(user.dest))
        return lambda: _Message(self.mailbox, mail)


@implementer(portal.IRealm)
class _Realm:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        return smtp.IMessageDelivery, _Delivery(self.mailbox, avatarId), lambda: None


class _Server(smtp.ESMTP):
    # Takes mail only once STARTTLS has made the connection private.
    tls_only = False

    def do_MAIL(self, rest: bytes) -> None:
        if self.tls_only and not self.startedTLS:
            self.sendCode(530, b"5.7.0 Must issue a STARTTLS command first")
            return
        super().do_MAIL(rest)

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        self.factory.lost(self)


class _Tracked(protocol.ServerFactory):
    """A server factory that knows its open connections, for the test to wait on their end."""

    def __init__(self) -> None:
        self.connections: set[Any] = set()
        self._closed = Waiters()

    def lost(self, connection: Any) -> None:
        self.connections.discard(connection)
        self._closed.check()

    def all_closed(self) -> defer.Deferred[None]:
        return self._closed.wait_until(lambda: not self.connections)


class SMTPServer(_Tracked):
    """
    A real ESMTP server on a free loopback port; with C{logins}, it asks
    for AUTH LOGIN with those C{{user: password}} (bytes) and takes mail
    only from who logged in; with C{tls_only}, it offers STARTTLS (with
    Twisted's test certificate) and takes mail only over it.
    """

    def __init__(
        self, mailbox: Mailbox, logins: dict[bytes, bytes] | None = None, tls_only: bool = False
    ) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.tls = None
        if tls_only:
            with open(
                os.path.join(os.path.dirname(twisted.test.__file__), "server.pem"), "rb"
            ) as f:
                self.tls = ssl.PrivateCertificate.loadPEM(f.read()).options()
        self.portal = None
        if logins:
            checker = checkers.InMemoryUsernamePasswordDatabaseDontUse()
            for user, password in logins.items():
                checker.addUser(user, password)
            self.portal = portal.Portal(_Realm(mailbox), [checker])

    def buildProtocol(self, addr: Any) -> _Server:
        server = _Server({b"LOGIN": LOGINCredentials} if self.portal else None)
        server.factory = self
        server.host = b"mail.test"
        if self.tls is not None:
            server.ctx, server.tls_only = self.tls, True
        if self.portal is not None:
            server.portal = self.portal
        else:
            server.delivery = _Delivery(self.mailbox)
        self.connections.add(server)
        return server


class Silent(protocol.Protocol):
    """A server that takes connections and says nothing."""

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.lost(self)  # type: ignore[attr-defined]


class SilentServer(_Tracked):
    protocol = Silent

    def buildProtocol(self, addr: Any) -> Any:
        silent = super().buildProtocol(addr)
        self.connections.add(silent)
        return silent


def on_main_branch() -> Any:
    """A scheduler that builds b1 for each change on the branch main."""
    return schedulers.SingleBranchScheduler(
        name="main",
        change_filter=util.ChangeFilter(branch="main"),
        treeStableTimer=None,
        builderNames=["b1"],
    )


def results_step(path: str) -> Any:
    """A step that exits with the number written in C{path}."""
    return python_step("check", f"import sys; sys.exit(int(open({path!r}).read()))")


def body_of(
    intro: str,
    builder: str,
    number: int,
    url: str,
    project: str = TITLE,
    reason: str = "A build was forced by 'user': force build",
    stamp: str = "HEAD",
    blamelist: str = "",
    summary: str = "Build succeeded!",
) -> str:
    """0.8.14's defaultMessage text, and the two newlines buildMessage adds."""
    return (
        f"The Buildbot has detected a {intro} on builder {builder} while building {project}."
        f" Full details are available at:\n    {url}#/builders/{{{builder}}}/builds/{number}\n"
        f"\nBuildbot URL: {url}\n\n"
        "Buildslave for this Build: local1\n\n"
        f"Build Reason: {reason}\n"
        f"Build Source Stamp: {stamp}\n"
        f"Blamelist: {blamelist}\n\n"
        f"{summary}\n\n"
        "Sincerely,\n -The Buildbot\n\n\n\n"
    )


class MailTests(MasterTestCase):
    def serve(
        self, mailbox: Mailbox, logins: dict[bytes, bytes] | None = None, tls_only: bool = False
    ) -> int:
        """An SMTP server for C{mailbox}, stopped (its connections closed) after the test."""
        server = SMTPServer(mailbox, logins, tls_only)
        port = reactor.listenTCP(0, server, interface="127.0.0.1")
        self.addCleanup(server.all_closed)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def to_ops(self, mailbox: Mailbox, kind: type = MailNotifier, **kwargs: Any) -> Any:
        """A notifier mailing every build to ops@ alone, through a server for C{mailbox}."""
        return kind(
            "buildbot@example.org",
            extraRecipients=["ops@example.org"],
            sendToInterestedUsers=False,
            relayhost="127.0.0.1",
            smtpPort=self.serve(mailbox, tls_only=kwargs.pop("tls_only", False)),
            **kwargs,
        )

    @defer.inlineCallbacks
    def ids(self) -> Any:
        """Builder names to their ids, as their URLs hold them."""
        builders = yield self.master.data.get(("builders",))
        return {b["name"]: b["builderid"] for b in builders}

    def setUp(self) -> None:
        # Given to LegacyStatus after the notifiers: it hears a build's end after them.
        self.heard = Recorder()
        # settle() stops LegacyStatus once every mail is sent or has failed:
        # a relay that is down is tried 5 times more, which may take longer
        # than a stop waits by default.
        self.patch(MailNotifier, "stopTimeout", 120)

    @defer.inlineCallbacks
    def settle(self, builds: int) -> Any:
        """
        Once C{builds} builds have finished, stop LegacyStatus: the mails its
        notifiers are sending are sent first.
        """
        yield self.heard.wait_for_builds(builds)
        yield self.reconfig(services=[])

    @defer.inlineCallbacks
    def test_a_failed_build_mailed_as_0_8_did(self) -> defer.Generator:
        mailbox = Mailbox()
        notifier = self.to_ops(mailbox)
        yield self.start_master(
            {
                "b1": [
                    python_step("emit", "print('hi')"),
                    python_step("fail", "exit(1)", descriptionDone="fail"),
                ]
            },
            receivers=[notifier, self.heard],
            title=TITLE,
        )
        yield self.force("b1")
        yield self.settle(1)
        (mail,) = mailbox.mails
        self.assertEqual(
            (mail.sender, mail.recipients), ("buildbot@example.org", ["ops@example.org"])
        )
        url = self.master.config.buildbotURL
        date = mail.message["Date"]
        self.assertIsNotNone(email.utils.parsedate_to_datetime(date))
        body = body_of("failed build", "b1", 1, url, summary="BUILD FAILED: failed fail")
        body = body.format(**(yield self.ids()))
        # Byte for byte what 0.8.14 sent: an 8bit UTF-8 body, the subject
        # in RFC 2047 words.
        self.assertEqual(
            mail.data.decode("utf-8"),
            "Content-Transfer-Encoding: 8bit\n"
            "MIME-Version: 1.0\n"
            'Content-Type: text/plain; charset="utf-8"\n'
            f"Date: {date}\n"
            "Subject: =?utf-8?q?buildbot_failure_in_Caf=C3=A9_Project_on_b1?=\n"
            "From: buildbot@example.org\n"
            "To: ops@example.org\n"
            "\n" + body,
        )
        self.assertEqual(mail.header("Subject"), "buildbot failure in Caf\u00e9 Project on b1")
        self.assertEqual(mail.text(), body)

    @defer.inlineCallbacks
    def test_addresses_beyond_ascii_as_smtp_without_smtputf8_carries_them(
        self,
    ) -> defer.Generator:
        said: list[dict[str, Any]] = []
        log.addObserver(said.append)
        self.addCleanup(log.removeObserver, said.append)
        mailbox = Mailbox()

        class AlsoToTheBookshop(MailNotifier):
            # 0.8's VALID_EMAIL takes only ASCII domains from lookups and
            # the config; a subclass may give others.
            def sendMessage(self, m: Any, recipients: list[str]) -> Any:
                return MailNotifier.sendMessage(self, m, [*recipients, "shop@b\u00fccher.example"])

        notifier = AlsoToTheBookshop(
            "buildbot@example.org",
            lookup=Domain("example.org"),
            relayhost="127.0.0.1",
            smtpPort=self.serve(mailbox),
        )
        yield self.start_master(
            {"b1": [python_step("fail", "exit(1)")]},
            receivers=[notifier, self.heard],
            schedulers=[on_main_branch()],
        )
        for number, author in enumerate(("bob", "j\u00fcrgen"), 1):
            yield self.master.data.updates.addChange(
                author=author, files=["a.c"], comments="x", revision=f"r{number}",
                branch="main", project="", codebase="",
            )  # fmt: skip
            yield self.heard.wait_for_builds(number)
        yield self.settle(2)
        # A domain beyond ASCII goes in its IDNA form; a local part beyond
        # ASCII, which only SMTPUTF8 carries, is said and left out.
        self.assertEqual(
            sorted(mail.recipients for mail in mailbox.mails),
            [["bob@example.org", "shop@xn--bcher-kva.example"], ["shop@xn--bcher-kva.example"]],
        )
        messages = [" ".join(map(str, e.get("message", ()))) for e in said]
        self.assertEqual(
            [m for m in messages if m.startswith("MailNotifier: cannot send")],
            [
                "MailNotifier: cannot send to 'j\u00fcrgen@example.org' over SMTP (its local"
                " part is not ASCII, or its domain has no IDNA form); skipped"
            ],
        )

    @defer.inlineCallbacks
    def test_modes_and_filters(self) -> defer.Generator:
        mailbox = Mailbox()
        port = self.serve(mailbox)
        outcome = os.path.abspath(self.mktemp())

        def notifier(to: str, **kwargs: Any) -> MailNotifier:
            return MailNotifier(
                "bb@example.org", extraRecipients=[to], sendToInterestedUsers=False,
                relayhost="127.0.0.1", smtpPort=port, **kwargs,
            )  # fmt: skip

        notifiers = [
            notifier("failing@example.org", mode="failing"),
            notifier("change@example.org", mode="change"),
            notifier("problem@example.org", mode="problem"),
            notifier("all@example.org", mode="all"),
            notifier("passing@example.org", mode=("passing",), builders=["b1"]),
            notifier("fast@example.org", mode=["failing"], tags=["fast"]),
            notifier("slow@example.org", mode="all", tags=["slow"]),
            notifier("other@example.org", mode="all", builders=["other"]),
        ]
        yield self.start_master(
            {},
            receivers=[*notifiers, self.heard],
            builders=[
                util.BuilderConfig(
                    name="b1", workernames=["local1"], tags=["fast"],
                    factory=util.BuildFactory([results_step(outcome)]),
                )
            ],
            schedulers=[schedulers.ForceScheduler(name="force", builderNames=["b1"])],
        )  # fmt: skip
        results = [SUCCESS, SUCCESS, FAILURE, FAILURE, SUCCESS]
        for number, result in enumerate(results, 1):
            with open(outcome, "w") as f:
                f.write(str(result))
            yield self.force("b1")
            yield self.heard.wait_for_builds(number)
        yield self.settle(len(results))

        def mailed(to: str) -> list[tuple[int, str]]:
            return [(m.number, m.text().split(" on builder")[0]) for m in mailbox.to(to)]

        failed, new, restored = (
            f"The Buildbot has detected a {what}"
            for what in ("failed build", "new failure", "restored build")
        )
        self.assertEqual(mailed("failing@example.org"), [(3, failed), (4, failed)])
        # "change": a result unlike the build before's.
        self.assertEqual(mailed("change@example.org"), [(3, new), (5, restored)])
        # "problem": a failure after a build that did not fail.
        self.assertEqual(mailed("problem@example.org"), [(3, new)])
        self.assertEqual([n for n, _ in mailed("all@example.org")], [1, 2, 3, 4, 5])
        self.assertEqual([n for n, _ in mailed("passing@example.org")], [1, 2, 5])
        self.assertEqual([n for n, _ in mailed("fast@example.org")], [3, 4])
        self.assertEqual(mailed("slow@example.org"), [])
        self.assertEqual(mailed("other@example.org"), [])
        self.assertEqual(len(mailbox.mails), 2 + 2 + 1 + 5 + 3 + 2)
        subjects = {m.header("Subject") for m in mailbox.to("all@example.org")}
        self.assertEqual(
            subjects, {"buildbot success in Buildbot on b1", "buildbot failure in Buildbot on b1"}
        )

    @defer.inlineCallbacks
    def test_lookup_with_a_domain_and_extra_recipients_in_cc(self) -> defer.Generator:
        mailbox = Mailbox()
        notifier = MailNotifier(
            "Buildbot <buildbot@example.org>",
            lookup=Domain("example.org"),
            extraRecipients=["ops@example.org"],
            mode="change",
            relayhost="127.0.0.1",
            smtpPort=self.serve(mailbox),
        )
        outcome = os.path.abspath(self.mktemp())
        yield self.start_master(
            {"b1": [results_step(outcome)]},
            receivers=[notifier, self.heard],
            schedulers=[on_main_branch()],
        )  # fmt: skip
        # A failed build (the first: no change of result to tell), then a
        # change that restores it.
        with open(outcome, "w") as f:
            f.write(str(FAILURE))
        ids = yield self.ids()
        yield self.master.data.updates.addBuildset(
            waited_for=False, scheduler="main", reason="broken", builderids=[ids["b1"]],
            sourcestamps=[{"codebase": "", "branch": "main", "revision": "r0",
                           "repository": "", "project": "frob"}],
        )  # fmt: skip
        yield self.heard.wait_for_builds(1)
        self.assertEqual(mailbox.mails, [])
        with open(outcome, "w") as f:
            f.write(str(SUCCESS))
        yield self.master.data.updates.addChange(
            author="bob", files=["a.c"], comments="fix", revision="r1", branch="main",
            project="frob", codebase="",
        )  # fmt: skip
        yield self.settle(2)
        (mail,) = mailbox.mails
        self.assertEqual(mail.sender, "buildbot@example.org")
        # To: the change's author through the lookup; the extras in CC.
        self.assertEqual(sorted(mail.recipients), ["bob@example.org", "ops@example.org"])
        self.assertEqual(
            [mail.message[h] for h in ("From", "To", "CC")],
            ["Buildbot <buildbot@example.org>", "bob@example.org", "ops@example.org"],
        )
        body = body_of(
            "restored build", "b1", 2, self.master.config.buildbotURL, project="frob",
            reason="The SingleBranchScheduler scheduler named 'main' triggered this build",
            stamp="[branch main] r1", blamelist="bob",
        ).format(**ids)  # fmt: skip
        self.assertEqual(mail.text(), body)
        self.assertEqual(mail.header("Subject"), "buildbot success in Buildbot on b1")

    @defer.inlineCallbacks
    def test_without_a_lookup_the_users_database_has_the_addresses(self) -> defer.Generator:
        mailbox = Mailbox()
        notifier = MailNotifier(
            "buildbot@example.org", relayhost="127.0.0.1", smtpPort=self.serve(mailbox)
        )
        yield self.start_master(
            {"b1": [python_step("emit", "print('hi')")]},
            receivers=[notifier, self.heard],
            schedulers=[on_main_branch()],
        )  # fmt: skip
        uid = yield self.master.db.users.findUserByAttr(
            identifier="carol", attr_type="git", attr_data="carol"
        )
        yield self.master.db.users.updateUser(
            uid=uid, attr_type="email", attr_data="carol@example.net"
        )
        # Buildbot links a change with a "src" to its author's user.
        yield self.master.data.updates.addChange(
            author="carol", files=[], comments="c", revision="r1", branch="main",
            codebase="", src="git",
        )  # fmt: skip
        yield self.settle(1)
        (mail,) = mailbox.mails
        self.assertEqual(mail.recipients, ["carol@example.net"])
        self.assertEqual(mail.message["To"], "carol@example.net")
        self.assertIn("Blamelist: carol\n", mail.text())

    @defer.inlineCallbacks
    def test_logs_and_patches_attached_non_ascii_intact(self) -> defer.Generator:
        mailbox = Mailbox()
        notifier = MailNotifier(
            "buildbot@example.org",
            extraRecipients=["ops@example.org"],
            sendToInterestedUsers=False,
            addLogs=["emit.stdio"],
            extraHeaders={
                "X-Build": util.Interpolate("%(prop:buildername)s #%(prop:buildnumber)s"),
                "X-Static": "as is",
            },
            relayhost="127.0.0.1",
            smtpPort=self.serve(mailbox),
        )
        emit = "print('h\\u00e9llo \\u2603'); print('From here, and 100% UTF-8')"
        yield self.start_master(
            {"b1": [python_step("emit", emit), python_step("quiet", "pass")]},
            receivers=[notifier, self.heard],
        )
        yield self.master.data.updates.addBuildset(
            waited_for=False, scheduler="force", reason="try \u00fcber", builderids=[1],
            sourcestamps=[{
                "codebase": "", "branch": "dev", "revision": "abc", "repository": "",
                "project": "", "patch_body": "--- a\n+++ b\n+caf\u00e9\n".encode(),
                "patch_level": 1, "patch_author": "", "patch_comment": "",
                "patch_subdir": ".",
            }],
        )  # fmt: skip
        yield self.settle(1)
        (mail,) = mailbox.mails
        message = mail.message
        boundary, date = message.get_boundary(), message["Date"]
        body = body_of(
            "passing build", "b1", 1, self.master.config.buildbotURL, project="Buildbot",
            reason="try \u00fcber", stamp="[branch dev] abc (plus patch)",
        ).format(**(yield self.ids()))  # fmt: skip
        part = (
            f"--{boundary}\nMIME-Version: 1.0\n"
            'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bit\n'
        )
        # As 0.8.14 laid it out; the texts as they were, UTF-8 and 8bit,
        # and "From" at a line's start not turned into ">From".
        self.assertEqual(
            mail.data.decode("utf-8"),
            f'Content-Type: multipart/mixed; boundary="{boundary}"\n'
            "MIME-Version: 1.0\n"
            f"Date: {date}\n"
            "Subject: buildbot success in Buildbot on b1\n"
            "From: buildbot@example.org\n"
            "X-Build: b1 #1\n"
            "X-Static: as is\n"
            "To: ops@example.org\n\n"
            f"{part}\n{body}\n"
            f'{part}Content-Disposition: attachment; filename="source patch 0"\n\n'
            "--- a\n+++ b\n+caf\u00e9\n\n"
            f'{part}Content-Disposition: attachment; filename="emit.stdio"\n\n'
            "h\u00e9llo \u2603\nFrom here, and 100% UTF-8\n\n"
            f"--{boundary}--\n",
        )
        _, patch, log = message.get_payload()
        self.assertEqual(patch.get_payload(decode=True), "--- a\n+++ b\n+caf\u00e9\n".encode())
        self.assertEqual(
            log.get_payload(decode=True), "h\u00e9llo \u2603\nFrom here, and 100% UTF-8\n".encode()
        )

    @defer.inlineCallbacks
    def test_a_message_formatter_of_0_8(self) -> defer.Generator:
        seen = []

        def formatter(mode: Any, name: str, build: Any, results: int, master_status: Any) -> Any:
            seen.append((mode, name, build.getNumber(), results, master_status.getTitle()))
            text = defaultMessage(mode, name, build, results, master_status)["body"]
            return {
                "body": f"<h1>{name} \u2713</h1><pre>{text}</pre>",
                "type": "html",
                "subject": f"[\u00e9quipe] {name} #{build.getNumber()}",
            }

        mailbox = Mailbox()
        notifier = MailNotifier(
            "B\u00fcildbot <buildbot@example.org>",
            mode="passing",
            extraRecipients=["ops@example.org"],
            sendToInterestedUsers=False,
            messageFormatter=formatter,
            relayhost="127.0.0.1",
            smtpPort=self.serve(mailbox),
        )
        yield self.start_master(
            {"b1": [python_step("emit", "print('hi')")]},
            receivers=[notifier, self.heard],
            title=TITLE,
        )
        yield self.force("b1")
        yield self.settle(1)
        (mail,) = mailbox.mails
        self.assertEqual(seen, [(("passing",), "b1", 1, SUCCESS, TITLE)])
        self.assertEqual(mail.message.get_content_type(), "text/html")
        self.assertEqual(mail.header("Subject"), "[\u00e9quipe] b1 #1")
        self.assertEqual(mail.header("From"), "B\u00fcildbot <buildbot@example.org>")
        self.assertEqual(mail.sender, "buildbot@example.org")
        url = self.master.config.buildbotURL
        body = body_of("passing build", "b1", 1, url).format(**(yield self.ids()))
        self.assertEqual(mail.text(), f"<h1>b1 \u2713</h1><pre>{body[:-2]}</pre>\n\n")

    @defer.inlineCallbacks
    def test_a_subclass_that_builds_its_own_message(self) -> defer.Generator:
        class Terse(MailNotifier):
            """As 0.8 plugins did: their own text, 0.8's createEmail and sendMessage."""

            # As LLVM's InformativeMailNotifier had it: 0.8's list, added to.
            compare_attrs = MailNotifier.compare_attrs + ["team"]  # noqa: RUF005  (its code)
            compare_attrs.remove("messageFormatter")
            team = "team@example.org"

            def buildMessage(self, name: str, builds: list[Any], results: int) -> Any:
                (build,) = builds
                text = f"{name} #{build.getNumber()}: {' '.join(build.getText())}\n"
                msgdict = {"body": text, "type": "plain", "subject": f"[ci] {name}"}
                title = self.master_status.getTitle()
                self.custom = self.getCustomMesgData(
                    self.mode, name, build, results, self.master_status
                )
                # As Chromium's notifiers did: 0.8's list of extra recipients, copied.
                recipients = self.extraRecipients[:]
                recipients.append(self.team)
                d = self.createEmail(msgdict, name, title, results, builds)

                def send(m: Any) -> Any:
                    m["To"] = ", ".join(recipients)
                    # 0.8.14's render: a Deferred.
                    d = build.render(util.Interpolate("%(prop:buildername)s"))

                    def header(builder: str) -> Any:
                        m["X-Builder"] = builder
                        return self.sendMessage(m, recipients)

                    return d.addCallback(header)

                return d.addCallback(send)

            def sendMessage(self, m: Any, recipients: list[str]) -> Any:
                # 0.8.14's own, which gave sendmail the message as a string
                s = m.as_string()
                log.msg("sending mail (%d bytes) to" % len(s), recipients)
                return self.sendmail(s, recipients)

        mailbox = Mailbox()
        notifier = Terse(
            "buildbot@example.org", relayhost="127.0.0.1", smtpPort=self.serve(mailbox)
        )
        yield self.start_master(
            {"b1": [python_step("fail", "exit(2)", descriptionDone="fail")]},
            receivers=[notifier, self.heard],
        )
        yield self.force("b1")
        yield self.settle(1)
        (mail,) = mailbox.mails
        self.assertEqual(mail.recipients, ["team@example.org"])
        self.assertEqual((mail.header("Subject"), mail.text()), ("[ci] b1", "b1 #1: failed fail\n"))
        self.assertEqual(mail.header("X-Builder"), "b1")
        # Each log's own URL (0.8 appended a path to the build's)
        (log_data,) = notifier.custom["logs"]
        url = self.master.config.buildbotURL
        self.assertEqual(
            log_data[:2],
            (
                "fail.stdio",
                f"{url}#/builders/{(yield self.ids())['b1']}/builds/1/steps/1/logs/stdio",
            ),
        )

    @defer.inlineCallbacks
    def test_a_buildset_summary(self) -> defer.Generator:
        mailbox = Mailbox()
        notifier = MailNotifier(
            "buildbot@example.org",
            extraRecipients=["ops@example.org"],
            sendToInterestedUsers=False,
            buildSetSummary=True,
            addLogs=True,
            relayhost="127.0.0.1",
            smtpPort=self.serve(mailbox),
        )
        yield self.start_master(
            {
                "b1": [python_step("emit", "print('one')")],
                "b2": [python_step("emit", "print('two'); exit(1)", descriptionDone="emit")],
            },
            receivers=[notifier, self.heard],
        )
        ids = yield self.ids()
        yield self.master.data.updates.addBuildset(
            waited_for=False, scheduler="force", reason="both", builderids=[ids["b1"], ids["b2"]],
            sourcestamps=[{"codebase": "", "branch": "", "revision": "", "repository": "",
                           "project": ""}],
        )  # fmt: skip
        # The summary comes once the buildset is complete, after its builds' ends.
        yield mailbox.wait_for(1)
        yield self.settle(2)
        (mail,) = mailbox.mails  # one mail for the buildset, none per build
        self.assertEqual(mail.header("Subject"), "buildbot failure in Buildbot on (whole buildset)")
        url = self.master.config.buildbotURL
        first = body_of("passing build", "b1", 1, url, project="Buildbot", reason="both")
        second = body_of("failed build", "b2", 1, url, project="Buildbot", reason="both",
                         summary="BUILD FAILED: failed emit")  # fmt: skip
        self.assertEqual(mail.text(), (first + second).format(**ids))
        _, *logs = mail.message.get_payload()
        self.assertEqual(
            [(log.get_filename(), log.get_payload(decode=True)) for log in logs],
            [("b1.emit.stdio", b"one\n"), ("b2.emit.stdio", b"two\n")],
        )

    @defer.inlineCallbacks
    def test_smtp_authentication(self) -> defer.Generator:
        mailbox = Mailbox()
        port = self.serve(mailbox, logins={b"bb": "s\u00e9cret".encode()})
        notifier = MailNotifier(
            "buildbot@example.org",
            extraRecipients=["ops@example.org"],
            sendToInterestedUsers=False,
            smtpUser="bb",
            smtpPassword="s\u00e9cret",
            relayhost="127.0.0.1",
            smtpPort=port,
        )
        yield self.start_master(
            {"b1": [python_step("emit", "print('hi')")]}, receivers=[notifier, self.heard]
        )
        yield self.force("b1")
        yield self.settle(1)
        (mail,) = mailbox.mails
        self.assertEqual((mail.user, mail.recipients), (b"bb", ["ops@example.org"]))

    @defer.inlineCallbacks
    def test_starttls_wherever_the_relay_offers_it(self) -> defer.Generator:
        mailbox = Mailbox()
        notifier = self.to_ops(mailbox, tls_only=True)
        yield self.start_master(
            {"b1": [python_step("emit", "print('hi')")]}, receivers=[notifier, self.heard]
        )
        yield self.force("b1")
        yield self.settle(1)
        (mail,) = mailbox.mails  # the relay took it over TLS only
        self.assertEqual(mail.recipients, ["ops@example.org"])

    @defer.inlineCallbacks
    def test_a_patch_that_is_not_utf_8_attached_as_it_is(self) -> defer.Generator:
        class AsString(MailNotifier):
            def sendMessage(self, m: Any, recipients: list[str]) -> Any:
                # 0.8.14's own, which gave sendmail the message as a string
                return self.sendmail(m.as_string(), recipients)

        mailbox = Mailbox()
        notifier = self.to_ops(mailbox, AsString)
        yield self.start_master(
            {"b1": [python_step("emit", "print('hi')")]}, receivers=[notifier, self.heard]
        )
        patch = b"--- a\n+++ b\n+caf\xe9\n"  # Latin-1
        yield self.master.data.updates.addBuildset(
            waited_for=False, scheduler="force", reason="try", builderids=[1],
            sourcestamps=[{
                "codebase": "", "branch": "", "revision": "abc", "repository": "", "project": "",
                "patch_body": patch, "patch_level": 1, "patch_author": "", "patch_comment": "",
                "patch_subdir": ".",
            }],
        )  # fmt: skip
        yield self.settle(1)
        (mail,) = mailbox.mails
        _, attached = mail.message.get_payload()
        self.assertEqual(attached.get_content_type(), "application/octet-stream")
        self.assertEqual(attached.get_payload(decode=True), patch)

    @defer.inlineCallbacks
    def test_a_relay_that_refuses_is_down_or_silent(self) -> defer.Generator:
        good, refusing = Mailbox(), Mailbox(refuse=True)
        good_port, refusing_port = self.serve(good), self.serve(refusing)
        silent = SilentServer()
        silent_port = reactor.listenTCP(0, silent, interface="127.0.0.1")
        self.addCleanup(silent.all_closed)
        self.addCleanup(silent_port.stopListening)
        closed = reactor.listenTCP(0, protocol.ServerFactory(), interface="127.0.0.1")
        down_port = closed.getHost().port
        yield closed.stopListening()

        def notifier(port: int, **kwargs: Any) -> MailNotifier:
            return MailNotifier(
                "bb@example.org", mode="all", extraRecipients=["ops@example.org"],
                sendToInterestedUsers=False, relayhost="127.0.0.1", smtpPort=port, **kwargs,
            )  # fmt: skip

        quiet = notifier(silent_port.getHost().port)
        quiet.timeout = 0.2
        notifiers = [
            notifier(refusing_port),
            notifier(down_port),
            quiet,
            # TLS required, and the relay has no STARTTLS.
            notifier(good_port, useTls=True),
            notifier(good_port),
        ]
        yield self.start_master(
            {"b1": [python_step("emit", "print('hi')")]}, receivers=[*notifiers, self.heard]
        )
        yield self.force("b1")
        yield self.heard.wait_for_builds(1)
        yield self.force("b1")
        yield self.settle(2)
        # The master, the other notifiers and receivers went on.
        self.assertEqual(sorted(m.number for m in good.mails), [1, 2])
        self.assertEqual(refusing.mails, [])
        self.assertEqual(
            [e[0] for e in self.heard.events if e[0] == "buildFinished"], ["buildFinished"] * 2
        )
        # Each failure was logged, once per build.
        self.assertEqual(len(self.flushLoggedErrors(smtp.SMTPDeliveryError)), 2)
        # (Twisted 25.5, the oldest supported, gives the connection's own error.)
        refused = self.flushLoggedErrors(smtp.SMTPConnectError, error.ConnectionRefusedError)
        self.assertEqual(len(refused), 2)
        self.assertEqual(len(self.flushLoggedErrors(smtp.SMTPTimeoutError)), 2)
        self.assertEqual(len(self.flushLoggedErrors(smtp.TLSRequiredError)), 2)
        self.assertEqual(self.flushLoggedErrors(), [])

    @defer.inlineCallbacks
    def test_reconfig_keeps_an_equal_notifier_and_replaces_a_changed_one(self) -> defer.Generator:
        mailbox = Mailbox()
        port = self.serve(mailbox)

        def notifier(to: str) -> MailNotifier:
            return MailNotifier(
                "bb@example.org", extraRecipients=[to], sendToInterestedUsers=False,
                relayhost="127.0.0.1", smtpPort=port,
            )  # fmt: skip

        first = notifier("first@example.org")
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, receivers=[first])
        yield self.reconfig(services=[LegacyStatus(receivers=[notifier("first@example.org")])])
        self.assertEqual(self.legacy_status().receivers, [first])
        second = notifier("second@example.org")
        yield self.reconfig(services=[LegacyStatus(receivers=[second])])
        self.assertEqual(self.legacy_status().receivers, [second])
        self.assertIsNone(first.master_status)
        yield self.force("b1")
        yield mailbox.wait_for(1)
        self.assertEqual(mailbox.mails[0].recipients, ["second@example.org"])


def test_modes_as_0_8_read_them() -> None:
    def mode(value: Any) -> Any:
        return MailNotifier("bb@example.org", mode=value).mode

    assert mode("all") == ("failing", "passing", "warnings", "exception")
    assert mode("warnings") == ("failing", "warnings")
    assert mode("problem") == ("problem",)
    assert mode(["change", "exception"]) == ["change", "exception"]  # as given, as 0.8 kept it
    assert mode({"failing"}) == ("failing",)
    assert MailNotifier("bb@example.org").mode == ("failing", "passing", "warnings")
    with_domain = MailNotifier("bb@example.org", lookup="example.org", categories=["c"])
    assert with_domain.lookup == Domain("example.org")
    assert with_domain.lookup.getAddress("bob") == "bob@example.org"
    assert with_domain.lookup.getAddress("Bob <bob@x.org>") == "Bob <bob@x.org>"
    assert with_domain.tags == with_domain.categories == ["c"]
    with_domain.categories = ["d"]  # as plugins of 0.8.0-0.8.9 set it
    assert with_domain.tags == ["d"]


@implementer(IEmailLookup)
class _Lookup:
    def getAddress(self, name: str) -> str:
        return name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extraRecipients": "ops@example.org"}, "extraRecipients must be a list or tuple"),
        ({"extraRecipients": ["ops"]}, "extra recipient 'ops' is not a valid email"),
        ({"mode": "nonsense"}, "mode nonsense is not a valid mode"),
        ({"mode": ["failing", "all"]}, "mode 'all' is not valid in an iterator"),
        ({"mode": 3}, "mode 3 is not a valid mode"),
        ({"subject": "a\nb"}, "Newlines are not allowed in email subjects"),
        ({"builders": ["b1"], "tags": ["t"]}, "Please specify only builders or tags"),
        ({"builders": ["b1"], "categories": ["t"]}, "Please specify only builders or tags"),
        ({"customMesg": lambda attrs: ("", "plain")}, "customMesg is deprecated"),
        ({"extraHeaders": [("X-A", "b")]}, "extraHeaders must be a dictionary"),
        ({"lookup": object()}, "must be a domain name or provide IEmailLookup"),
        ({"lookup": "bad@domain"}, "'bad@domain' must be a domain name, without '@'"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigErrors) as e:
        MailNotifier("bb@example.org", **kwargs)
    assert message in str(e.value)


def test_a_master_cfg_hears_of_every_error_at_once() -> None:
    # As buildbot checkconfig loads a master.cfg: errors collected, none raised.
    with capture_config_errors() as errors:
        MailNotifier(
            "bb@example.org", extraRecipients="ops@example.org", mode=3, lookup=object(),
            builders=["b1"], tags=["t"], customMesg=print,
        )  # fmt: skip
    assert len(errors.errors) == 5, errors.errors


def test_an_email_lookup_of_its_own_is_taken() -> None:
    lookup = _Lookup()
    assert MailNotifier("bb@example.org", lookup=lookup).lookup is lookup


def test_module_names() -> None:
    mail = sys.modules["buildbot.status.mail"]
    assert mail.VALID_EMAIL.search("Full Name <full.name@example.net>")
    assert not mail.VALID_EMAIL.search("full.name")
    assert mail.MailNotifier.possible_modes == (
        "change", "failing", "passing", "problem", "warnings", "exception",
    )  # fmt: skip
