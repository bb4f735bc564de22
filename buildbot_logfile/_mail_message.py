"""
The parts of 0.8's C{buildbot.status.mail} around C{MailNotifier} (see
L{buildbot_logfile._mail}): the default text (C{defaultMessage} and its
helpers), the data a C{customMesg} was given, C{Domain} and the users
database's contacts, how addresses are checked and written in headers, and
the MIME parts: 0.8.14's code, in Python 3.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Sequence
from email import charset
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formataddr, parseaddr
from typing import Any

from buildbot import config, interfaces, util
from buildbot.process.results import EXCEPTION, FAILURE, SUCCESS, WARNINGS, Results
from buildbot.process.users import users
from twisted.internet import defer
from twisted.python import log as twlog
from zope.interface import implementer

# this incantation teaches email to output utf-8 using 7- or 8-bit encoding
# (Buildbot's own reporters.mail says the same).
charset.add_charset("utf-8", charset.SHORTEST, None, "utf-8")

# 0.8 said 'utf8', which Python 2's email package took for UTF-8; Python 3's
# would label the mail "utf8" and base64 it.
ENCODING = "utf-8"
LOG_ENCODING = "utf-8"

# Email parsing can be complex. We try to take a very liberal
# approach. The local part of an email address matches ANY non
# whitespace character. Rather allow a malformed email address than
# croaking on a valid (the matching of domains should be correct
# though; requiring the domain to not be a top level domain). With
# these regular expressions, we can match the following:
#
#    full.name@example.net
#    Full Name <full.name@example.net>
#    <full.name@example.net>
_VALID_EMAIL_ADDR = r"(?:\S+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+\.?)"
VALID_EMAIL = re.compile(r"^(?:%s|(.+\s+)?<%s>\s*)$" % ((_VALID_EMAIL_ADDR,) * 2))
VALID_EMAIL_ADDR = re.compile(_VALID_EMAIL_ADDR)


def _defaultMessageIntro(mode: Iterable[str], results: int | None, build: Any) -> str:
    prev = build.getPreviousBuild()

    if results == FAILURE:
        if ("change" in mode and prev and prev.getResults() != results) or (
            "problem" in mode and prev and prev.getResults() != FAILURE
        ):
            text = "The Buildbot has detected a new failure"
        else:
            text = "The Buildbot has detected a failed build"
    elif results == WARNINGS:
        text = "The Buildbot has detected a problem in the build"
    elif results == SUCCESS:
        if "change" in mode and prev and prev.getResults() != results:
            text = "The Buildbot has detected a restored build"
        else:
            text = "The Buildbot has detected a passing build"
    elif results == EXCEPTION:
        text = "The Buildbot has detected a build exception"
    else:
        # 0.8 raised here (a "change" mail about a skipped or retried build).
        text = "The Buildbot has detected a %s build" % _result_name(results)

    return text


def _result_name(results: int | None) -> str:
    if isinstance(results, int) and 0 <= results < len(Results):
        return str(Results[results])
    return str(results)


def _defaultMessageProjects(source_stamps: Iterable[Any], master_status: Any) -> str:
    projects: list[str] = []

    for ss in source_stamps:
        if ss.project and ss.project not in projects:
            projects.append(ss.project)

    if not projects:
        projects = [master_status.getTitle()]

    return ", ".join(projects)


def _defaultMessageURLs(master_status: Any, build: Any) -> str:
    text = ""

    # add build URL if available
    url = master_status.getURLForThing(build)
    if url:
        text += " Full details are available at:\n    %s\n" % url

    text += "\n"

    # add buildbot main URL if available
    url = master_status.getBuildbotURL()
    if url:
        text += "Buildbot URL: %s\n\n" % urllib.parse.quote(url, "/:")

    return text


def _defaultMessageSourceStamps(source_stamps: Iterable[Any]) -> str:
    text = ""

    for ss in source_stamps:
        source = ""

        if ss.branch:
            source += "[branch %s] " % ss.branch

        if ss.revision:
            source += str(ss.revision)
        else:
            source += "HEAD"

        if ss.patch:
            source += " (plus patch)"

        discriminator = ""
        if ss.codebase:
            discriminator = " '%s'" % ss.codebase

        text += "Build Source Stamp%s: %s\n" % (discriminator, source)

    return text


def _defaultMessageSummary(build: Any, results: int | None) -> str:
    t = build.getText()
    t = ": " + " ".join(t) if t else ""

    if results == SUCCESS:
        text = "Build succeeded!\n"
    elif results == WARNINGS:
        text = "Build Had Warnings%s\n" % t
    else:
        text = "BUILD FAILED%s\n" % t

    return text


def defaultMessage(
    mode: Iterable[str], name: str, build: Any, results: int | None, master_status: Any
) -> dict[str, str]:
    """Generate a buildbot mail message and return a tuple of message text
    and type."""
    ss_list = build.getSourceStamps()

    text = _defaultMessageIntro(mode, results, build)
    text += " on builder %s while building %s." % (
        name,
        _defaultMessageProjects(ss_list, master_status),
    )

    text += _defaultMessageURLs(master_status, build)

    text += "Buildslave for this Build: %s\n\n" % build.getSlavename()
    text += "Build Reason: %s\n" % build.getReason()
    text += _defaultMessageSourceStamps(ss_list)
    text += "Blamelist: %s\n" % ",".join(build.getResponsibleUsers())
    text += "\n"

    text += _defaultMessageSummary(build, results)
    text += "\n"
    text += "Sincerely,\n"
    text += " -The Buildbot\n"
    text += "\n"

    return {"body": text, "type": "plain"}


def defaultGetPreviousBuild(current_build: Any) -> Any:
    return current_build.getPreviousBuild()


def custom_mesg_data(
    mode: Any, name: str, build: Any, results: int | None, master_status: Any
) -> dict[str, Any]:
    """0.8's C{MailNotifier.getCustomMesgData}: what a C{customMesg} was given."""
    #
    # logs is a list of tuples that contain the log
    # name, log url, and the log contents as a list of strings.
    #
    logs = []
    for logf in build.getLogs():
        logStep = logf.getStep()
        stepName = logStep.getName()
        logStatus, _ = logStep.getResults()
        logName = logf.getName()
        logs.append(
            (
                f"{stepName}.{logName}",
                # 0.8 appended the log's path to the build's URL, which
                # Buildbot 4's UI does not serve: the log's own URL.
                master_status.getURLForThing(logf),
                logf.getText().splitlines(),
                logStatus,
            )
        )

    attrs: dict[str, Any] = {
        "builderName": name,
        "title": master_status.getTitle(),
        "mode": mode,
        "result": Results[results],
        "buildURL": master_status.getURLForThing(build),
        "buildbotURL": master_status.getBuildbotURL(),
        "buildText": build.getText(),
        "buildProperties": build.getProperties(),
        "slavename": build.getSlavename(),
        "reason": build.getReason().replace("\n", ""),
        "responsibleUsers": build.getResponsibleUsers(),
        "branch": "",
        "revision": "",
        "patch": "",
        "patch_info": "",
        "changes": [],
        "logs": logs,
    }

    ss_list = build.getSourceStamps()

    if ss_list:
        if len(ss_list) == 1:
            ss = ss_list[0]
            if ss:
                attrs["branch"] = ss.branch
                attrs["revision"] = ss.revision
                attrs["patch"] = ss.patch
                attrs["patch_info"] = ss.patch_info
                attrs["changes"] = list(ss.changes)
        else:
            for key in ["branch", "revision", "patch", "patch_info", "changes"]:
                attrs[key] = {}
            for ss in ss_list:
                attrs["branch"][ss.codebase] = ss.branch
                attrs["revision"][ss.codebase] = ss.revision
                attrs["patch"][ss.codebase] = ss.patch
                attrs["patch_info"][ss.codebase] = ss.patch_info
                attrs["changes"][ss.codebase] = list(ss.changes)

    return attrs


@implementer(interfaces.IEmailLookup)
class Domain(util.ComparableMixin):
    compare_attrs = ["domain"]  # a list, as 0.8's was

    def __init__(self, domain: str) -> None:
        if not isinstance(domain, str) or "@" in domain:
            config.error(f"Domain: {domain!r} must be a domain name, without '@'")
        self.domain = domain

    def getAddress(self, name: str) -> str:
        """If name is already an email address, pass it through."""
        if "@" in name:
            return name
        return name + "@" + self.domain


def _contact(user: Any, contact_types: Sequence[str], who: Any) -> str | None:
    """0.8's C{_extractContact}, for Buildbot 4's users (a C{UserModel}, or None)."""
    attributes = getattr(user, "attributes", user) or {}
    for contact_type in contact_types:
        contact = attributes.get(contact_type)
        if contact:
            return str(contact)
    twlog.msg(f"Unable to find any of {list(contact_types)!r} for uid: {who!r}")
    return None


@defer.inlineCallbacks
def getBuildContacts(master: Any, build: Any, contact_types: Sequence[str]) -> Any:
    """
    0.8's C{buildbot.process.users.users.getBuildContacts}, on Buildbot 4's
    users: the contacts of the users of the build's changes, then of its
    interested users, looked up by username.
    """
    contacts: list[str] = []
    for ss in build.getSourceStamps():
        for change in ss.changes:
            uids = yield master.db.changes.getChangeUids(change.number)
            for uid in uids:
                contact = yield users.getUserContact(master, list(contact_types), uid)
                if contact is not None:
                    contacts.append(contact)
    for owner in build.getInterestedUsers():
        user = yield master.db.users.getUserByUsername(owner)
        contact = _contact(user, contact_types, owner)
        if contact is not None:
            contacts.append(contact)
    return contacts


def _text(value: Any) -> str:
    """Text from what a Python 2 formatter may still give: UTF-8 bytes."""
    if isinstance(value, bytes):
        return value.decode(ENCODING, "replace")
    return str(value)


def ascii_address(address: str) -> str | None:
    """
    A bare address as mail without SMTPUTF8 carries it: as it is when
    ASCII; with a domain that is not, that domain's IDNA form
    (C{bücher.example} is C{xn--bcher-kva.example}); None when its local
    part is not ASCII, which only SMTPUTF8 carries, or its domain has no
    IDNA form.
    """
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii():
        return None
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return None


def _address(addr: str) -> str:
    """
    An address for a header: as it is when ASCII (as 0.8 wrote it), with a
    non-ASCII name encoded on its own, so the address stays readable, and
    a non-ASCII domain in its IDNA form (see L{ascii_address}).
    """
    if addr.isascii():
        return addr
    name, address = parseaddr(addr)
    sendable = ascii_address(address)
    if sendable is None:
        return addr
    if not name:
        return sendable
    if name.isascii():
        return formataddr((name, sendable))
    return f"{Header(name, ENCODING).encode()} <{sendable}>"


def _mime_text(text: str, subtype: str = "plain") -> MIMEText:
    """
    C{MIMEText(text, subtype, ENCODING)} with its headers in the order
    Python 2's email wrote them in 0.8's mails: MIME-Version, Content-Type,
    Content-Transfer-Encoding.
    """
    part = MIMEText(text, subtype, ENCODING)
    content_type, encoding = part["Content-Type"], part["Content-Transfer-Encoding"]
    del part["Content-Type"], part["Content-Transfer-Encoding"]
    part["Content-Type"] = content_type
    part["Content-Transfer-Encoding"] = encoding
    return part


def _bytes_or_none(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return value.encode("utf-8")
