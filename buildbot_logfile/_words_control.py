"""
What 0.8's chat bot did to builds, on Buildbot 4: 0.8's C{IControl} as far
as C{buildbot.status.words} used it (C{getBuilder(name)},
C{submitBuildRequest}, C{getBuild(number).stopBuild(reason)}).

0.8 added a forced build's buildset itself, past every scheduler.  Here a
build is forced through the builder's C{ForceScheduler}, by the data API's
C{forceschedulers} control, as the web UI forces one: a builder that no
ForceScheduler may force cannot be forced from the chat either, and the
scheduler's own checks apply.  A build is stopped by the data API's
C{builds} control.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from twisted.internet import defer
from twisted.python import log
from zope.interface import implementer

from buildbot_logfile.interfaces import IBuildControl, IBuilderControl, IControl

__all__ = ["BuildControl", "BuilderControl", "Control", "UsageError", "control_of"]


class UsageError(ValueError):
    def __init__(self, string: Any = "Invalid usage", *more: Any) -> None:
        ValueError.__init__(self, string, *more)


# What a user may type for a ForceScheduler's BooleanParameter.
_BOOLEANS = {
    **dict.fromkeys(("true", "yes", "on", "1"), True),
    **dict.fromkeys(("false", "no", "off", "0"), False),
}


def _leaves(fields: Iterable[Any]) -> Iterator[Any]:
    """The parameters of a ForceScheduler's form, nested ones opened."""
    for field in fields:
        nested = getattr(field, "fields", None)
        if nested is not None:
            yield from _leaves(nested)
        else:
            yield field


def control_of(obj: Any) -> Control | None:
    """
    0.8's C{IControl(master)}: the control of Buildbot 4's master, through
    its C{LegacyStatus} (or of that service itself).  None for anything
    else; a master without the service is a C{TypeError} that says so.
    """
    from buildbot.master import BuildMaster

    from buildbot_logfile.bridge import LegacyStatus

    if isinstance(obj, LegacyStatus):
        return Control(obj)
    if not isinstance(obj, BuildMaster):
        return None
    for service in obj.service_manager.namedServices.values():
        if isinstance(service, LegacyStatus):
            return Control(service)
    raise TypeError("IControl(master) needs reporters.LegacyStatus in c['services']")


@implementer(IControl)
class Control:
    """
    0.8's C{IControl(master)} for the chat bots: the builders of the 0.8
    C{status} by name.
    """

    def __init__(self, status: Any) -> None:
        self.status = status

    @property
    def master(self) -> Any:
        return self.status.master

    def getBuilder(self, name: str) -> BuilderControl:
        """The builder C{name}; C{KeyError} for one the status does not know, as in 0.8."""
        return BuilderControl(self, self.status.getBuilder(name))


@implementer(IBuilderControl)
class BuilderControl:
    """0.8's C{IBuilderControl}: forces a build, finds a running one to stop."""

    def __init__(self, control: Control, builder: Any) -> None:
        self.control = control
        self.builder = builder

    @property
    def master(self) -> Any:
        return self.control.master

    def force_scheduler(self) -> Any:
        """The first ForceScheduler (by name) of this master that may force this builder."""
        from buildbot.schedulers.forcesched import ForceScheduler

        found = [
            s
            for s in self.master.allSchedulers()
            if isinstance(s, ForceScheduler) and self.builder.name in s.builderNames
        ]
        return min(found, key=lambda s: s.name) if found else None

    @defer.inlineCallbacks
    def submitBuildRequest(
        self,
        ss: Any,
        reason: str | None,
        props: Mapping[str, Any] | None = None,
        owner: str | None = None,
    ) -> Any:
        """
        Force a build of C{ss}'s branch and revision, with C{props}, by
        C{owner} for C{reason}: the Deferred fires with the build request's
        C{BuildRequestStatus}, or fails with a L{UsageError} that says why
        the scheduler refused.  The build's reason is the scheduler's
        C{reasonString} (by default "A build was forced by '<owner>':
        <reason>").
        """
        from buildbot.schedulers.forcesched import (
            BooleanParameter,
            CodebaseParameter,
            FixedParameter,
        )

        from buildbot_logfile._requests import BuildRequestStatus

        name = self.builder.name
        scheduler = self.force_scheduler()
        if scheduler is None:
            raise UsageError(f"sorry, no force scheduler may force builder '{name}'")
        args: dict[str, Any] = {"owner": owner or "buildbot.status.words", "builderNames": [name]}
        if reason:
            args[scheduler.reason.fullName] = reason
        codebases = [f for f in scheduler.forcedProperties if isinstance(f, CodebaseParameter)]
        for what in ("branch", "revision"):
            value = getattr(ss, what, None)
            if not value:
                continue
            fields = [f for cb in codebases[:1] for f in cb.fields if f.name == what]
            if not fields or isinstance(fields[0], FixedParameter):
                raise UsageError(
                    f"sorry, force scheduler '{scheduler.name}' does not take a {what}"
                )
            args[fields[0].fullName] = value
        declared = {
            f.fullName: f
            for f in _leaves(f for f in scheduler.forcedProperties if f not in codebases)
        }
        for pname, pvalue in (props or {}).items():
            field = declared.get(pname)
            if field is None:
                raise UsageError(
                    f"sorry, force scheduler '{scheduler.name}' has no property '{pname}'"
                )
            if isinstance(field, BooleanParameter):
                # The form's checkbox takes True or False, and any text as False.
                pvalue = _BOOLEANS.get(str(pvalue).lower())
                if pvalue is None:
                    raise UsageError(f"sorry, property '{pname}' is true or false")
            args[pname] = pvalue
        try:
            result = yield self.master.data.control(
                "force", args, ("forceschedulers", scheduler.name)
            )
        except Exception as e:
            # The scheduler's checks (buildbot.www.rest.BadJsonRpc2, with
            # the fields' errors).
            errors = getattr(e, "message", None)
            if isinstance(errors, dict):
                said = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
                raise UsageError(f"sorry, {said}") from None
            raise
        _bsid, brids = result
        brid = brids[self.builder.builderid]
        request = yield self.master.data.get(("buildrequests", brid))
        return BuildRequestStatus(self.control.status, request, self.builder)

    def getBuild(self, number: int) -> BuildControl | None:
        """The running build C{number}, to stop it."""
        for build in self.builder.getCurrentBuilds():
            if build.getNumber() == number:
                return BuildControl(self, build)
        return None


@implementer(IBuildControl)
class BuildControl:
    """0.8's C{IBuildControl}: stops a running build."""

    def __init__(self, builder: BuilderControl, build: Any) -> None:
        self.builder = builder
        self.build = build

    def stopBuild(self, reason: str = "<no reason given>") -> defer.Deferred[Any]:
        """
        Stop the build, wherever it runs; it ends cancelled, as the web
        UI's stop makes it (0.8 made it an exception).  A failure to ask
        is logged.
        """
        d: defer.Deferred[Any] = defer.maybeDeferred(
            self.builder.master.data.control,
            "stop",
            {"reason": reason},
            ("builds", self.build.buildid),
        )
        number = self.build.getNumber()
        d.addErrback(lambda f: log.err(f, f"IRC: while stopping build {number}"))
        return d
