"""
0.8's interface names that status plugins import from
C{buildbot.interfaces}; L{buildbot_logfile._shims} makes them importable
from there where Buildbot defines nothing under the name.
"""

from __future__ import annotations

from zope.interface import Interface

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
