"""
Buildbot 0.8's status layer on a Buildbot 4 master: L{LogFile} spool
files, L{LogFileProducer} streaming, 0.8 status receivers fed by
L{LegacyStatus}, and the old log pages.

Importing this package makes 0.8's import paths (C{buildbot.status.base}
and friends) importable, lazily: see L{buildbot_logfile._shims}.  Its names
below are loaded when first used, so that Buildbot's import of the
C{legacy_logs} www plugin on every master costs next to nothing.

Naming: 0.8's API keeps 0.8's names exactly, camelCase included
(C{getChunks}, C{logChunk}, C{subscribeConsumer}); everything new is
snake_case (C{text_bytes}, C{open_finished}); module internals, and
modules that are not part of the public surface, start with an underscore.

The public modules: L{logfile} (0.8's C{LogFile}, C{HTMLLogFile},
C{LogFileProducer}), L{status} (builder, build and step status),
L{base} and L{interfaces} (0.8's receiver bases and interface names),
L{bridge} (L{LegacyStatus}), L{web} (the pages) and L{archiver} (an
example 0.8 receiver).  The C{legacy_logs} www plugin lives in the
separate top-level package C{buildbot_legacy_logs}, so that Buildbot's
import of it on every master imports nothing of this package.
"""

from __future__ import annotations

import importlib
from typing import Any

from buildbot_logfile import _shims

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

_shims.install()


def __getattr__(name: str) -> Any:
    if name == "LegacyStatus":
        return importlib.import_module("buildbot_logfile.bridge").LegacyStatus
    if name in __all__:
        return getattr(importlib.import_module("buildbot_logfile.logfile"), name)
    raise AttributeError(f"module 'buildbot_logfile' has no attribute {name!r}")
