"""
The talking half of 0.8's C{buildbot.status.words}: a C{Contact} holds one
conversation with the bot (an IRC channel as a whole, or one user's private
messages), answers its commands and announces builds to it.

0.8.14's C{IRCContact} held all of it; C{Contact} is that without the IRC
wire (C{send}, C{act}, C{describeUser}), as 0.7 to 0.8.5 split it, for the
chat bots of other protocols that subclassed it (XMPP bots did).  The
messages are 0.8.14's, word for word.  What the bot asks of Buildbot 4
(builders, builds, forcing and stopping builds) goes through the 0.8 status
objects of L{buildbot_logfile.bridge.LegacyStatus} and L{Control}.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from buildbot import util
from buildbot.process.results import (
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
)
from twisted.internet import defer
from twisted.python import log
from twisted.python.failure import Failure
from zope.interface import implementer

from buildbot_logfile._changes import SourceStamp
from buildbot_logfile._words_commands import (
    Commands,
    ForceOptions,
    IrcBuildRequest,
    _later,
    _log_failure,
)
from buildbot_logfile._words_control import Control, UsageError
from buildbot_logfile.base import StatusReceiver
from buildbot_logfile.interfaces import IStatusReceiver

__all__ = [
    "Contact",
    "Control",
    "ForceOptions",
    "IRCContact",
    "IrcBuildRequest",
    "SourceStamp",
    "UsageError",
    "maybeColorize",
]

# 0.8.14's events, and (beyond it) Buildbot 0.9's problem, recovery, worse
# and better.
_EVENT = re.compile(
    "^(started|finished|success|failure|exception|warnings"
    "|problem|recovery|worse|better"
    "|(success|warnings|exception|failure)To(Failure|Success|Warnings|Exception))$"
)
# Buildbot's order of results from best to worst, for "worse" and "better".
_SEVERITY = (SKIPPED, SUCCESS, WARNINGS, FAILURE, EXCEPTION)

_IRC_COLORS = [
    "WHITE", "BLACK", "NAVY_BLUE", "GREEN", "RED", "BROWN", "PURPLE", "OLIVE", "YELLOW",
    "LIME_GREEN", "TEAL", "AQUA_LIGHT", "ROYAL_BLUE", "HOT_PINK", "DARK_GRAY", "LIGHT_GRAY",
]  # fmt: skip


def maybeColorize(text: str, color: str, useColors: bool) -> str:
    """C{text} in mIRC colour C{color} (a name of 0.8's list), if C{useColors}."""
    if useColors:
        return "%c%d%s%c" % (3, _IRC_COLORS.index(color), text, 3)
    return text


def valid_event(event: Any) -> bool:
    """Whether C{event} is an event a contact can be notified of."""
    return isinstance(event, str) and _EVENT.match(event) is not None


@implementer(IStatusReceiver)
class Contact(Commands, StatusReceiver):
    """I hold the state for a single user's interaction with the buildbot.

    There will be one instance of me for each user who interacts personally
    with the buildbot. There will be an additional instance for each
    'broadcast contact' (chat rooms, IRC channels as a whole).

    C{bot} is the chat bot (0.7 to 0.8.5 called it C{channel}, and so does
    this attribute); C{dest}, where replies go.  A chat protocol's
    subclass provides C{send}, C{act} and C{describeUser}.
    """

    def __init__(self, bot: Any, dest: str | None = None) -> None:
        self.bot = bot
        self.channel = bot
        self.master: Any = getattr(bot, "master", None)
        self.notify_events: dict[str, int] = {}
        self.subscribed = 0
        self.muted = False
        self.useRevisions = getattr(bot, "useRevisions", False)
        self.useColors = getattr(bot, "useColors", True)
        self.reported_builds: list[list[Any]] = []  # [when, buildername, buildnum]
        # when people send us public messages ("buildbot: command"),
        # self.dest is the name of the channel ("#twisted"). When they send
        # us private messages (/msg buildbot command), self.dest is their
        # username.
        self.dest = dest
        self.add_notification_events(getattr(bot, "notify_events", None) or ())

    # silliness

    silly = {
        "What happen ?": ["Somebody set up us the bomb."],
        "It's You !!": ["How are you gentlemen !!",
                        "All your base are belong to us.",
                        "You are on the way to destruction."],
        "What you say !!": ["You have no chance to survive make your time.",
                            "HA HA HA HA ...."],
    }  # fmt: skip

    def doSilly(self, message: str) -> None:
        response = self.silly[message]
        when = 0.5
        for r in response:
            _later(self, when, self.send, r)
            when += 2.5

    def reportBuild(self, builder: str, buildnum: int) -> bool:
        """Returns True if this build should be reported for this contact
        (eliminating duplicates), and also records the report for later"""
        for _w, b, n in self.reported_builds:
            if b == builder and n == buildnum:
                return False
        self.reported_builds.append([util.now(), builder, buildnum])

        # clean the reported builds
        horizon = util.now() - 60
        while self.reported_builds and self.reported_builds[0][0] < horizon:
            self.reported_builds.pop(0)

        # and return True, since this is a new one
        return True

    def validate_notification_event(self, event: str) -> None:
        if not valid_event(event):
            raise UsageError("try 'notify on|off <EVENT>'")

    def list_notified_events(self) -> None:
        # In the order they were turned on (0.8 listed Python 2's dict order).
        self.send("The following events are being notified: %r" % list(self.notify_events))

    def notify_for(self, *events: str) -> int:
        for event in events:
            if event in self.notify_events:
                return 1
        return 0

    def subscribe_to_build_events(self) -> None:
        self.bot.status.subscribe(self)
        self.subscribed = 1

    def unsubscribe_from_build_events(self) -> None:
        status = self.bot.status
        status.unsubscribe(self)
        # 0.8 stayed subscribed to each builder, and a later "notify on"
        # subscribed it again: each build start was then announced twice.
        for name in status.getBuilderNames():
            try:
                builder = status.getBuilder(name)
            except KeyError:
                continue
            unsubscribe = getattr(builder, "unsubscribe", None)
            if unsubscribe is not None:
                unsubscribe(self)
        self.subscribed = 0

    def add_notification_events(self, events: Iterable[str]) -> None:
        for event in events:
            self.validate_notification_event(event)
            self.notify_events[event] = 1

            if not self.subscribed:
                self.subscribe_to_build_events()

    def remove_notification_events(self, events: Iterable[str]) -> None:
        for event in events:
            self.validate_notification_event(event)
            del self.notify_events[event]

            if len(self.notify_events) == 0 and self.subscribed:
                self.unsubscribe_from_build_events()

    def remove_all_notification_events(self) -> None:
        self.notify_events = {}

        if self.subscribed:
            self.unsubscribe_from_build_events()

    def builderAdded(self, builderName: str, builder: Any) -> None:
        tags = self._tags()
        if tags is not None and not builder.matchesAnyTag(tags):
            return

        log.msg("[Contact] Builder %s added" % (builderName))
        builder.subscribe(self)

    def builderRemoved(self, builderName: str) -> None:
        log.msg("[Contact] Builder %s removed" % (builderName))

    def buildStarted(self, builderName: str, build: Any) -> None:
        builder = build.getBuilder()
        log.msg("[Contact] Builder %r with tags %r started" % (builder, builder.getTags()))

        # only notify about builders we are interested in

        tags = self._tags()
        if tags is not None and not builder.matchesAnyTag(tags):
            log.msg("Not notifying for a build with no matching tag")
            return

        if not self.notify_for("started"):
            return

        if self.useRevisions:
            r = "build containing revision(s) [%s] on %s started" % (
                build.getRevisions(),
                builder.getName(),
            )
        else:
            # Abbreviate long lists of changes to simply two
            # revisions, and the number of additional changes.
            changes = [str(c.revision) for c in build.getChanges()][:2]
            changes_str = ""

            if len(build.getChanges()) > 0:
                changes_str = "including [%s]" % ", ".join(changes)

                if len(build.getChanges()) > 2:
                    # Append number of truncated changes
                    changes_str += " and %d more" % (len(build.getChanges()) - 2)

            r = "build #%d of %s started" % (build.getNumber(), builder.getName())

            if changes_str:
                r += " (%s)" % changes_str

        self.send(r)

    # 0.8.14's, and (beyond it) a skipped build, which 0.8 would have
    # named "??".  A build Buildbot cancels comes as 0.8's stopped one, an
    # exception (legacy_results).
    results_descriptions = {
        SUCCESS: ("Success", "GREEN"),
        WARNINGS: ("Warnings", "YELLOW"),
        FAILURE: ("Failure", "RED"),
        SKIPPED: ("Skipped", "AQUA_LIGHT"),
        EXCEPTION: ("Exception", "PURPLE"),
        RETRY: ("Retry", "AQUA_LIGHT"),
    }

    def getResultsDescriptionAndColor(self, results: int | None) -> tuple[str, str]:
        return self.results_descriptions.get(results, ("??", "RED"))

    def buildFinished(self, builderName: str, build: Any, results: int | None) -> None:
        builder = build.getBuilder()

        tags = self._tags()
        if tags is not None and not builder.matchesAnyTag(tags):
            return

        if not self.notify_for_finished(build):
            return

        builder_name = builder.getName()
        buildnum = build.getNumber()
        buildrevs = build.getRevisions()

        description = self.getResultsDescriptionAndColor(build.getResults())
        if self.reportBuild(builder_name, buildnum):
            if self.useRevisions:
                r = "build containing revision(s) [%s] on %s is complete: %s" % (
                    buildrevs,
                    builder_name,
                    description[0],
                )
            else:
                r = "build #%d of %s is complete: %s" % (buildnum, builder_name, description[0])

            r += " [%s]" % maybeColorize(" ".join(build.getText()), description[1], self.useColors)
            buildurl = self.bot.status.getURLForThing(build)
            if buildurl:
                r += "  Build details are at %s" % buildurl

            if (
                getattr(self.bot, "showBlameList", False)
                and build.getResults() != SUCCESS
                and len(build.changes) != 0
            ):
                # Sorted: 0.8 gave them in the order of a Python 2 set.
                r += "  blamelist: " + ", ".join(sorted({str(c.who) for c in build.changes}))

            self.send(r)

    def notify_for_finished(self, build: Any) -> bool:
        results = build.getResults()

        if self.notify_for("finished"):
            return True

        name = self.getResultsDescriptionAndColor(results)[0]
        if self.notify_for(name.lower()):
            return True

        transitions = ("problem", "recovery", "worse", "better")
        if not (self.notify_for(*transitions) or any("To" in e for e in self.notify_events)):
            return False  # (0.8 read the previous build all the same)
        prevBuild = build.getPreviousBuild()
        if prevBuild:
            prevResult = prevBuild.getResults()
            previous = self.getResultsDescriptionAndColor(prevResult)[0]

            if self.notify_for(previous.lower() + "To" + name.capitalize()):
                return True

            # Beyond 0.8.14: Buildbot 0.9's events.
            if results in _SEVERITY and prevResult in _SEVERITY:
                if self.notify_for("worse") and _SEVERITY.index(results) > _SEVERITY.index(
                    prevResult
                ):
                    return True
                if self.notify_for("better") and _SEVERITY.index(results) < _SEVERITY.index(
                    prevResult
                ):
                    return True
            if (
                self.notify_for("problem")
                and prevResult in (SUCCESS, WARNINGS)
                and results in (FAILURE, EXCEPTION)
            ):
                return True
            if (
                self.notify_for("recovery")
                and prevResult in (FAILURE, EXCEPTION)
                and results in (SUCCESS, WARNINGS)
            ):
                return True

        return False

    def watchedBuildFinished(self, b: Any) -> None:
        # only notify about builders we are interested in
        builder = b.getBuilder()
        tags = self._tags()
        if tags is not None and not builder.matchesAnyTag(tags):
            return

        builder_name = builder.getName()
        buildnum = b.getNumber()
        buildrevs = b.getRevisions()

        description = self.getResultsDescriptionAndColor(b.getResults())
        if self.reportBuild(builder_name, buildnum):
            if self.useRevisions:
                r = "Hey! build %s containing revision(s) [%s] is complete: %s" % (
                    builder_name,
                    buildrevs,
                    description[0],
                )
            else:
                r = "Hey! build %s #%d is complete: %s" % (builder_name, buildnum, description[0])

            r += " [%s]" % maybeColorize(" ".join(b.getText()), description[1], self.useColors)
            self.send(r)
            buildurl = self.bot.status.getURLForThing(b)
            if buildurl:
                self.send("Build details are at %s" % buildurl)

    def describeUser(self, user: str) -> str:
        return "user <%s>" % user

    def _isMuted(self) -> bool:
        """The nine branch's name for L{muted}, which its XMPP bots used."""
        return self.muted

    # communication with the user

    def send(self, message: str) -> None:
        """Say C{message} to L{dest}: each chat protocol's subclass does it its way."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to send a message")

    def act(self, action: str) -> None:
        """Act C{action} (IRC's /me) to L{dest}: each chat protocol's subclass does it."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to act")

    def handleMessage(self, message: str, who: str) -> defer.Deferred[Any]:
        # a message has arrived from 'who'. For broadcast contacts (i.e. when
        # people do an irc 'buildbot: command'), this will be a string
        # describing the sender of the message in some useful-to-log way, and
        # a single Contact may see messages from a variety of users. For
        # unicast contacts (i.e. when people do an irc '/msg buildbot
        # command'), a single Contact will only ever see messages from a
        # single user.
        message = message.lstrip()
        if message in self.silly:
            self.doSilly(message)
            return defer.succeed(None)

        parts = message.split(" ", 1)
        if len(parts) == 1:
            parts = [*parts, ""]
        cmd, args = parts
        log.msg("irc command", cmd)

        meth = self.getCommandMethod(cmd) if cmd else None
        # (0.8 failed on an empty message here, and lost its connection.)
        if not meth and message and message[-1] == "!":
            self.send("What you say!")
            return defer.succeed(None)

        if meth:
            d = defer.maybeDeferred(meth, args.strip(), who)

            def usageError(f: Failure) -> None:
                f.trap(UsageError)
                self.send(str(f.value))

            def logErr(f: Failure) -> None:
                log.err(f)
                self.send("Something bad happened (see logs)")

            d.addErrback(usageError)
            d.addErrback(logErr)
            d.addErrback(_log_failure, "IRC: while answering")
            return d
        return defer.succeed(None)

    def handleAction(self, data: str, user: str) -> None:
        # this is sent when somebody performs an action that mentions the
        # buildbot (like '/me kicks buildbot'). 'user' is the name/nick/id of
        # the person who performed the action, so if their action provokes a
        # response, they can be named.  This is 100% silly.
        if not data.endswith("s " + self.bot.nickname):
            return
        words = data.split()
        verb = words[-2]
        response = "%s back" % verb if verb == "kicks" else "%s %s too" % (verb, user)
        self.act(response)

    # Beyond 0.8: what the bot asks of its contacts

    def detach(self) -> None:
        """
        The bot's connection ended: hear no more build events (0.8 left
        the contacts of every past connection subscribed for ever).
        """
        if self.subscribed:
            self.unsubscribe_from_build_events()


class IRCContact(Contact):
    """I hold the state for a single user's interaction with the buildbot.

    There will be one instance of me for each user who interacts personally
    with the buildbot. There will be an additional instance for each
    'broadcast contact' (chat rooms, IRC channels as a whole).
    """

    def describeUser(self, user: str) -> str:
        if self.dest and self.dest[0] == "#":
            return "IRC user <%s> on channel %s" % (user, self.dest)
        return "IRC user <%s> (privmsg)" % user

    def send(self, message: str) -> None:
        # Sent as UTF-8: 0.8 sent every other character than ASCII as "?".
        if not self.muted:
            self.bot.msgOrNotice(self.dest, message)

    def act(self, action: str) -> None:
        if not self.muted:
            self.bot.describe(self.dest, action)
