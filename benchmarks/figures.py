"""
What the benchmarks measure with: this process's memory, percentiles,
and a receiver that follows every builder.
"""

from __future__ import annotations

from typing import Any

from buildbot_logfile.base import StatusReceiverMultiService


def rss() -> int:
    """This process's resident memory, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], fraction: float) -> float:
    """The value below which C{fraction} of C{values} lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class FollowingReceiver(StatusReceiverMultiService):
    """A 0.8 receiver subscribed to every builder as it attaches, as most plugins were."""

    def setServiceParent(self, parent: Any) -> Any:
        d = super().setServiceParent(parent)
        parent.getStatus().subscribe(self)
        return d

    def builderAdded(self, name: str, builder: Any) -> Any:
        return self
