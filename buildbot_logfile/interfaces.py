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
