"""
LegacyStatus overhead on a real build, and appendLog -> logChunk latency.

One master per configuration, in this process: a build whose step writes
~20 MB of stdout runs with and without LegacyStatus (one receiver
subscribed to every log); the ratio of wall times is the overhead.  Every
appendLog is timed from its call, and from its return (its lines stored and
announced, where the bridge can start), to the logChunk that delivers its
last line.  Between the two lies the master's own queue of appends, timed
on both masters.

Targets: wall time <= 1.10x; latency p99 <= 100 ms.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, task

from benchmarks.figures import FollowingReceiver, percentile
from benchmarks.realmaster import master_config, python_step, run_build, start_master, stop_master
from buildbot_logfile import LegacyStatus

ROUNDS = 5
WRITE_20MB = (
    "import sys\nline = 'x' * 99 + '\\n'\nfor i in range(200000):\n    sys.stdout.write(line)\n"
)


class LatencyRecorder(FollowingReceiver):
    """Subscribed to every log; matches delivered lines to appendLog calls."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: dict[str, list[tuple[int, float, list[float]]]] = {}
        self.delivered: dict[str, int] = {}
        self.appended_lines: dict[str, int] = {}
        self.latencies: list[float] = []
        # from the moment appendLog returned, its lines stored and announced
        self.after_store: list[float] = []
        # how long the master's own appendLog took (its database writes)
        self.stored: list[float] = []
        self.finished: list[defer.Deferred[None]] = []

    buildStarted = stepStarted = logStarted = lambda self, *args: self

    def buildFinished(self, builderName: str, build: Any, results: Any) -> None:
        self.finished.pop(0).callback(None)

    def appended(self, key: str, total_lines: int) -> list[float]:
        """Note an appendLog call; the caller adds the time it returned to the list."""
        self.appended_lines[key] = total_lines
        returned: list[float] = []
        self.pending.setdefault(key, []).append((total_lines, time.perf_counter(), returned))
        return returned

    def logChunk(self, build: Any, step: Any, log: Any, channel: int, text: str) -> None:
        now = time.perf_counter()
        key = f"{build.getNumber()}/{step.getName()}/{log.getName()}"
        total = self.delivered[key] = self.delivered.get(key, 0) + text.count("\n")
        waiting = self.pending.get(key, [])
        while waiting and waiting[0][0] <= total:
            _, called, returned = waiting.pop(0)
            self.latencies.append(now - called)
            # Delivered before appendLog's own caller heard back: no wait.
            self.after_store.append(now - returned[0] if returned else 0.0)


def instrument(master: Any, recorder: LatencyRecorder) -> None:
    """Time each appendLog call from the moment the master makes it."""
    updates = master.data.updates
    original = updates.appendLog
    totals: dict[int, int] = {}
    names: dict[int, str] = {}

    @defer.inlineCallbacks
    def appendLog(logid: int, content: str) -> Any:
        if logid not in names:
            log = yield master.data.get(("logs", logid))
            step = yield master.data.get(("steps", log["stepid"]))
            build = yield master.data.get(("builds", step["buildid"]))
            names[logid] = f"{build['number']}/{step['name']}/{log['name']}"
        totals[logid] = totals.get(logid, 0) + content.count("\n")
        started = time.perf_counter()
        returned = recorder.appended(names[logid], totals[logid])
        result = yield original(logid, content)
        returned.append(time.perf_counter())
        recorder.stored.append(returned[0] - started)
        return result

    updates.appendLog = appendLog


async def start(reactor: Any, with_bridge: bool) -> tuple[Any, LatencyRecorder]:
    recorder = LatencyRecorder()
    services = [LegacyStatus(receivers=[recorder])] if with_bridge else []
    master = await start_master(
        reactor, master_config({"big": [python_step("write", WRITE_20MB)]}, services)
    )
    # Without LegacyStatus the recorder only times the master's own appendLog.
    instrument(master, recorder)
    return master, recorder


async def timed_build(master: Any, recorder: LatencyRecorder | None) -> float:
    delivered: defer.Deferred[None] = defer.Deferred()
    if recorder is not None:
        recorder.finished.append(delivered)
    start = time.perf_counter()
    await run_build(master, "big")
    if recorder is not None:
        await delivered
    return time.perf_counter() - start


async def main(reactor: Any) -> None:
    # Both masters run side by side and take turns, so that drift in the
    # machine's speed falls on both alike; the figure is the median of the
    # per-round ratios.
    plain, plain_recorder = await start(reactor, False)
    bridged, recorder = await start(reactor, True)
    ratios, without, with_ = [], [], []
    try:
        for _ in range(ROUNDS):
            without.append(await timed_build(plain, None))
            with_.append(await timed_build(bridged, recorder))
            ratios.append(with_[-1] / without[-1])
    finally:
        await stop_master(plain)
        await stop_master(bridged)
    latencies = recorder.latencies
    short = {
        key: (recorder.delivered.get(key, 0), lines)
        for key, lines in recorder.appended_lines.items()
        if recorder.delivered.get(key, 0) != lines
    }
    print(f"bench_bridge: build writing 20 MB of stdout, {ROUNDS} rounds, masters taking turns")
    print(f"  lines delivered = lines appended, every log: {short or 'yes'}")
    print(
        f"  without LegacyStatus {statistics.median(without):.2f} s"
        f"   with {statistics.median(with_):.2f} s"
        f"   ratio {statistics.median(ratios):.2f}x  (median of rounds; target <= 1.10x)"
    )
    print(
        f"  appendLog called -> logChunk over {len(latencies)} appends: "
        f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms"
        f"   p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
        f"  (target p99 <= 100 ms)"
    )
    stored = recorder.stored
    print(
        f"    the master's own appendLog (queued behind earlier appends, then stored): "
        f"p50 {percentile(stored, 0.5) * 1000:.1f} ms"
        f"   p99 {percentile(stored, 0.99) * 1000:.1f} ms"
    )
    stored = plain_recorder.stored
    print(
        f"    the same without LegacyStatus: "
        f"p50 {percentile(stored, 0.5) * 1000:.1f} ms"
        f"   p99 {percentile(stored, 0.99) * 1000:.1f} ms"
    )
    after = recorder.after_store
    print(
        f"    appendLog returned -> logChunk (the bridge's part): "
        f"p50 {percentile(after, 0.5) * 1000:.1f} ms   p99 {percentile(after, 0.99) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
