"""
Buildbot 0.8's status layer on a Buildbot 4 master: L{LogFile} spool files,
L{LogFileProducer} streaming, 0.8 status receivers, and the old log pages.
"""

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

__all__ = [
    "HEADER",
    "STDERR",
    "STDOUT",
    "ChunkTypes",
    "HTMLLogFile",
    "LogFile",
    "LogFileFormatError",
    "LogFileProducer",
]
