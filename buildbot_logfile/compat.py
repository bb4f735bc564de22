"""
0.8's import paths for status plugins: C{buildbot.status.base},
C{buildbot.status.builder}, C{buildbot.status.results},
C{buildbot.status.logfile} and the 0.8 interface names in
C{buildbot.interfaces}.

L{install} adds only what is missing: whatever Buildbot itself defines under
a name is left as it is.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import buildbot
import buildbot.interfaces
from buildbot.process import results
from buildbot.util import ComparableMixin
from twisted.application import service
from zope.interface import Interface, classImplements, implementer

from buildbot_logfile import logfile, status

LOG_CHANNEL_STDOUT = logfile.STDOUT
LOG_CHANNEL_STDERR = logfile.STDERR
LOG_CHANNEL_HEADER = logfile.HEADER


class IStatusReceiver(Interface):
    """0.8: an object that status events are delivered to."""


class IStatusLog(Interface):
    """0.8: one step log."""


class ILogFile(Interface):
    """0.8: a log that lives in a spool file."""


class IStatusLogConsumer(Interface):
    """0.8: what a LogFileProducer writes chunks to."""


@implementer(IStatusReceiver)
class StatusReceiverBase:
    """0.8's receiver base: every status callback, doing nothing."""

    def requestSubmitted(self, request: Any) -> None:
        pass

    def requestCancelled(self, builder: Any, request: Any) -> None:
        pass

    def buildsetSubmitted(self, buildset: Any) -> None:
        pass

    def builderAdded(self, builderName: str, builder: Any) -> Any:
        pass

    def builderChangedState(self, builderName: str, state: str) -> None:
        pass

    def buildStarted(self, builderName: str, build: Any) -> Any:
        pass

    def buildETAUpdate(self, build: Any, ETA: float) -> None:
        pass

    def changeAdded(self, change: Any) -> None:
        pass

    def stepStarted(self, build: Any, step: Any) -> Any:
        pass

    def stepTextChanged(self, build: Any, step: Any, text: list[str]) -> None:
        pass

    def stepText2Changed(self, build: Any, step: Any, text2: list[str]) -> None:
        pass

    def stepETAUpdate(self, build: Any, step: Any, ETA: float, expectations: Any) -> None:
        pass

    def logStarted(self, build: Any, step: Any, log: Any) -> Any:
        pass

    def logChunk(self, build: Any, step: Any, log: Any, channel: int, text: str) -> None:
        pass

    def logFinished(self, build: Any, step: Any, log: Any) -> None:
        pass

    def stepFinished(self, build: Any, step: Any, results: Any) -> None:
        pass

    def buildFinished(self, builderName: str, build: Any, results: Any) -> None:
        pass

    def builderRemoved(self, builderName: str) -> None:
        pass

    def slaveConnected(self, slaveName: str) -> None:
        pass

    def slaveDisconnected(self, slaveName: str) -> None:
        pass

    def checkConfig(self, otherStatusReceivers: Any) -> None:
        pass


StatusReceiver = StatusReceiverBase


class StatusReceiverMultiService(StatusReceiverBase, service.MultiService, ComparableMixin):
    pass


class StatusReceiverService(StatusReceiverBase, service.Service, ComparableMixin):
    pass


def _module(name: str, doc: str, **names: Any) -> types.ModuleType:
    module = types.ModuleType(name, doc)
    module.__dict__.update(names)
    return module


def _result_names() -> dict[str, Any]:
    return {name: getattr(results, name) for name in (
        "SUCCESS", "WARNINGS", "FAILURE", "SKIPPED", "EXCEPTION", "RETRY", "CANCELLED",
        "Results", "worst_status",
    )}


def _add_module(name: str, module: types.ModuleType) -> types.ModuleType:
    """Register C{module} under C{name} unless Buildbot has one there."""
    existing = sys.modules.get(name)
    if existing is not None:
        for key, value in module.__dict__.items():
            if not key.startswith("__") and not hasattr(existing, key):
                setattr(existing, key, value)
        return existing
    try:
        __import__(name)
    except ImportError:
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)
        return module
    return _add_module(name, module)


def install() -> None:
    """Make 0.8's status import paths work; idempotent."""
    for name, value in {
        "IStatusReceiver": IStatusReceiver,
        "IStatusLog": IStatusLog,
        "ILogFile": ILogFile,
        "IStatusLogConsumer": IStatusLogConsumer,
        "LOG_CHANNEL_STDOUT": LOG_CHANNEL_STDOUT,
        "LOG_CHANNEL_STDERR": LOG_CHANNEL_STDERR,
        "LOG_CHANNEL_HEADER": LOG_CHANNEL_HEADER,
    }.items():
        if not hasattr(buildbot.interfaces, name):
            setattr(buildbot.interfaces, name, value)
    classImplements(logfile.LogFile, buildbot.interfaces.IStatusLog, buildbot.interfaces.ILogFile)

    _add_module("buildbot.status", _module("buildbot.status", "0.8 status layer (buildbot-logfile)"))
    _add_module("buildbot.status.base", _module(
        "buildbot.status.base", "0.8 status receiver bases",
        StatusReceiverBase=StatusReceiverBase,
        StatusReceiver=StatusReceiver,
        StatusReceiverMultiService=StatusReceiverMultiService,
        StatusReceiverService=StatusReceiverService,
    ))
    _add_module("buildbot.status.results", _module(
        "buildbot.status.results", "0.8 build results", **_result_names()
    ))
    _add_module("buildbot.status.builder", _module(
        "buildbot.status.builder", "0.8 builder status",
        BuilderStatus=status.BuilderStatus,
        BuildStatus=status.BuildStatus,
        BuildStepStatus=status.BuildStepStatus,
        **_result_names(),
    ))
    _add_module("buildbot.status.logfile", _module(
        "buildbot.status.logfile", "0.8 step logs",
        **{name: getattr(logfile, name) for name in (
            "STDOUT", "STDERR", "HEADER", "ChunkTypes", "LogFile", "HTMLLogFile",
            "LogFileProducer", "LogFileFormatError",
        )},
    ))
