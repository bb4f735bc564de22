"""
Buildbot 0.8's status layer on a Buildbot 4 master: L{LogFile} spool files,
L{LogFileProducer} streaming, 0.8 status receivers (L{LegacyStatus}), and
the old log pages.

Importing this package makes 0.8's import paths (C{buildbot.status.base}
and friends) work; see L{buildbot_logfile.compat}.
"""

from buildbot_logfile import compat
from buildbot_logfile.logfile import (
    HEADER,
    STDERR,
    STDOUT,
    ChunkTypes,
    HTMLLogFile,
    LogFile,
    LogFileFormatError,
    LogFileProducer,
)

compat.install()

from buildbot_logfile.bridge import LegacyStatus  # noqa: E402

__all__ = [
    "HEADER",
    "STDERR",
    "STDOUT",
    "ChunkTypes",
    "HTMLLogFile",
    "LegacyStatus",
    "LogFile",
    "LogFileFormatError",
    "LogFileProducer",
]
