"""
C{buildbot-logfile import-08} on a synthetic 0.8 history, against
Buildbot's own C{master.db.logs.appendLog} path for the same text.

Writes an 0.8 master directory (BUILDS builds of three steps, MB megabytes
of log text in plain 0.8 log files: stdout and stderr lines, a header),
imports it with the console script into a fresh SQLite master (the
master's default log compression), and measures MB/s of log text and the
importer's peak RSS.  The anchor, in the same run, sends the same logs'
text through C{appendLog} as a live master does (the lines of each 0.8
record as one call, then C{finishLog} and C{compressLog}) for the first
ANCHOR_MB megabytes: its rate per MB does not depend on the total.

Targets: import >= 5x the appendLog path; importer peak RSS < 200 MB.
Usage: bench_import.py [--builds N] [--mb M]  (default 1000 builds, 500 MB)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from buildbot.db.connector import DBConnector
from buildbot.master import BuildMaster
from buildbot.scripts import base
from buildbot.util.lineboundaries import LineBoundaryFinder
from twisted.internet import defer, task

from buildbot_logfile._import08_db import Database
from buildbot_logfile._import08_history import Build08, Step08
from tests import history08 as h

ANCHOR_MB = 10
STEPS = ("checkout", "compile", "test")
LINE = "compiling module %06d: ok, nothing to see here, moving right along...\n"


def log_entries(size: int, seed: int) -> list[tuple[int, str]]:
    """About C{size} bytes: a header, then stdout with a stderr line now and then."""
    entries = [(2, f"command: make -j2 target{seed}\n")]
    total = 0
    i = 0
    while total < size:
        block = "".join(LINE % (seed + j) for j in range(i, i + 100))
        entries.append((0, block))
        entries.append((1, f"warning: {i}\n"))
        total += len(block) + 12
        i += 100
    return entries


def write_history(old: str, builds: int, total: int) -> int:
    folder = os.path.join(old, "bench")
    h.write_builder(folder, "bench")
    per_log = total // (builds * 3)
    written = 0
    for number in range(builds):
        steps = []
        for s, name in enumerate(("checkout", "compile", "test")):
            filename = f"{number}-log-{name}-stdio"
            entries = log_entries(per_log, number * 3 + s)
            h.write_log(os.path.join(folder, filename), entries)
            written += sum(len(text) for _, text in entries)
            log = h.LogFile(name="stdio", filename=filename)
            steps.append(h.step(name, [log], 1300000000.0 + number * 60 + s))
        h.write_build(folder, h.build(number, steps, 1300000000.0 + number * 60))
    return written


def run_import(old: str, master_dir: str) -> tuple[float, int, str]:
    """Seconds, peak RSS (bytes) and output of the console script."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([h.COMMAND, "import-08", old, master_dir], stdout=out, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        out.seek(0)
        output = out.read()
    if proc.returncode != 0:
        sys.exit(f"import failed ({proc.returncode}):\n{output}")
    return elapsed, usage.ru_maxrss * 1024, output


def record_pieces(path: str) -> list[str]:
    """The appendLog calls a live master makes for this 0.8 file: each record's whole lines."""
    finders: dict[str, LineBoundaryFinder] = {}
    pieces = []
    for channel, data in h.read_records(path):
        stream = "oeh"[channel]
        lines = finders.setdefault(stream, LineBoundaryFinder()).append(data.decode())
        if lines is not None:
            pieces.append("".join(stream + line for line in lines.splitlines(True)))
    for stream, finder in finders.items():
        lines = finder.flush()
        if lines is not None:
            pieces.append("".join(stream + line for line in lines.splitlines(True)))
    return pieces


async def anchor(master_dir: str, old: str, limit: int) -> tuple[float, int]:
    """Seconds and bytes of text for Buildbot's appendLog path, first C{limit} bytes."""
    master_cfg = base.loadConfig({"basedir": master_dir, "quiet": True})
    master = BuildMaster(master_dir)
    master.config = master_cfg
    db = DBConnector(basedir=master_dir)
    await db.set_master(master)
    await db.setup(check_version=True, verbose=False)
    db.logs._compression_pool.start()
    try:
        store = Database(db.pool.engine, db.model)
        with store.transaction() as conn:
            masterid = store.import_masterid(conn, create=True)
            builderid = store.builderid(conn, "anchor", create=True)
            assert masterid is not None
            assert builderid is not None
            build = Build08("anchor", 1, 1.0, 2.0, 0, [], "", None, {}, [])
            buildid = store.add_build(conn, build, builderid, masterid)
        folder = os.path.join(old, "bench")
        elapsed = 0.0
        done = 0
        number = 0
        while done < limit:
            with store.transaction() as conn:
                step = Step08(f"s{number}", 1.0, 2.0, 0, [], [], False, [])
                stepid = store.add_step(conn, buildid, number, step)
            name = f"{number // 3}-log-{STEPS[number % 3]}-stdio"
            pieces = record_pieces(os.path.join(folder, name))
            started = time.perf_counter()
            logid = await db.logs.addLog(stepid, "stdio", "stdio", "s")
            for piece in pieces:
                await db.logs.appendLog(logid, piece)
            await db.logs.finishLog(logid)
            await db.logs.compressLog(logid)
            elapsed += time.perf_counter() - started
            done += sum(len(p) - p.count("\n") for p in pieces)  # text without prefixes
            number += 1
    finally:
        db.logs._compression_pool.stop()
        await db.pool.stop()
    return elapsed, done


async def run(args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="bench_import")
    try:
        old = os.path.join(tmp, "old")
        total = write_history(old, args.builds, args.mb * 1_000_000)
        master_dir = h.create_master_dir(os.path.join(tmp, "master"), compression="gz")
        anchor_dir = h.create_master_dir(os.path.join(tmp, "anchor"), compression="gz")
        os.sync()
        seconds, rss, output = run_import(old, master_dir)
        rate = total / seconds / 1e6
        anchor_seconds, anchor_bytes = await anchor(
            anchor_dir, old, min(total, ANCHOR_MB * 1_000_000)
        )
        anchor_rate = anchor_bytes / anchor_seconds / 1e6
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"bench_import: {output.strip().splitlines()[2].strip()}")
    print(
        f"bench_import: {args.builds} builds, {total / 1e6:.0f} MB of log text (plain 0.8 "
        f"files, gz in the database): {seconds:.1f} s, {rate:.1f} MB/s"
    )
    print(
        f"bench_import: appendLog path, first {anchor_bytes / 1e6:.0f} MB of the same logs: "
        f"{anchor_rate:.1f} MB/s; import is {rate / anchor_rate:.1f}x (target >= 5x)"
    )
    print(f"bench_import: importer peak RSS {rss / 1e6:.0f} MB (target < 200 MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--builds", type=int, default=1000)
    parser.add_argument("--mb", type=int, default=500)
    args = parser.parse_args()
    task.react(lambda _: defer.ensureDeferred(run(args)))


if __name__ == "__main__":
    main()
