"""
Buildbot 0.8's status objects: builders, builds and steps as status
receivers saw them, the source stamps and changes of builds, workers (0.8's
slaves), build requests and buildsets.

They answer synchronously, as in 0.8: each is filled from the data API
before a receiver sees it, and refilled as events arrive.  They also hold
the 0.8 subscription lists (C{watchers}) that events are delivered to.
"""

from buildbot_logfile._build_status import BuildStatus
from buildbot_logfile._builder_status import BuilderStatus
from buildbot_logfile._changes import LegacyChange, SourceStamp
from buildbot_logfile._requests import BuildRequestStatus, BuildSetStatus
from buildbot_logfile._step_status import BuildStepStatus
from buildbot_logfile._workers import SlaveStatus

__all__ = [
    "BuildRequestStatus",
    "BuildSetStatus",
    "BuildStatus",
    "BuildStepStatus",
    "BuilderStatus",
    "LegacyChange",
    "SlaveStatus",
    "SourceStamp",
]
