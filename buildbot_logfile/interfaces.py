"""
0.8's interface names that status plugins import from
C{buildbot.interfaces}; L{buildbot_logfile._shims} makes them importable
from there where Buildbot defines nothing under the name.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Interface
from zope.interface.interface import adapter_hooks

LOG_CHANNEL_STDOUT = 0
LOG_CHANNEL_STDERR = 1
LOG_CHANNEL_HEADER = 2


class IStatusReceiver(Interface):
    """An object that status events are delivered to."""


class IStatusLog(Interface):
    """One step log."""


class ILogFile(Interface):
    """A log that lives in a spool file."""


class IStatusLogConsumer(Interface):
    """What a LogFileProducer writes chunks to."""


# The status objects' interfaces, which 0.8 code tests things against
# (C{IBuildStatus.providedBy(thing)}, as 0.8's own getURLForThing did).


class IStatus(Interface):
    """The status of the whole buildbot (C{LegacyStatus})."""


class IBuildSetStatus(Interface):
    """A buildset."""


class IBuildRequestStatus(Interface):
    """A build request."""


class ISlaveStatus(Interface):
    """A worker."""


class ISchedulerStatus(Interface):
    """A scheduler (no status object provides it: Buildbot 4 has no such status)."""


class IEventSource(Interface):
    """Something with point events (C{getEvent}): a builder."""


class IBuilderStatus(Interface):
    """A builder."""


class IBuildStatus(Interface):
    """A build."""


class IBuildStepStatus(Interface):
    """A step of a build."""


class IStatusEvent(Interface):
    """A builder's point event."""


class ITestResult(Interface):
    """A test result (no status object provides it: 0.8's were never stored here)."""


# What 0.8's status plugins (chat bots) used to force and stop builds:
# C{IControl(master)}, as 0.8 adapted its C{BuildMaster}.


class IControl(Interface):
    """The control of the whole buildbot: C{getBuilder(name)} (see L{_words_control})."""


class IBuilderControl(Interface):
    """A builder's control: C{submitBuildRequest}, C{getBuild(number)}."""


class IBuildControl(Interface):
    """A running build's control: C{stopBuild(reason)}."""


def _adapt_to_control(interface: Any, obj: Any) -> Any:
    """
    C{IControl(master)} for Buildbot 4's master (or the 0.8 C{Status}):
    Buildbot 4 has no such interface to register an adapter with, and an
    adapter registered for the master's class would import it whenever
    this module is.  Every other interface is left to its registry.
    """
    if interface is not IControl:
        return None
    from buildbot_logfile._words_control import control_of

    return control_of(obj)


adapter_hooks.append(_adapt_to_control)
