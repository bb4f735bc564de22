"""
The log pages against their anchors, on one master in this process.

 - A finished ~50 MB log fetched by curl (best of 3): the text page and the
   HTML page against twisted.web.static.File serving the same text bytes,
   and the text page against Buildbot's own /api/v2/logs/<id>/raw_inline.
 - Fan-out: 100 concurrent text clients (another process) on a live log
   appended at ~1 MB/s; each must receive every byte; append-to-receive
   latency p50/p99.
 - Memory: a client that stops reading while 200 MB are appended; growth
   of this process's RSS.

Targets: text >= 0.5x static.File; HTML >= 0.2x static.File; text >= 50x
faster than raw_inline; fan-out p99 <= 250 ms; RSS growth < 32 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, task, utils
from twisted.web.server import Site
from twisted.web.static import File

from benchmarks.realmaster import master_config, python_step, start_master, stop_master
from buildbot_logfile import LegacyStatus

HERE = Path(__file__).resolve().parent
BIG_MB = 50
FANOUT_CLIENTS = 100
FANOUT_SECONDS = 10
STALL_MB = 200
LINE = "x" * 89 + "\n"  # 90 bytes; one DB line each


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def sleep(reactor: Any, seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def curl_seconds(url: str) -> float:
    out = await utils.getProcessOutput(
        "/usr/bin/curl",
        ["-s", "-o", "/dev/null", "-w", "%{time_total} %{http_code}", url],
        env=os.environ,
    )
    seconds, code = out.decode().split()
    assert code == "200", (url, code)
    return float(seconds)


async def best_of_3(url: str) -> float:
    return min([await curl_seconds(url) for _ in range(3)])


class Bench:
    def __init__(self, reactor: Any, master: Any) -> None:
        self.reactor = reactor
        self.master = master
        self.status = master.service_manager.namedServices["LegacyStatus"]
        self.base = f"http://127.0.0.1:{self.status.http_listener.getHost().port}"

    async def running_step(self) -> dict[str, Any]:
        for _ in range(300):
            builds = await self.master.data.get(("builders", "bench", "builds"))
            for build in builds or []:
                steps = await self.master.data.get(("builds", build["buildid"], "steps"))
                for step in steps:
                    if step["name"] == "hold" and step["started_at"] is not None:
                        return step
            await sleep(self.reactor, 0.1)
        raise RuntimeError("the holding step never started")

    async def new_log(self, step: dict[str, Any], name: str) -> int:
        return await self.master.data.updates.addLog(step["stepid"], name, "s")

    def page(self, name: str, suffix: str = "") -> str:
        return f"{self.base}/builders/bench/builds/1/steps/hold/logs/{name}{suffix}"

    async def append_mb(self, logid: int, megabytes: int) -> None:
        block = "".join("o" + LINE for _ in range(700))
        for _ in range(megabytes * 1024 * 1024 // len(block)):
            await self.master.data.updates.appendLog(logid, block)


async def finished_log_figures(
    bench: Bench, step: dict[str, Any], www_port: int
) -> dict[str, float]:
    logid = await bench.new_log(step, "big")
    await bench.append_mb(logid, BIG_MB)
    await bench.master.data.updates.finishLog(logid)
    lf = await bench.status.getLogFile("bench", 1, "hold", "big")
    while not lf.isFinished():
        await sleep(bench.reactor, 0.1)
    text = lf.getText().encode()
    static_dir = tempfile.mkdtemp(prefix="bench-static-")
    Path(static_dir, "big.txt").write_bytes(text)
    listener = bench.reactor.listenTCP(0, Site(File(static_dir)), interface="127.0.0.1")
    static_url = f"http://127.0.0.1:{listener.getHost().port}/big.txt"
    try:
        figures = {
            "size_mb": len(text) / 2**20,
            "static": await best_of_3(static_url),
            "text": await best_of_3(bench.page("big", "/text")),
            "html": await best_of_3(bench.page("big")),
            "raw_inline": await curl_seconds(
                f"http://127.0.0.1:{www_port}/api/v2/logs/{logid}/raw_inline"
            ),
        }
    finally:
        await listener.stopListening()
    return figures


async def fanout_figures(bench: Bench, step: dict[str, Any]) -> dict[str, Any]:
    logid = await bench.new_log(step, "fanout")
    await bench.master.data.updates.appendLog(logid, f"o{time.time():.6f} start\n")
    lf = await bench.status.getLogFile("bench", 1, "hold", "fanout")
    client = utils.getProcessOutput(
        sys.executable,
        [str(HERE / "fanout_client.py"), bench.page("fanout", "/text"), str(FANOUT_CLIENTS)],
        env=os.environ,
        errortoo=False,
    )
    # let every client connect and catch up before the clock starts
    while len(lf._producers) < FANOUT_CLIENTS:
        await sleep(bench.reactor, 0.05)
    per_tick = 1024 * 1024 // 20  # 1 MB/s in 20 appends a second
    lines_per_tick = per_tick // 100
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < FANOUT_SECONDS:
        tick += 1
        stamp = f"{time.time():.6f}"
        line = f"o{stamp} {'y' * (99 - len(stamp) - 2)}\n"
        await bench.master.data.updates.appendLog(logid, line * lines_per_tick)
        await sleep(bench.reactor, max(0, start + tick * 0.05 - time.monotonic()))
    await bench.master.data.updates.finishLog(logid)
    result = json.loads(await client)
    while not lf.isFinished():
        await sleep(bench.reactor, 0.1)
    expected = lf.getText().encode()
    digest = hashlib.sha256(expected).hexdigest()
    complete = sum(1 for size, h in result["clients"] if size == len(expected) and h == digest)
    samples = sorted(result["samples"])
    return {
        "clients": len(result["clients"]),
        "complete": complete,
        "mb": len(expected) / 2**20,
        "p50": samples[len(samples) // 2],
        "p99": samples[int(len(samples) * 0.99)],
        "samples": len(samples),
    }


async def stalled_client_growth(bench: Bench, step: dict[str, Any]) -> float:
    logid = await bench.new_log(step, "stall")
    await bench.master.data.updates.appendLog(logid, "ostart\n")
    lf = await bench.status.getLogFile("bench", 1, "hold", "stall")
    sock = socket.create_connection(("127.0.0.1", bench.status.http_listener.getHost().port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        b"GET "
        + bench.page("stall", "/text").split(bench.base, 1)[1].encode()
        + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    while not lf._producers:
        await sleep(bench.reactor, 0.05)
    await sleep(bench.reactor, 0.5)
    before = rss()
    await bench.append_mb(logid, STALL_MB)
    await sleep(bench.reactor, 1)
    grown = rss() - before
    sock.close()
    await bench.master.data.updates.finishLog(logid)
    return grown / 2**20


async def main(reactor: Any) -> None:
    config = master_config(
        {"bench": [python_step("hold", "import time; time.sleep(3600)")]},
        [LegacyStatus(http_port="tcp:0:interface=127.0.0.1")],
        www={"port": "tcp:0:interface=127.0.0.1"},
        logCompressionMethod="raw",
    )
    master = await start_master(reactor, config)
    try:
        builderid = await master.data.updates.findBuilderId("bench")
        await master.data.control("force", {"builderid": builderid}, ("forceschedulers", "force"))
        bench = Bench(reactor, master)
        step = await bench.running_step()
        big = await finished_log_figures(bench, step, master.www.getPortnum())
        fan = await fanout_figures(bench, step)
        grown = await stalled_client_growth(bench, step)
    finally:
        await stop_master(master)

    print(f"bench_web: finished log of {big['size_mb']:.1f} MB of text, curl best of 3")
    print(
        f"  static.File {big['static']:.3f} s   text page {big['text']:.3f} s"
        f"   ratio {big['static'] / big['text']:.2f}x  (target >= 0.50x)"
    )
    print(
        f"  static.File {big['static']:.3f} s   HTML page {big['html']:.3f} s"
        f"   ratio {big['static'] / big['html']:.2f}x  (target >= 0.20x)"
    )
    print(
        f"  raw_inline  {big['raw_inline']:.3f} s   text page {big['text']:.3f} s"
        f"   text is {big['raw_inline'] / big['text']:.0f}x faster  (target >= 50x)"
    )
    print(
        f"  fan-out: {fan['complete']}/{fan['clients']} clients got all {fan['mb']:.1f} MB;"
        f" latency p50 {fan['p50'] * 1000:.0f} ms  p99 {fan['p99'] * 1000:.0f} ms"
        f" over {fan['samples']} samples  (target p99 <= 250 ms)"
    )
    print(
        f"  a client that stopped reading while {STALL_MB} MB were appended: RSS grew"
        f" {grown:.1f} MB  (target < 32 MB)"
    )


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
