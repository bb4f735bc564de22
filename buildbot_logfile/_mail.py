"""
0.8's C{buildbot.status.mail}: C{MailNotifier}, which mails a message when
a build finishes (or, with C{buildSetSummary}, when a buildset does), to
the build's interested users and C{extraRecipients}, through an SMTP relay
with Twisted's C{ESMTPSenderFactory}; C{Domain}, the simplest
C{IEmailLookup}; and C{defaultMessage}, the text it sends.

0.8.14's code, in Python 3: messages are built with the C{email} package as
0.8 built them (UTF-8 bodies sent as 8bit, non-ASCII headers as RFC 2047
words) and sent as bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from email import encoders
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, parseaddr
from io import BytesIO
from typing import Any

from buildbot import config, interfaces
from buildbot.process.results import EXCEPTION, FAILURE, SUCCESS, WARNINGS, Results
from twisted.internet import defer
from twisted.mail.smtp import ESMTPSenderFactory
from twisted.python import log as twlog
from twisted.python.failure import Failure
from zope.interface import implementer

from buildbot_logfile._buildset_summary import BuildSetSummaryNotifierMixin
from buildbot_logfile._mail_message import (
    ENCODING,
    LOG_ENCODING,
    VALID_EMAIL,
    VALID_EMAIL_ADDR,
    Domain,
    _address,
    _bytes_or_none,
    _defaultMessageIntro,
    _defaultMessageProjects,
    _defaultMessageSourceStamps,
    _defaultMessageSummary,
    _defaultMessageURLs,
    _mime_text,
    _result_name,
    _text,
    ascii_address,
    custom_mesg_data,
    defaultGetPreviousBuild,
    defaultMessage,
    getBuildContacts,
)
from buildbot_logfile._status_base import TagsAlias
from buildbot_logfile._within import within
from buildbot_logfile.base import StatusReceiverMultiService

# What buildbot.status.mail holds (0.8's names, and those its module had
# imported that plugins took from it).
__all__ = (
    "ENCODING",
    "EXCEPTION",
    "FAILURE",
    "LOG_ENCODING",
    "SUCCESS",
    "VALID_EMAIL",
    "VALID_EMAIL_ADDR",
    "WARNINGS",
    "Domain",
    "MIMEMultipart",
    "MIMENonMultipart",
    "MIMEText",
    "MailNotifier",
    "Message",
    "Results",
    "_defaultMessageIntro",
    "_defaultMessageProjects",
    "_defaultMessageSourceStamps",
    "_defaultMessageSummary",
    "_defaultMessageURLs",
    "defaultGetPreviousBuild",
    "defaultMessage",
    "formatdate",
)  # fmt: skip


def _unchecked_tls() -> Any:
    """
    TLS options that take the relay's certificate whatever it is, or None
    where Twisted has no TLS (pyOpenSSL missing): then mail goes in clear.
    """
    try:
        from twisted.internet.ssl import CertificateOptions
    except ImportError:
        return None
    return CertificateOptions()


@implementer(interfaces.IEmailSender)
class MailNotifier(StatusReceiverMultiService, BuildSetSummaryNotifierMixin):
    """This is a status notifier which sends email to a list of recipients
    upon the completion of each build. It can be configured to only send out
    mail for certain builds, and only send messages when the build fails, or
    when it transitions from success to failure. It can also be configured to
    include various build logs in each message.

    By default, the message will be sent to the Interested Users list, which
    includes all developers who made changes in the build. You can add
    additional recipients with the extraRecipients argument.

    To get a simple one-message-per-build (say, for a mailing list), use
    sendToInterestedUsers=False, extraRecipients=['listaddr@example.org']

    Each MailNotifier sends mail to a single set of recipients. To send
    different kinds of mail to different recipients, use multiple
    MailNotifiers.

    Beyond 0.8: L{timeout} is how long each answer of the relay may take
    (seconds; RFC 5321 gives the relay up to ten minutes to take a
    message, and Twisted sends it again when the answer does not come);
    connecting takes at most Twisted's 30 seconds, tried 5 times more.  A
    stopping master, or a reconfig that replaces the notifier, waits for
    the mails being sent for at most L{stopTimeout} seconds: 0.8 did not
    wait, and Buildbot's C{buildbot stop} gives a master 10 seconds.  Those
    still going go on while the reactor runs.
    """

    # 0.8's, and the settings 0.8 forgot (a reconfig changing only those
    # kept the old notifier).  A list, as 0.8's was: subclasses add to it
    # (MailNotifier.compare_attrs + [...]) and remove from it.
    compare_attrs: list[str] = [
        "extraRecipients", "lookup", "fromaddr", "mode", "tags", "builders", "addLogs",
        "relayhost", "subject", "sendToInterestedUsers", "customMesg", "messageFormatter",
        "extraHeaders",
        "addPatch", "useTls", "smtpUser", "smtpPassword", "smtpPort", "buildSetSummary",
        "getPreviousBuild",
    ]  # fmt: skip
    categories = TagsAlias()

    possible_modes = ("change", "failing", "passing", "problem", "warnings", "exception")

    timeout: float = 600
    stopTimeout: float = 5

    def __init__(
        self,
        fromaddr: str,
        mode: str | Iterable[str] = ("failing", "passing", "warnings"),
        tags: list[str] | None = None,
        builders: list[str] | None = None,
        addLogs: bool | list[str] = False,
        relayhost: str = "localhost",
        buildSetSummary: bool = False,
        subject: str = "buildbot %(result)s in %(title)s on %(builder)s",
        lookup: Any = None,
        extraRecipients: list[str] | tuple[str, ...] | None = None,
        sendToInterestedUsers: bool = True,
        customMesg: Any = None,
        messageFormatter: Callable[..., dict[str, Any]] = defaultMessage,
        extraHeaders: dict[Any, Any] | None = None,
        addPatch: bool = True,
        useTls: bool = False,
        smtpUser: str | None = None,
        smtpPassword: str | None = None,
        smtpPort: int = 25,
        previousBuildGetter: Callable[[Any], Any] = defaultGetPreviousBuild,
        categories: list[str] | None = None,  # deprecated, use tags
    ) -> None:
        StatusReceiverMultiService.__init__(self)

        if extraRecipients is None:
            extraRecipients = []  # a list, as 0.8's: subclasses append to a copy
        if not isinstance(extraRecipients, (list, tuple)):
            config.error("extraRecipients must be a list or tuple")
        else:
            for r in extraRecipients:
                if not isinstance(r, str) or not VALID_EMAIL.search(r):
                    config.error(f"extra recipient {r!r} is not a valid email")
        self.extraRecipients = extraRecipients
        self.sendToInterestedUsers = sendToInterestedUsers
        self.fromaddr = fromaddr
        if isinstance(mode, str):
            if mode == "all":
                mode = ("failing", "passing", "warnings", "exception")
            elif mode == "warnings":
                mode = ("failing", "warnings")
            else:
                mode = (mode,)
        elif not isinstance(mode, (list, tuple)):
            try:
                mode = tuple(mode)
            except TypeError:
                config.error(f"mode {mode!r} is not a valid mode")
                mode = ()
        for m in mode:
            if m not in self.possible_modes:
                if m == "all":
                    config.error(
                        "mode 'all' is not valid in an iterator and must be "
                        "passed in as a separate string"
                    )
                else:
                    config.error(f"mode {m} is not a valid mode")
        self.mode = mode
        self.tags = tags or categories
        self.builders = builders
        self.addLogs = addLogs
        self.relayhost = relayhost
        if not isinstance(subject, str):
            config.error(f"subject {subject!r} must be a string")
        elif "\n" in subject:
            config.error("Newlines are not allowed in email subjects")
        self.subject = subject
        if lookup is not None:
            if isinstance(lookup, str):
                lookup = Domain(lookup)
            if not interfaces.IEmailLookup.providedBy(lookup):
                config.error(
                    f"lookup {lookup!r} must be a domain name or provide IEmailLookup "
                    "(@implementer(IEmailLookup), from buildbot.interfaces)"
                )
        self.lookup = lookup
        self.customMesg = customMesg
        self.messageFormatter = messageFormatter
        if extraHeaders:  # noqa: SIM102
            if not isinstance(extraHeaders, dict):
                config.error("extraHeaders must be a dictionary")
        self.extraHeaders = extraHeaders
        self.addPatch = addPatch
        self.useTls = useTls
        self.smtpUser = smtpUser
        self.smtpPassword = smtpPassword
        self.smtpPort = smtpPort
        self.buildSetSummary = buildSetSummary
        self.buildSetSubscription = None
        self.getPreviousBuild = previousBuildGetter
        self.watched: list[Any] = []
        self.master_status: Any = None
        self.master: Any = None
        # The mails being made and sent (see _track).
        self._sending: set[defer.Deferred[Any]] = set()

        # you should either limit on builders or tags, not both
        if self.builders is not None and self.tags is not None:
            config.error("Please specify only builders or tags to include - not both.")

        if customMesg:
            config.error("customMesg is deprecated; use messageFormatter instead")

    def setServiceParent(self, parent: Any) -> Any:
        """
        @type  parent: L{buildbot_logfile.bridge.LegacyStatus}
        """
        d = StatusReceiverMultiService.setServiceParent(self, parent)
        self.master_status = self.parent
        self.master_status.subscribe(self)
        self.master = self.master_status.master
        return d

    def startService(self) -> Any:
        StatusReceiverMultiService.startService(self)
        if self.buildSetSummary:
            # Waited for: a buildset that completes once the master runs is told.
            return self.summarySubscribe()
        return None

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        self.summaryUnsubscribe()
        # The mails being sent go out first, for at most stopTimeout seconds;
        # those still going then go on while the reactor runs.
        if self._sending:
            sending = defer.DeferredList(list(self._sending), consumeErrors=True)
            if not (yield within(sending, self.stopTimeout, self.master.reactor)):
                twlog.msg(f"MailNotifier: stopped with {len(self._sending)} mail(s) still going")
        yield StatusReceiverMultiService.stopService(self)

    def disownServiceParent(self) -> Any:
        if self.master_status is not None:
            self.master_status.unsubscribe(self)
        self.master_status = None
        for w in self.watched:
            w.unsubscribe(self)
        self.watched = []
        return StatusReceiverMultiService.disownServiceParent(self)

    def builderAdded(self, name: str, builder: Any) -> Any:
        # only subscribe to builders we are interested in
        if self.tags is not None and not builder.matchesAnyTag(self.tags):
            return None

        self.watched.append(builder)
        return self  # subscribe to this builder

    def builderRemoved(self, name: str) -> None:
        pass

    def builderChangedState(self, name: str, state: str) -> None:
        pass

    def buildStarted(self, name: str, build: Any) -> Any:
        pass

    def isMailNeeded(self, build: Any, results: int | None) -> bool:
        # here is where we actually do something.
        builder = build.getBuilder()
        if self.builders is not None and builder.name not in self.builders:
            return False  # ignore this build
        if self.tags is not None and not builder.matchesAnyTag(self.tags):
            return False  # ignore this build

        prev = self.getPreviousBuild(build)
        if "change" in self.mode:  # noqa: SIM102  (0.8's shape, here and below)
            if prev and prev.getResults() != results:
                return True
        if "failing" in self.mode and results == FAILURE:
            return True
        if "passing" in self.mode and results == SUCCESS:
            return True
        if "problem" in self.mode and results == FAILURE:  # noqa: SIM102
            if prev and prev.getResults() != FAILURE:
                return True
        if "warnings" in self.mode and results == WARNINGS:
            return True
        if "exception" in self.mode and results == EXCEPTION:  # noqa: SIM103  (0.8's shape)
            return True

        return False

    def sendBuildSetSummary(self, buildset: dict[str, Any], builds: list[Any]) -> Any:
        # only include builds for which isMailNeeded returns true
        builds = [build for build in builds if self.isMailNeeded(build, build.getResults())]
        if builds:
            return self._track(
                lambda: self.buildMessage("(whole buildset)", builds, buildset["results"]),
                f"buildset {buildset.get('bsid')}",
            )
        return None

    def buildFinished(self, name: str, build: Any, results: int | None) -> Any:
        if not self.buildSetSummary and self.isMailNeeded(build, results):
            # buildMessage's Deferred fires once the mail is sent; 0.8 returned
            # it too.  Its failure is logged here.
            return self._track(
                lambda: self.buildMessage(name, [build], results),
                f"build {name} #{build.getNumber()}",
            )
        return None

    def _track(self, make: Callable[[], Any], what: str) -> defer.Deferred[Any]:
        """
        Run C{make} (a mail's making and sending), logging its failure, and
        keep its Deferred until it ends, for L{stopService}.
        """
        d = defer.maybeDeferred(make)

        def failed(failure: Failure) -> None:
            twlog.err(failure, f"MailNotifier: the mail about {what} was not sent")

        def ended(result: Any) -> Any:
            self._sending.discard(d)
            return result

        d.addErrback(failed)
        self._sending.add(d)
        d.addBoth(ended)
        return d

    def getCustomMesgData(
        self, mode: Any, name: str, build: Any, results: int | None, master_status: Any
    ) -> dict[str, Any]:
        return custom_mesg_data(mode, name, build, results, master_status)

    def patch_to_attachment(self, patch: Sequence[Any], index: int) -> Message:
        # patches don't come with an encoding.  If the patch is valid utf-8,
        # we'll attach it as MIMEText; otherwise, it gets attached as a binary
        # file.  This will suit the vast majority of cases, since utf8 is by
        # far the most common encoding.
        body = patch[1]
        text: str | None
        if isinstance(body, bytes):
            try:
                text = body.decode("utf8")
            except UnicodeDecodeError:
                text = None
        else:
            text = body

        a: Message
        if text:
            a = _mime_text(text)
        else:
            a = MIMENonMultipart("application", "octet-stream")
            a.set_payload(body if isinstance(body, bytes) else (body or "").encode(ENCODING))
            # base64 (0.8 sent the bytes bare): whole through as_string() too
            encoders.encode_base64(a)
        a.add_header("Content-Disposition", "attachment", filename="source patch " + str(index))
        return a

    def createEmail(
        self,
        msgdict: dict[str, Any],
        builderName: str,
        title: str,
        results: int | None,
        builds: Sequence[Any] | None = None,
        patches: Sequence[Any] | None = None,
        logs: Sequence[Any] | None = None,
    ) -> defer.Deferred[Message]:
        text = _text(msgdict["body"])
        type = msgdict["type"]
        if "subject" in msgdict:
            subject = _text(msgdict["subject"])
        else:
            subject = self.subject % {
                "result": _result_name(results),
                "projectName": title,
                "title": title,
                "builder": builderName,
            }

        if "\n" in subject:
            raise ValueError("Subject cannot contain newlines")

        if type not in ("plain", "html"):
            raise ValueError(f"'{type}' message type must be 'plain' or 'html'.")

        m: Message
        if patches or logs:
            m = MIMEMultipart()
            m.attach(_mime_text(text, type))
        else:
            m = Message()
            m.set_payload(text, ENCODING)
            m.set_type(f"text/{type}")

        m["Date"] = formatdate(localtime=True)
        m["Subject"] = subject
        m["From"] = _address(self.fromaddr)
        # m['To'] is added later

        if patches:
            for i, patch in enumerate(patches):
                a = self.patch_to_attachment(patch, i)
                m.attach(a)
        if logs:
            for log in logs:
                name = f"{log.getStep().getName()}.{log.getName()}"
                if self._shouldAttachLog(log.getName()) or self._shouldAttachLog(name):
                    # Use distinct filenames for the e-mail summary
                    if self.buildSetSummary:
                        builder = log.getStep().getBuild().getBuilder().getName()
                        filename = f"{builder}.{log.getStep().getName()}.{log.getName()}"
                    else:
                        filename = name

                    # guess at the encoding, and use replacement symbols
                    # for anything that's not in that encoding
                    log_text = log.getText()
                    if isinstance(log_text, bytes):
                        log_text = log_text.decode(LOG_ENCODING, "replace")
                    a = _mime_text(log_text)
                    a.add_header("Content-Disposition", "attachment", filename=filename)
                    m.attach(a)

        # Add any extra headers that were requested, doing WithProperties
        # interpolation if only one build was given
        if self.extraHeaders:
            if builds is not None and len(builds) == 1:
                d = builds[0].render(self.extraHeaders)
            else:
                d = defer.succeed(self.extraHeaders)

            def addExtraHeaders(extraHeaders: dict[Any, Any]) -> Message:
                for k, v in extraHeaders.items():
                    if k in m:
                        twlog.msg(
                            "Warning: Got header " + str(k) + " in self.extraHeaders "
                            "but it already exists in the Message - not adding it."
                        )
                    # A Header as it is (0.8 let it through), anything else as text.
                    m[str(k)] = v if isinstance(v, (str, Header)) else str(v)  # type: ignore[assignment]
                return m

            return d.addCallback(addExtraHeaders)

        return defer.succeed(m)

    def buildMessageDict(self, name: str, build: Any, results: int | None) -> dict[str, Any]:
        if self.customMesg:
            # the customMesg stuff can be *huge*, so we prefer not to load it
            attrs = self.getCustomMesgData(self.mode, name, build, results, self.master_status)
            text, type = self.customMesg(attrs)
            msgdict = {"body": text, "type": type}
        else:
            msgdict = self.messageFormatter(self.mode, name, build, results, self.master_status)

        return msgdict

    def buildMessage(self, name: str, builds: Sequence[Any], results: int | None) -> Any:
        patches = []
        logs = []
        msgdict: dict[str, Any] = {"body": ""}

        for build in builds:
            ss_list = build.getSourceStamps()
            if self.addPatch:
                for ss in ss_list:
                    if ss.patch:
                        patches.append(ss.patch)
            if self.addLogs:
                logs.extend(build.getLogs())

            tmp = self.buildMessageDict(
                name=build.getBuilder().name, build=build, results=build.results
            )
            msgdict["body"] += _text(tmp["body"])
            msgdict["body"] += "\n\n"
            msgdict["type"] = tmp["type"]
            if "subject" in tmp:
                msgdict["subject"] = tmp["subject"]

        d = self.createEmail(
            msgdict, name, self.master_status.getTitle(), results, builds, patches, logs
        )

        def getRecipients(m: Message) -> Any:
            # now, who is this message going to?
            if self.sendToInterestedUsers:
                dl = []
                for build in builds:
                    dl.append(self.useLookup(build) if self.lookup else self.useUsers(build))
                d = defer.gatherResults(dl, consumeErrors=True)
            else:
                d = defer.succeed([])
            d.addCallback(self._gotRecipients, m)
            # 0.8 dropped this Deferred: its mail's fate went unheard.
            return d

        return d.addCallback(getRecipients)

    def useLookup(self, build: Any) -> defer.Deferred[list[Any]]:
        dl = []
        for u in build.getResponsibleUsers() + build.getInterestedUsers():
            d = defer.maybeDeferred(self.lookup.getAddress, u)
            dl.append(d)
        return defer.gatherResults(dl, consumeErrors=True)

    def useUsers(self, build: Any) -> defer.Deferred[list[str]]:
        d: defer.Deferred[list[str]] = getBuildContacts(self.master, build, ["email"])
        return d

    def _shouldAttachLog(self, logname: str) -> bool:
        if isinstance(self.addLogs, bool):
            return self.addLogs
        return logname in self.addLogs

    def _gotRecipients(self, rlist: Iterable[Iterable[Any]], m: Message) -> Any:
        to_recipients: set[str] = set()
        cc_recipients: set[str] = set()

        for r in itertools.chain.from_iterable(rlist):
            if r is None:  # getAddress didn't like this address
                continue
            r = _text(r)

            # Git can give emails like 'User' <user@foo.com>@foo.com so check
            # for two @ and chop the last
            if r.count("@") > 1:
                r = r[: r.rindex("@")]

            if VALID_EMAIL.search(r):
                to_recipients.add(r)
            else:
                twlog.msg(f"INVALID EMAIL: {r!r}")

        # If we're sending to interested users put the extras in the
        # CC list so they can tell if they are also interested in the
        # change:
        if self.sendToInterestedUsers and to_recipients:
            cc_recipients.update(self.extraRecipients)
        else:
            to_recipients.update(self.extraRecipients)

        m["To"] = ", ".join(_address(r) for r in sorted(to_recipients))
        if cc_recipients:
            m["CC"] = ", ".join(_address(r) for r in sorted(cc_recipients))

        return self.sendMessage(m, list(to_recipients | cc_recipients))

    def sendmail(self, s: bytes | str, recipients: Sequence[str]) -> defer.Deferred[Any]:
        """
        Send C{s} (the message's bytes, or its C{as_string()}, which 0.8's
        C{sendMessage} gave and subclasses copied) to C{recipients} through
        the relay.
        """
        if isinstance(s, str):
            # (a binary attachment's bytes are surrogates in the text)
            s = s.encode(ENCODING, "surrogateescape")
        result: defer.Deferred[Any] = defer.Deferred()

        useAuth = bool(self.smtpUser and self.smtpPassword)

        # The envelope holds bare addresses; SMTP without SMTPUTF8 carries ASCII only.
        envelope = []
        for r in recipients:
            address = ascii_address(parseaddr(r)[1])
            if address:
                envelope.append(address)
            else:
                twlog.msg(
                    f"MailNotifier: cannot send to {r!r} over SMTP (its local part is not"
                    " ASCII, or its domain has no IDNA form); skipped"
                )
        if not envelope:
            twlog.msg("MailNotifier: no recipients; no mail sent")
            return defer.succeed(None)

        sender_factory = ESMTPSenderFactory(
            _bytes_or_none(self.smtpUser),
            _bytes_or_none(self.smtpPassword),
            parseaddr(self.fromaddr)[1] or self.fromaddr,
            envelope,
            BytesIO(s),
            result,
            timeout=self.timeout,
            requireTransportSecurity=self.useTls,
            requireAuthentication=useAuth,
            # STARTTLS checks the relay's certificate against this name.
            hostname=self.relayhost if self.useTls or useAuth else None,
            # Otherwise STARTTLS where the relay offers it, unchecked, as
            # 0.8's Twisted did (a relay that offers it and cannot do it
            # fails the mail, as it failed 0.8's).
            contextFactory=None if self.useTls or useAuth else _unchecked_tls(),
        )

        self.master.reactor.connectTCP(self.relayhost, self.smtpPort, sender_factory)

        return result

    def sendMessage(self, m: Message, recipients: Sequence[str]) -> defer.Deferred[Any]:
        s = m.as_bytes()
        twlog.msg(f"sending mail ({len(s)} bytes) to", recipients)
        return self.sendmail(s, recipients)
