"""
What the benchmarks measure with: this process's memory, the machine's
CPU time by kind, percentiles, bootstrap intervals, and a receiver that
follows every builder.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from buildbot_logfile.base import StatusReceiverMultiService

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss() -> int:
    """This process's resident memory, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def machine_seconds() -> dict[str, float]:
    """
    The machine's CPU seconds so far, by kind (/proc/stat's first line),
    C{steal} among them: what its host has taken from it, so that a run
    slowed by the host's other guests can be told from one slowed by what
    it measures.
    """
    kinds = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    with open("/proc/stat", encoding="ascii") as f:
        ticks = f.readline().split()[1 : len(kinds) + 1]
    return {kind: int(count) / CLOCK_TICKS for kind, count in zip(kinds, ticks, strict=True)}


def percentile(values: list[float], fraction: float) -> float:
    """The value below which C{fraction} of C{values} lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


_Sample = TypeVar("_Sample")


def bootstrap_interval(
    samples: Sequence[_Sample],
    statistic: Callable[[Sequence[_Sample]], float],
    confidence: float = 0.9,
    resamples: int = 2000,
) -> tuple[float, float]:
    """
    The percentile bootstrap's interval for C{statistic} of C{samples}: how
    far a figure of a few rounds could have landed elsewhere on a machine
    whose speed wanders.  Seeded, so that one run's figures can be
    recomputed from its rounds.
    """
    rng = random.Random(0)
    estimates = sorted(statistic([rng.choice(samples) for _ in samples]) for _ in range(resamples))
    tail = (1 - confidence) / 2
    return percentile(estimates, tail), percentile(estimates, 1 - tail)


class FollowingReceiver(StatusReceiverMultiService):
    """A 0.8 receiver subscribed to every builder as it attaches, as most plugins were."""

    def setServiceParent(self, parent: Any) -> Any:
        d = super().setServiceParent(parent)
        parent.getStatus().subscribe(self)
        return d

    def builderAdded(self, name: str, builder: Any) -> Any:
        return self
