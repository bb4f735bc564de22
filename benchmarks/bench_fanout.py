"""
One master, 1,000 clients tailing one live log's text page, and 100 status
receivers following the same log down to logChunk.

The master runs in this process (as in bench_web); the clients run in
CLIENT_PROCESSES processes of their own (fanout_client.py).  The log holds
PREFILL_MB before the first client comes, so each one catches up from the
spool before it follows the log live; clients arrive one after the other
over ARRIVAL_SECONDS (a thousand readers do not open a page in the same
millisecond, and a burst would measure the listen queue), while the log
grows by TICK_LINES lines every 1/TICKS_PER_SECOND s.  Once all are
following, the log goes on for LIVE_SECONDS and finishes.

Each line starts with its tick's number; the time each appendLog returned
(its lines stored in the database) is kept per tick, and each client notes
when a tick's lines reached it.  Figures:

 - every client and every receiver got every byte (size and SHA-256);
 - time to first byte, p50/p99, from each client's connection attempt;
 - delay from appendLog's return to the client, p50/p99, over the ticks
   appended once the client had its first byte;
 - the rate at which the log grew: each appendLog waits for the one
   before, as a master's appends to one log do, so a master whose
   appendLog lags behind the ticks gets fewer of them;
 - the master's RSS growth from before the first client to its peak;
 - the CPU time the machine's host took from it (steal) from the first
   client to the log's end: the targets are times, which a busy host
   lengthens whatever the master does.

The anchor of the delay is the same master's own appendLog time in the
same run (the database write that every chunk waits for anyway).

It runs twice, each time in a process of its own: as installed, and with
the heap frozen before the master starts (C{gc.freeze()}), as the README
suggests to an operator whose master serves many live clients, in the
last line of C{buildbot.tac}.  Python's full collections scan the whole
heap, and on a master's heap they stall the reactor long enough to set
the time to first byte's p99: the second run shows what the remedy buys.

Targets: TTFB p99 <= 250 ms; delay p99 <= 250 ms; RSS growth < 256 MB.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, protocol, task

from benchmarks.figures import FollowingReceiver, machine_seconds, percentile, rss
from benchmarks.realmaster import master_config, python_step, start_master, stop_master
from buildbot_logfile import LegacyStatus

HERE = Path(__file__).resolve().parent
CLIENTS = 1000
CLIENT_PROCESSES = 4
RECEIVERS = 100
PREFILL_MB = 1
ARRIVAL_SECONDS = 5.0
LIVE_SECONDS = 10.0
TICKS_PER_SECOND = 20
TICK_LINES = 50
LINE_BYTES = 100
# How a run starts (see the module's docstring).
AS_INSTALLED = "--as-installed"
FROZEN = "--gc-freeze"
# The reactor's lag (how late a timer of this period fires) is printed too:
# a reactor that is late serves every first byte late.
LAG_PROBE = 0.01


def tick_lines(tick: int) -> str:
    """TICK_LINES stdout lines of LINE_BYTES, each starting with the tick's number."""
    line = f"o{tick:07d} " + "y" * (LINE_BYTES - 9) + "\n"
    return line * TICK_LINES


class TailReceiver(FollowingReceiver):
    """A 0.8 receiver subscribed down to logChunk: hashes the text of the log it follows."""

    def __init__(self, log_name: str) -> None:
        super().__init__()
        self.log_name = log_name
        self.digest = hashlib.sha256()
        self.size = 0

    def buildStarted(self, builderName: str, build: Any) -> Any:
        return self

    def stepStarted(self, build: Any, step: Any) -> Any:
        return self

    def logStarted(self, build: Any, step: Any, log: Any) -> Any:
        return self if log.getName() == self.log_name else None

    def logChunk(self, build: Any, step: Any, log: Any, channel: int, text: str) -> None:
        if channel in (0, 1):
            data = text.encode()
            self.digest.update(data)
            self.size += len(data)


class ClientProcess(protocol.ProcessProtocol):
    """A fanout_client.py process: C{ready} fires when all its clients have a first byte."""

    def __init__(self) -> None:
        self.out = b""
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.ended: defer.Deferred[dict[str, Any]] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data
        if not self.ready.called and b"connected\n" in self.out:
            self.ready.callback(None)

    def errReceived(self, data: bytes) -> None:
        sys.stderr.write(data.decode(errors="replace"))

    def processEnded(self, reason: Any) -> None:
        lines = self.out.splitlines()
        if not self.ready.called:
            self.ready.callback(None)
        if not lines or not lines[-1].startswith(b"{"):
            self.ended.errback(RuntimeError(f"a client process failed: {reason.value}"))
            return
        self.ended.callback(json.loads(lines[-1]))


async def sleep(reactor: Any, seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def running_step(reactor: Any, master: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for build in await master.data.get(("builders", "bench", "builds")) or []:
            for step in await master.data.get(("builds", build["buildid"], "steps")):
                if step["name"] == "hold" and step["started_at"] is not None:
                    return step
        await sleep(reactor, 0.1)
    raise RuntimeError("the holding step never started")


async def run(reactor: Any, master: Any, receivers: list[TailReceiver]) -> dict[str, Any]:
    status = master.service_manager.namedServices["LegacyStatus"]
    builderid = await master.data.updates.findBuilderId("bench")
    await master.data.control("force", {"builderid": builderid}, ("forceschedulers", "force"))
    step = await running_step(reactor, master)
    logid = await master.data.updates.addLog(step["stepid"], "tail", "s")
    updates = master.data.updates
    block = tick_lines(0)
    for _ in range(PREFILL_MB * 1024 * 1024 // len(block)):
        await updates.appendLog(logid, block)
    lf = await status.getLogFile("bench", 1, "hold", "tail")
    # Each line is LINE_BYTES of text once its stream letter is gone.
    prefill_bytes = PREFILL_MB * 1024 * 1024 // len(block) * TICK_LINES * LINE_BYTES
    deadline = time.monotonic() + 60
    while lf.length < prefill_bytes:
        assert time.monotonic() < deadline, "the prefill never reached the log"
        await sleep(reactor, 0.05)

    port = status.http_listener.getHost().port
    url = f"http://127.0.0.1:{port}/builders/bench/builds/1/steps/hold/logs/tail/text"
    before = peak = rss()
    start_at = time.time() + 0.5
    per_process = CLIENTS // CLIENT_PROCESSES
    processes = []
    for index in range(CLIENT_PROCESSES):
        proto = ClientProcess()
        args = [url, str(per_process), f"{start_at:.6f}", str(ARRIVAL_SECONDS)]
        args += [str(index), str(CLIENT_PROCESSES)]
        reactor.spawnProcess(
            proto, sys.executable, [sys.executable, str(HERE / "fanout_client.py"), *args],
            env=os.environ,
        )  # fmt: skip
        processes.append(proto)
    all_connected = defer.gatherResults([p.ready for p in processes])

    lags: list[float] = []
    lag_probe = task.LoopingCall(lambda: lags.append(time.monotonic()))
    lag_probe.clock = reactor
    lag_probe.start(LAG_PROBE, now=False)
    appended: dict[int, float] = {}
    append_seconds: list[float] = []
    began = time.monotonic()
    stolen = machine_seconds()["steal"]
    live_until: float | None = None
    tick = 0
    while live_until is None or time.monotonic() < live_until:
        if live_until is None and all_connected.called:
            live_until = time.monotonic() + LIVE_SECONDS
        assert time.monotonic() - began < 120, "the clients never all connected"
        tick += 1
        called = time.time()
        await updates.appendLog(logid, tick_lines(tick))
        appended[tick] = time.time()
        append_seconds.append(appended[tick] - called)
        peak = max(peak, rss())
        await sleep(reactor, max(0.0, began + tick / TICKS_PER_SECOND - time.monotonic()))
    lag_probe.stop()
    steal = machine_seconds()["steal"] - stolen
    span = time.monotonic() - began
    await updates.finishLog(logid)
    results = await defer.gatherResults([p.ended for p in processes])
    deadline = time.monotonic() + 60
    while not lf.isFinished():
        assert time.monotonic() < deadline, "the log never finished"
        await sleep(reactor, 0.05)
    peak = max(peak, rss())

    expected = lf.getText().encode()
    digest = hashlib.sha256(expected).hexdigest()
    details = [d for r in results for d in r["details"]]
    errors = [d["error"] for d in details if d["error"]]
    complete = sum(1 for d in details if d["size"] == len(expected) and d["sha256"] == digest)
    heard = sum(1 for r in receivers if r.size == len(expected) and r.digest.hexdigest() == digest)
    delays = []
    for d in details:
        if d["first_byte"] is None:
            continue
        seen = 0
        for token, at in d["marks"]:
            reached = int(token)
            for t in range(seen + 1, reached + 1):
                if appended.get(t, 0.0) > d["first_byte"]:
                    delays.append(at - appended[t])
            seen = max(seen, reached)
    ttfbs = [d["ttfb"] for d in details if d["ttfb"] is not None]
    return {
        "clients": len(details),
        "complete": complete,
        "errors": errors,
        "receivers": len(receivers),
        "heard": heard,
        "mb": len(expected) / 2**20,
        "ticks": tick,
        "ttfb": ttfbs,
        "delays": delays,
        "append": append_seconds,
        "rss_growth": (peak - before) / 2**20,
        "lag": [b - a - LAG_PROBE for a, b in zip(lags, lags[1:])],
        "steal": steal,
        "span": span,
    }


async def main(reactor: Any, frozen: bool) -> None:
    # A descriptor per client, and a thousand clients.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    receivers = [TailReceiver("tail") for _ in range(RECEIVERS)]
    config = master_config(
        {"bench": [python_step("hold", "import time; time.sleep(3600)")]},
        [LegacyStatus(receivers=receivers, http_port="tcp:0:interface=127.0.0.1:backlog=1024")],
        logCompressionMethod="raw",
    )
    master = await start_master(reactor, config)
    try:
        fig = await run(reactor, master, receivers)
    finally:
        await stop_master(master)

    ms = 1000
    print(
        f"bench_fanout ({'heap frozen before the start' if frozen else 'as installed'}):"
        f" {fig['clients']} clients tailing one live text page and"
        f" {fig['receivers']} receivers; a {PREFILL_MB} MB log growing"
        f" {TICKS_PER_SECOND * TICK_LINES * LINE_BYTES // 1024} KB/s;"
        f" arrivals over {ARRIVAL_SECONDS:.0f} s"
    )
    print(
        f"  {fig['complete']}/{fig['clients']} clients and {fig['heard']}/{fig['receivers']}"
        f" receivers got all {fig['mb']:.1f} MB (size and SHA-256)"
    )
    for error in fig["errors"][:5]:
        print(f"  client error: {error}")
    print(
        f"  time to first byte p50 {percentile(fig['ttfb'], 0.5) * ms:.0f} ms"
        f"  p99 {percentile(fig['ttfb'], 0.99) * ms:.0f} ms  (target p99 <= 250 ms)"
    )
    append_p50 = statistics.median(fig["append"])
    delay_p50 = percentile(fig["delays"], 0.5)
    print(
        f"  appendLog returned -> client: p50 {delay_p50 * ms:.0f} ms"
        f"  p99 {percentile(fig['delays'], 0.99) * ms:.0f} ms over {len(fig['delays'])}"
        f" samples  (target p99 <= 250 ms); appendLog itself p50 {append_p50 * ms:.0f} ms,"
        f" the delay is {delay_p50 / append_p50:.1f}x that"
    )
    print(
        f"  reactor lag p50 {percentile(fig['lag'], 0.5) * ms:.0f} ms"
        f"  p99 {percentile(fig['lag'], 0.99) * ms:.0f} ms  max {max(fig['lag']) * ms:.0f} ms"
    )
    rate = fig["ticks"] / fig["span"]
    print(
        f"  the log grew {rate * TICK_LINES * LINE_BYTES / 1024:.0f} KB/s in {rate:.1f} appends"
        f" a second (meant: {TICKS_PER_SECOND}; each waits for the one before, so a master"
        " whose appendLog lags gets fewer)"
    )
    print(f"  master RSS growth {fig['rss_growth']:.0f} MB  (target < 256 MB)")
    print(
        f"  the host took {fig['steal']:.1f} s of the machine's CPU time (steal)"
        f" in the {fig['span']:.1f} s from the first client to the log's end"
    )


if __name__ == "__main__":
    if sys.argv[1:] == [FROZEN]:
        gc.freeze()  # as the last line of buildbot.tac would, before the master starts
    if sys.argv[1:] in ([AS_INSTALLED], [FROZEN]):
        task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1] == FROZEN)))
    runs = [subprocess.call([sys.executable, __file__, how]) for how in (AS_INSTALLED, FROZEN)]
    sys.exit(max(runs))
