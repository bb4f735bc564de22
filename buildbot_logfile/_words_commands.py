"""
The commands of 0.8's chat bot (C{buildbot.status.words}): what a
contact answers when it is asked ("bb: status", "/msg bb force build..."),
0.8.14's word for word, and the forcing of builds from the chat.

L{Commands} is a part of L{buildbot_logfile._words_contact.Contact}, kept
apart because it is half of it; 0.8 had both in one class, and plugins
only see C{Contact} and C{IRCContact}.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from buildbot import util, version
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python import log, usage
from twisted.python.failure import Failure

from buildbot_logfile._changes import SourceStamp
from buildbot_logfile._words_control import UsageError

__all__ = ["Commands", "ForceOptions", "IrcBuildRequest"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _usage(text: str | dict[Any, str]) -> Callable[[_F], _F]:
    """A command's C{usage}, which C{help} shows (0.8 set it after each command)."""

    def set_usage(command: _F) -> _F:
        command.usage = text  # type: ignore[attr-defined]
        return command

    return set_usage


class ForceOptions(usage.Options):
    optParameters = [
        ["builder", None, None, "which Builder to start"],
        ["branch", None, None, "which branch to build"],
        ["revision", None, None, "which revision to build"],
        ["reason", None, None, "the reason for starting the build"],
        ["props", None, None,
         "A set of properties made available in the build environment, "
         "format is --properties=prop1=value1,prop2=value2,.. "
         "option can be specified multiple times."],
    ]  # fmt: skip

    def parseArgs(self, *args: str) -> None:
        arguments = list(args)
        if len(arguments) > 0:
            if self["builder"] is not None:
                raise UsageError("--builder provided in two ways")
            self["builder"] = arguments.pop(0)
        if len(arguments) > 0:
            if self["reason"] is not None:
                raise UsageError("--reason provided in two ways")
            self["reason"] = " ".join(arguments)


class IrcBuildRequest:
    """
    A build forced from the chat: says when it starts (or that it is
    queued, if it has not started after L{queued_delay} seconds), and
    watches it to its end.
    """

    hasStarted = False
    timer: IDelayedCall | None = None
    # 0.8's five seconds; a class attribute, so that a test can shorten it.
    queued_delay: float = 5

    def __init__(self, parent: Any, useRevisions: bool = False, useColors: bool = True) -> None:
        self.parent = parent
        self.useRevisions = useRevisions
        self.useColors = useColors
        self.timer = _later(parent, self.queued_delay, self.soon)

    def soon(self) -> None:
        self.timer = None
        if not self.hasStarted:
            self.parent.send("The build has been queued, I'll give a shout when it starts")

    def started(self, s: Any) -> None:
        self.hasStarted = True
        if self.timer:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None
        eta = s.getETA()
        if self.useRevisions:
            response = "build containing revision(s) [%s] forced" % s.getRevisions()
        else:
            response = "build #%d forced" % s.getNumber()
        if eta is not None:
            response = "build forced [ETA %s]" % self.parent.convertTime(eta)
        self.parent.send(response)
        self.parent.send("I'll give a shout when the build finishes")
        _after_build(self.parent, s, self.parent.watchedBuildFinished)


def _log_failure(failure: Failure, why: str) -> None:
    log.err(failure, why)


def _later(contact: Any, delay: float, fn: Callable[..., Any], *args: Any) -> IDelayedCall:
    """
    Call C{fn} in C{delay} seconds, through the contact's bot where it can
    (a StatusBot forgets its calls when its connection ends), else through
    the reactor.
    """
    call_later = getattr(getattr(contact, "bot", None), "call_later", None)
    if call_later is not None:
        return cast(IDelayedCall, call_later(delay, fn, *args))
    from twisted.internet import reactor

    return cast(IReactorTime, reactor).callLater(delay, fn, *args)


def _after_build(contact: Any, build: Any, callback: Callable[[Any], Any]) -> None:
    """
    C{callback(build)} once C{build} finished.  The builder's watchers,
    the contacts among them, have heard C{buildFinished} by then, as in
    0.8, so a watched build is reported once, as the channel's
    notification if it has one.
    """
    d = build.waitUntilFinished()
    d.addCallback(callback)
    d.addErrback(_log_failure, "while watching a build")


class Commands:
    """
    A contact's commands: each C{command_X(args, who)} answers "X args"
    from C{who} (C{args} stripped), with C{send}, or raises L{UsageError}
    with the answer.
    """

    # What the contact (Contact, and a plugin's subclass of it) has.
    bot: Any
    master: Any
    dest: str | None
    muted: bool
    useRevisions: bool

    if TYPE_CHECKING:

        def send(self, message: str) -> None: ...
        def act(self, action: str) -> None: ...
        def describeUser(self, user: str) -> str: ...
        def watchedBuildFinished(self, b: Any) -> None: ...
        def list_notified_events(self) -> None: ...
        def add_notification_events(self, events: Iterable[str]) -> None: ...
        def remove_notification_events(self, events: Iterable[str]) -> None: ...
        def remove_all_notification_events(self) -> None: ...

    # Commands that exist for old plugins' handleMessage but that 0.8.14
    # neither listed nor answered as commands.
    hidden_commands = ("EXCITED",)

    def getBuilder(self, which: str) -> Any:
        try:
            b = self.bot.status.getBuilder(which)
        except KeyError:
            raise UsageError("no such builder '%s'" % which) from None
        return b

    def getControl(self, which: str) -> Any:
        if not self.bot.control:
            raise UsageError("builder control is not enabled")
        try:
            bc = self.bot.control.getBuilder(which)
        except KeyError:
            raise UsageError("no such builder '%s'" % which) from None
        return bc

    def _tags(self) -> list[str] | None:
        """The bot's tags (0.8.4 to 0.8.9 bots had categories)."""
        # As 0.8 kept them (tags or categories): no tags is every builder.
        return getattr(self.bot, "tags", None) or getattr(self.bot, "categories", None) or None

    def getAllBuilders(self) -> list[Any]:
        """
        @rtype: list of L{buildbot.process.builder.Builder}
        """
        names = sorted(self.bot.status.getBuilderNames(tags=self._tags()))
        return [self.bot.status.getBuilder(n) for n in names]

    def convertTime(self, seconds: float) -> str:
        if seconds < 60:
            return "%d seconds" % seconds
        minutes = int(seconds / 60)
        seconds = seconds - 60 * minutes
        if minutes < 60:
            return "%dm%02ds" % (minutes, seconds)
        hours = int(minutes / 60)
        minutes = minutes - 60 * hours
        return "%dh%02dm%02ds" % (hours, minutes, seconds)

    def splitArgs(self, args: str) -> list[str]:
        """Returns list of arguments parsed by shlex.split() or
        raise UsageError if failed"""
        try:
            return shlex.split(args)
        except ValueError as e:
            raise UsageError(e) from None

    def command_HELLO(self, args: str, who: str) -> None:
        self.send("yes?")

    def command_VERSION(self, args: str, who: str) -> None:
        self.send("buildbot-%s at your service" % version)

    @_usage("list builders - List configured builders")
    def command_LIST(self, args: str, who: str) -> None:
        arguments = self.splitArgs(args)
        if len(arguments) == 0:
            raise UsageError("try 'list builders'")
        if arguments[0] == "builders":
            builders = self.getAllBuilders()
            text = "Configured builders: "
            for b in builders:
                text += b.name
                state = b.getState()[0]
                if state == "offline":
                    text += "[offline]"
                text += " "
            self.send(text)  # with its last space, as 0.8 sent it

    @_usage("status [<which>] - List status of a builder (or all builders)")
    def command_STATUS(self, args: str, who: str) -> None:
        arguments = self.splitArgs(args)
        if len(arguments) == 0:
            which = "all"
        elif len(arguments) == 1:
            which = arguments[0]
        else:
            raise UsageError("try 'status <builder>'")
        if which == "all":
            builders = self.getAllBuilders()
            for b in builders:
                self.emit_status(b.name)
            return
        self.emit_status(which)

    @_usage(
        "notify on|off|list [<EVENT>] ... - Notify me about build events.  event should be "
        "one or more of: 'started', 'finished', 'failure', 'success', 'exception' or 'xToY' "
        "(where x and Y are one of success, warnings, failure, exception, but Y is capitalized)"
    )
    def command_NOTIFY(self, args: str, who: str) -> None:
        arguments = self.splitArgs(args)

        if not arguments:
            raise UsageError("try 'notify on|off|list <EVENT>'")
        action = arguments.pop(0)
        events: Sequence[str] = arguments

        if action == "on":
            if not events:
                events = ("started", "finished")
            self.add_notification_events(events)

            self.list_notified_events()

        elif action == "off":
            if events:
                self.remove_notification_events(events)
            else:
                self.remove_all_notification_events()

            self.list_notified_events()

        elif action == "list":
            self.list_notified_events()
            return

        else:
            raise UsageError("try 'notify on|off <EVENT>'")

    @_usage("watch <which> - announce the completion of an active build")
    def command_WATCH(self, args: str, who: str) -> None:
        arguments = self.splitArgs(args)
        if len(arguments) != 1:
            raise UsageError("try 'watch <builder>'")
        which = arguments[0]
        b = self.getBuilder(which)
        builds = b.getCurrentBuilds()
        if not builds:
            self.send("there are no builds currently running")
            return
        for build in builds:
            assert not build.isFinished()
            _after_build(self, build, self.watchedBuildFinished)
            if self.useRevisions:
                r = "watching build %s containing revision(s) [%s] until it finishes" % (
                    which,
                    build.getRevisions(),
                )
            else:
                r = "watching build %s #%d until it finishes" % (which, build.getNumber())
            eta = build.getETA()
            if eta is not None:
                r += " [%s]" % self.convertTime(eta)
            r += ".."
            self.send(r)

    @_usage(
        "force build [--branch=branch] [--revision=revision] "
        "[--props=prop1=val1,prop2=val2...] <which> <reason> - Force a build"
    )
    def command_FORCE(self, args: str, who: str) -> Any:
        errReply = (
            "try 'force build [--branch=BRANCH] [--revision=REVISION] "
            "[--props=PROP1=VAL1,PROP2=VAL2...]  <WHICH> <REASON>'"
        )
        arguments = self.splitArgs(args)
        if not arguments:
            raise UsageError(errReply)
        what = arguments.pop(0)
        if what != "build":
            raise UsageError(errReply)
        opts = ForceOptions()
        opts.parseOptions(arguments)

        which = opts["builder"]
        branch = opts["branch"]
        revision = opts["revision"]
        reason = opts["reason"]
        props = opts["props"]

        if which is None:
            raise UsageError("you must provide a Builder, " + errReply)

        # keep weird stuff out of the branch, revision, and properties args.
        validation = self.master.config.validation
        if branch and not validation["branch"].match(branch):
            log.msg("bad branch '%s'" % branch)
            self.send("sorry, bad branch '%s'" % branch)
            return None
        if revision and not validation["revision"].match(revision):
            log.msg("bad revision '%s'" % revision)
            self.send("sorry, bad revision '%s'" % revision)
            return None

        properties: dict[str, str] = {}
        if props:
            # split props into name:value dict
            pdict = {}
            for item in props.split(","):
                splitproperty = item.split("=", 1)
                if len(splitproperty) != 2:  # 0.8 failed with an IndexError
                    raise UsageError(errReply)
                pdict[splitproperty[0]] = splitproperty[1]

            # set properties
            for pname, pvalue in pdict.items():
                if not validation["property_name"].match(pname) or not validation[
                    "property_value"
                ].match(pvalue):
                    log.msg("bad property name='%s', value='%s'" % (pname, pvalue))
                    self.send("sorry, bad property name='%s', value='%s'" % (pname, pvalue))
                    return None
                properties[pname] = pvalue

        bc = self.getControl(which)

        ss = SourceStamp(branch=branch, revision=revision)
        d = defer.maybeDeferred(
            bc.submitBuildRequest, ss, reason, props=properties, owner=self.describeUser(who)
        )

        def subscribe(buildreq: Any) -> None:
            ireq = IrcBuildRequest(self, self.useRevisions)
            buildreq.subscribe(ireq.started)

        d.addCallback(subscribe)
        # A refusal is answered (see handleMessage); 0.8 only logged it.
        return d

    @_usage("stop build <which> <reason> - Stop a running build")
    def command_STOP(self, args: str, who: str) -> None:
        arguments = self.splitArgs(args)
        if len(arguments) < 3 or arguments[0] != "build":
            raise UsageError("try 'stop build WHICH <REASON>'")
        which = arguments[1]
        reason = arguments[2]

        buildercontrol = self.getControl(which)

        r = "stopped: by %s: %s" % (self.describeUser(who), reason)

        # find an in-progress build
        builderstatus = self.getBuilder(which)
        builds = builderstatus.getCurrentBuilds()
        if not builds:
            self.send("sorry, no build is currently running")
            return
        for build in builds:
            num = build.getNumber()
            revs = build.getRevisions()

            # obtain the BuildControl object
            buildcontrol = buildercontrol.getBuild(num)

            # make it stop
            buildcontrol.stopBuild(r)

            if self.useRevisions:
                response = "build containing revision(s) [%s] interrupted" % revs
            else:
                response = "build %d interrupted" % num
            self.send(response)

    def emit_status(self, which: str) -> None:
        b = self.getBuilder(which)
        text = "%s: " % which
        state, builds = b.getState()
        text += state
        if state == "idle":
            last = b.getLastFinishedBuild()
            if last:
                _start, finished = last.getTimes()
                text += ", last build %s ago: %s" % (
                    self.convertTime(int(util.now() - finished)),
                    " ".join(last.getText()),
                )
        if state == "building":
            t = []
            for build in builds:
                step = build.getCurrentStep()
                s = "(%s)" % " ".join(step.getText()) if step else "(no current step)"
                ETA = build.getETA()
                if ETA is not None:
                    s += " [ETA %s]" % self.convertTime(ETA)
                t.append(s)
            text += ", ".join(t)
        self.send(text)

    @_usage("last <which> - list last build status for builder <which>")
    def command_LAST(self, args: str, who: str) -> None:
        arguments = self.splitArgs(args)

        if len(arguments) == 0:
            which = "all"
        elif len(arguments) == 1:
            which = arguments[0]
        else:
            raise UsageError("try 'last <builder>'")

        def emit_last(which: str) -> None:
            last = self.getBuilder(which).getLastFinishedBuild()
            if not last:
                text = "(no builds run since last restart)"
            else:
                _start, finish = last.getTimes()
                text = "%s ago: " % (self.convertTime(int(util.now() - finish)))
                text += " ".join(last.getText())
            self.send("last build [%s]: %s" % (which, text))

        if which == "all":
            builders = self.getAllBuilders()
            for b in builders:
                emit_last(b.name)
            return
        emit_last(which)

    def build_commands(self) -> list[str]:
        """
        The commands, as C{commands} lists them: the contact's, and (beyond
        0.8.14) those a bot of 0.7's kind defines itself.
        """
        commands = set()
        for source in (self, self.bot):
            for k in dir(source):
                if k.startswith("command_") and k[8:] not in self.hidden_commands:
                    commands.add(k[8:].lower())
        return sorted(commands)

    # commands

    @_usage("mute - suppress all messages until a corresponding 'unmute' is issued")
    def command_MUTE(self, args: str, who: str) -> None:
        # The order of these is important! ;)
        self.send("Shutting up for now.")
        self.muted = True

    @_usage("unmute - disable a previous 'mute'")
    def command_UNMUTE(self, args: str, who: str) -> None:
        if self.muted:
            # The order of these is important! ;)
            self.muted = False
            self.send("I'm baaaaaaaaaaack!")
        else:
            self.send("You hadn't told me to be quiet, but it's the thought that counts, right?")

    @_usage(
        "help <command> [<arg> [<subarg> ...]] - Give help for <command> or one of it's arguments"
    )
    def command_HELP(self, args: str, who: str) -> None:
        arguments = self.splitArgs(args)
        if len(arguments) == 0:
            self.send(
                "Get help on what? (try 'help <foo>', 'help <foo> <bar>, "
                "or 'commands' for a command list)"
            )
            return
        command = arguments[0]
        meth = self.getCommandMethod(command)
        if not meth:
            raise UsageError("no such command '%s'" % command)
        usage = getattr(meth, "usage", None)
        if isinstance(usage, dict):
            k: Any
            if len(arguments) == 1:
                k = None  # command
            elif len(arguments) == 2:
                k = arguments[1]  # command arg
            else:
                k = tuple(arguments[1:])  # command arg subarg ...
            usage = usage.get(k, None)
        if usage:
            self.send("Usage: %s" % usage)
        else:
            self.send("No usage info for " + " ".join(["'%s'" % arg for arg in arguments]))

    @_usage("source - the source code for Buildbot")
    def command_SOURCE(self, args: str, who: str) -> None:
        self.send("My source can be found at https://github.com/buildbot/buildbot")

    @_usage("commands - List available commands")
    def command_COMMANDS(self, args: str, who: str) -> None:
        commands = self.build_commands()
        text = "buildbot commands: " + ", ".join(commands)
        self.send(text)

    def command_DESTROY(self, args: str, who: str) -> None:
        if self.bot.nickname not in args:
            self.act("readies phasers")

    def command_DANCE(self, args: str, who: str) -> None:
        _later(self, 1.0, self.send, "<(^.^<)")
        _later(self, 2.0, self.send, "<(^.^)>")
        _later(self, 3.0, self.send, "(>^.^)>")
        _later(self, 3.5, self.send, "(7^.^)7")
        _later(self, 5.0, self.send, "(>^.^<)")

    def command_EXCITED(self, args: str, who: str) -> None:
        # 0.7 to 0.8.5's command for "buildbot: destroy the sun!", which
        # plugins' own handleMessage still call; 0.8.14 says it itself.
        self.send("What you say!")

    @_usage({
        None: "shutdown check|start|stop|now - shutdown the buildbot master",
        "check": "shutdown check - check if the buildbot master is running or shutting down",
        "start": "shutdown start - start a clean shutdown",
        "stop": "shutdown cancel - stop the clean shutdown",
        "now": "shutdown now - shutdown immediately without waiting for the builders to finish",
    })  # fmt: skip
    def command_SHUTDOWN(self, args: str, who: str) -> None:
        if args not in ("check", "start", "stop", "now"):
            raise UsageError("try 'shutdown check|start|stop|now'")

        if not getattr(getattr(self.bot, "factory", None), "allowShutdown", False):
            raise UsageError("shutdown control is not enabled")

        botmaster = self.master.botmaster
        shuttingDown = botmaster.shuttingDown

        if args == "check":
            if shuttingDown:
                self.send("Status: buildbot is shutting down")
            else:
                self.send("Status: buildbot is running")
        elif args == "start":
            if shuttingDown:
                self.send("Already started")
            else:
                self.send("Starting clean shutdown")
                # It runs until the builds end, then stops the master.
                d = defer.maybeDeferred(botmaster.cleanShutdown)
                d.addErrback(_log_failure, "IRC: the clean shutdown failed")
        elif args == "stop":
            if not shuttingDown:
                self.send("Nothing to stop")
            else:
                self.send("Stopping clean shutdown")
                botmaster.cancelCleanShutdown()
        elif args == "now":
            self.send("Stopping buildbot")
            # As 'buildbot stop' does: the master's services stop, then the process ends.
            self.master.reactor.stop()

    # main dispatchers for incoming messages

    def getCommandMethod(self, command: str) -> Callable[..., Any] | None:
        """
        The method of C{command}; beyond 0.8.14, a bot's own C{command_X(user,
        reply, args)}, as 0.7's bots had them, where the contact has none.
        """
        name = command.upper()
        if name in self.hidden_commands:
            return None
        meth: Callable[..., Any] | None = getattr(self, "command_" + name, None)
        if meth is None:
            bot_command = getattr(self.bot, "command_" + name, None)
            if bot_command is not None:
                return _BotCommand(bot_command, self)
        return meth


class _BotCommand:
    """A 0.7 bot's C{command_X(user, reply, args)}, called as a contact's command."""

    def __init__(self, command: Callable[..., Any], contact: Commands) -> None:
        self.command = command
        self.contact = contact
        self.usage = getattr(command, "usage", None)

    def __call__(self, args: str, who: str) -> Any:
        return self.command(who, self.contact.dest, args)
