"""
The log pages against their anchors, on real masters in this process.

 - What users get: a real build through a real worker prints BIG_LINES
   lines of LINE_BYTES (a ~49 MB stdout log) on a master at Buildbot's
   defaults (logCompressionMethod 'gz': the spool is gzip) and on one with
   'raw'; the spool's records are what the bridge writes from the
   database.  Each finished log is fetched by curl (best of ROUNDS, the
   anchor and the pages taking turns so that each round's machine is
   the same for all three): the text
   page and the HTML page against twisted.web.static.File serving the
   same text bytes, and on the default master the text page against
   Buildbot's own /api/v2/logs/<id>/raw_inline.
 - The same pages fetched by a gzip client (curl --compressed): the
   encoded page kept beside the spool, made by the first such fetch.
 - The reactor while CONCURRENT clients fetch the finished log's text
   page at once (one curl, parallel): the longest gap between two ticks
   of a 1 ms heartbeat, i.e. the longest the reactor was held; and the
   same for static.File serving its copy, the anchor.
 - Memory: a client that stops reading while 200 MB are appended; growth
   of this process's RSS.

Targets: text >= 0.8x static.File and HTML >= 0.5x on 'gz', more on
'raw'; longest reactor hold a few ms; text >= 50x faster than
raw_inline; RSS growth < 32 MB.  (Fan-out: bench_fanout.)
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, task, utils
from twisted.web import http
from twisted.web.server import Site
from twisted.web.static import File

from benchmarks.figures import rss
from benchmarks.realmaster import (
    master_config,
    python_step,
    run_build,
    start_master,
    stop_master,
)
from buildbot_logfile import LegacyStatus, _spool

HERE = Path(__file__).resolve().parent
FANOUT_CLIENTS = 100
FANOUT_SECONDS = 10
STALL_MB = 200
LINE = "x" * 89 + "\n"  # 90 bytes; one DB line each


async def sleep(reactor: Any, seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


# A URL starting with this is fetched as a gzip client (curl --compressed).
GZIP = "gzip:"


async def curl(url: str, output: str = "/dev/null") -> tuple[float, int, str]:
    """Seconds, bytes received and the Content-Encoding of one fetch."""
    args = [
        "-s",
        "-o",
        output,
        "-w",
        "%{time_total} %{http_code} %{size_download} %header{content-encoding}",
    ]
    if url.startswith(GZIP):
        url = url[len(GZIP) :]
        args.append("--compressed")
    out = await utils.getProcessOutput("/usr/bin/curl", [*args, url], env=os.environ)
    seconds, code, size, *encoding = out.decode().split()
    assert code == "200", (url, code)
    return float(seconds), int(size), "".join(encoding)


async def curl_seconds(url: str, output: str = "/dev/null") -> float:
    return (await curl(url, output))[0]


async def encoded(bench: Bench, url: str, output: str) -> int:
    """
    Fetch C{url} as a gzip client until it comes encoded (the first asks
    for it to be made); the bytes it took.
    """
    for _ in range(600):
        _, size, encoding = await curl(GZIP + url, output)
        if encoding == "gzip":
            return size
        await sleep(bench.reactor, 0.05)
    raise RuntimeError(f"{url} never came gzip-encoded")


ROUNDS = 7


async def best_of_rounds(urls: dict[str, str]) -> dict[str, float]:
    """The best time of each of C{urls}, fetched in turn ROUNDS times."""
    best = dict.fromkeys(urls, float("inf"))
    for _ in range(ROUNDS):
        for name, url in urls.items():
            best[name] = min(best[name], await curl_seconds(url))
    return best


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


# The build's log: BIG_LINES lines of LINE_BYTES, as a compiler prints them.
BIG_LINES = 640_000
LINE_BYTES = 80
BIG_SCRIPT = (
    "import sys\n"
    "w = sys.stdout.write\n"
    f"for i in range({BIG_LINES}):\n"
    "    m = i % 99991\n"
    "    line = '%07d cc -O2 -Wall -c src/mod%05d.c -o obj/mod%05d.o' % (i, m, m)\n"
    f"    w(line.ljust({LINE_BYTES - 1}, '.') + '\\n')\n"
)
CONCURRENT = 100


async def finished_spool(bench: Bench, method: str) -> Any:
    """The big build's finished LogFile, once its spool is as the method leaves it."""
    build = await run_build(bench.master, "big")
    assert build["results"] == 0, build
    lf = await bench.status.getLogFile("big", build["number"], "emit", "stdio")
    suffix = ".gz" if method == "gz" else ""
    for _ in range(600):
        found = _spool.existing_spool(lf.getFilename())
        if lf.isFinished() and found is not None and found.endswith(suffix):
            await quiet(bench)
            return lf
        await sleep(bench.reactor, 0.05)
    raise RuntimeError(f"the spool never became {suffix or 'plain'}")


async def quiet(bench: Bench) -> None:
    """
    Wait until this process is idle: after a build the master compresses
    the log's chunks in the database, in threads, for some seconds.
    """
    for _ in range(240):
        before = resource.getrusage(resource.RUSAGE_SELF)
        await sleep(bench.reactor, 0.5)
        after = resource.getrusage(resource.RUSAGE_SELF)
        if (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 0.025:
            return
    raise RuntimeError("the master never went idle")


class Hold(NamedTuple):
    """What CONCURRENT clients fetching one URL at once cost the master."""

    longest: float  # the longest gap between two ticks of the heartbeat, less the tick
    sending: float  # the same, once every request has arrived: only pages being sent
    took: float  # seconds until all were done
    grew: float  # MB: the largest RSS seen less the RSS before they started


async def longest_hold(bench: Bench, url: str) -> Hold:
    """
    A 1 ms heartbeat while CONCURRENT clients fetch C{url} at once: the
    longest the reactor was held, overall and once all the requests are
    in (their arriving at once holds it too), and this process's RSS at
    each tick.
    """
    gaps: list[tuple[float, float]] = []  # (when a gap started, how long it was)
    last = [time.perf_counter()]
    before = rss()
    largest = [before]
    arrived: list[float] = []
    received = http.Request.requestReceived

    def noted(request: http.Request, *args: Any) -> None:
        arrived.append(time.perf_counter())
        received(request, *args)

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((last[0], now - last[0]))
        last[0] = now
        largest[0] = max(largest[0], rss())

    args = [
        "-s",
        "--no-progress-meter",
        "-Z",
        "--parallel-immediate",
        "--parallel-max",
        str(CONCURRENT),
    ]
    if url.startswith(GZIP):
        url = url[len(GZIP) :]
        args.append("--compressed")
    for _ in range(CONCURRENT):
        args += ["-o", "/dev/null", url]
    heartbeat = task.LoopingCall(tick)
    heartbeat.clock = bench.reactor
    http.Request.requestReceived = noted  # type: ignore[method-assign]
    heartbeat.start(0.001)
    started = time.monotonic()
    try:
        await utils.getProcessOutput("/usr/bin/curl", args, env=os.environ)
    finally:
        took = time.monotonic() - started
        heartbeat.stop()
        http.Request.requestReceived = received  # type: ignore[method-assign]
    assert len(arrived) == CONCURRENT, len(arrived)
    sending = [gap for start, gap in gaps if start >= arrived[-1]]
    return Hold(
        max(gap for _, gap in gaps) - 0.001,
        max(sending) - 0.001,
        took,
        (largest[0] - before) / 2**20,
    )


async def finished_log_figures(bench: Bench, method: str, www_port: int) -> dict[str, Any]:
    lf = await finished_spool(bench, method)
    text = lf.getText().encode()
    assert len(text) == BIG_LINES * LINE_BYTES, len(text)
    static_dir = tempfile.mkdtemp(prefix="bench-static-")
    Path(static_dir, "big.txt").write_bytes(text)
    listener = bench.reactor.listenTCP(0, Site(File(static_dir)), interface="127.0.0.1")
    static_url = f"http://127.0.0.1:{listener.getHost().port}/big.txt"
    page = f"{bench.base}/builders/big/builds/1/steps/emit/logs/stdio"
    try:
        got = Path(static_dir, "got.txt")
        await curl_seconds(page + "/text", str(got))
        assert got.read_bytes() == text, "the text page is not the log's text"
        gzip_bytes = await encoded(bench, page + "/text", str(got))
        assert got.read_bytes() == text, "the encoded text page is not the log's text"
        await encoded(bench, page, "/dev/null")
        figures: dict[str, Any] = {
            "size_mb": len(text) / 2**20,
            "records": _spool.existing_spool(lf.getFilename()),
            "gzip_mb": gzip_bytes / 2**20,
            **await best_of_rounds(
                {
                    "static": static_url,
                    "text": page + "/text",
                    "html": page,
                    "gzip_text": GZIP + page + "/text",
                    "gzip_html": GZIP + page,
                }
            ),
        }
        if method == "gz":
            logid = await bench.master.data.get(("builds", 1, "steps", "emit", "logs"))
            figures["raw_inline"] = await curl_seconds(
                f"http://127.0.0.1:{www_port}/api/v2/logs/{logid[0]['logid']}/raw_inline"
            )
            figures["hold"] = await longest_hold(bench, page + "/text")
            figures["static_hold"] = await longest_hold(bench, static_url)
            figures["gzip_hold"] = await longest_hold(bench, GZIP + page + "/text")
    finally:
        await listener.stopListening()
    return figures


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
    while not lf._followers:
        await sleep(bench.reactor, 0.05)
    await sleep(bench.reactor, 0.5)
    before = rss()
    await bench.append_mb(logid, STALL_MB)
    await sleep(bench.reactor, 1)
    grown = rss() - before
    sock.close()
    await bench.master.data.updates.finishLog(logid)
    return grown / 2**20


def row_config(method: str | None) -> dict[str, Any]:
    """A master config; C{method} None leaves logCompressionMethod at Buildbot's default."""
    extra: dict[str, Any] = {} if method is None else {"logCompressionMethod": method}
    return master_config(
        {
            "big": [python_step("emit", BIG_SCRIPT)],
            "bench": [python_step("hold", "import time; time.sleep(3600)")],
        },
        [LegacyStatus(http_port="tcp:0:interface=127.0.0.1")],
        www={"port": "tcp:0:interface=127.0.0.1"},
        **extra,
    )


async def main(reactor: Any) -> None:
    rows: dict[str, dict[str, Any]] = {}
    for method in ("gz", "raw"):
        master = await start_master(reactor, row_config(None if method == "gz" else method))
        try:
            assert master.config.logCompressionMethod == method
            bench = Bench(reactor, master)
            rows[method] = await finished_log_figures(bench, method, master.www.getPortnum())
            if method == "gz":
                builderid = await master.data.updates.findBuilderId("bench")
                await master.data.control(
                    "force", {"builderid": builderid}, ("forceschedulers", "force")
                )
                step = await bench.running_step()
                grown = await stalled_client_growth(bench, step)
        finally:
            await stop_master(master)

    gz = rows["gz"]
    print(
        f"bench_web: a real build's finished log of {gz['size_mb']:.1f} MB of text"
        f" ({BIG_LINES} lines), curl best of {ROUNDS}"
    )
    for method, big in rows.items():
        label = "default 'gz'" if method == "gz" else "'raw'"
        print(f"  {label}: spool {Path(big['records']).name}")
        print(
            f"    static.File {big['static']:.3f} s   text page {big['text']:.3f} s"
            f"   ratio {big['static'] / big['text']:.2f}x  (target >= 0.80x)"
        )
        print(
            f"    static.File {big['static']:.3f} s   HTML page {big['html']:.3f} s"
            f"   ratio {big['static'] / big['html']:.2f}x  (target >= 0.50x)"
        )
        print(
            f"    gzip clients (curl --compressed), {big['gzip_mb']:.1f} MB sent for the text:"
            f" text page {big['gzip_text']:.3f} s  ratio {big['static'] / big['gzip_text']:.2f}x;"
            f" HTML page {big['gzip_html']:.3f} s  ratio {big['static'] / big['gzip_html']:.2f}x"
        )
    print(
        f"  raw_inline  {gz['raw_inline']:.3f} s   text page {gz['text']:.3f} s"
        f"   text is {gz['raw_inline'] / gz['text']:.0f}x faster  (target >= 50x)"
    )
    for key, what, target in (
        ("hold", "text fetches of the finished log", "  (target: a few ms)"),
        ("static_hold", "fetches of static.File's copy", ""),
        ("gzip_hold", "gzip clients of the text page", ""),
    ):
        hold = gz[key]
        print(
            f"  {CONCURRENT} concurrent {what}: {hold.took:.1f} s;"
            f" longest reactor hold {hold.longest * 1000:.1f} ms,"
            f" {hold.sending * 1000:.1f} ms once all requests were in{target};"
            f" RSS grew {hold.grew:.0f} MB"
        )
    print(
        f"  a client that stopped reading while {STALL_MB} MB were appended: RSS grew"
        f" {grown:.1f} MB  (target < 32 MB)"
    )


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
