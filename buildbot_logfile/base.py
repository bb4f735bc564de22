"""
0.8's status receiver bases (0.8's C{buildbot.status.base}): every status
callback, doing nothing, for plugins to override what they need.
"""

from __future__ import annotations

from typing import Any

from buildbot.util import ComparableMixin
from twisted.application import service
from zope.interface import implementer

from buildbot_logfile.interfaces import IStatusReceiver


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
    """A receiver that is a service with children, as most 0.8 plugins were."""

    # A list, as 0.8's ComparableMixin had it: 0.8 plugins extend it as
    # StatusReceiverMultiService.compare_attrs + [...].
    compare_attrs: list[str] = []


class StatusReceiverService(StatusReceiverBase, service.Service, ComparableMixin):
    """A receiver that is a service."""

    compare_attrs: list[str] = []  # a list, as above
