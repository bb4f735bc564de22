"""
LogFile append and LogFileProducer catch-up read, against raw file I/O.

Appends 100 MiB of ~1 KiB entries (stdout and stderr alternating every 50
entries) to a LogFile set up as the bridge sets up its own (no size limit
of its own: the worker applied the master's), then streams the file back
through a LogFileProducer into a consumer that only counts.  The anchors
write and read the very same bytes with plain 64 KiB file operations in
the same run.

Targets: append >= 0.6x raw write; catch-up read >= 0.12x raw read.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, task

from buildbot_logfile.logfile import STDERR, STDOUT, LogFile
from tests.support import make_step

TOTAL = 100 * 1024 * 1024
ENTRY = 1024
IO_SIZE = 64 * 1024
ROUNDS = 5


class CountingConsumer:
    def __init__(self, done: defer.Deferred) -> None:
        self.bytes = 0
        self.done = done

    def registerProducer(self, producer, streaming) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def writeChunk(self, chunk) -> None:
        self.bytes += len(chunk[1])

    def finish(self) -> None:
        self.done.callback(self.bytes)


def entries() -> list[tuple[int, str]]:
    line = ("0123456789abcdef" * 64)[: ENTRY - 1] + "\n"
    return [(STDOUT if (i // 50) % 2 == 0 else STDERR, line) for i in range(TOTAL // ENTRY)]


def time_append(basedir: str, items: list[tuple[int, str]]) -> tuple[float, LogFile]:
    os.sync()
    lf = LogFile(make_step(basedir), "stdio", "1-log-bench-stdio")
    lf.logMaxSize = lf.logMaxTailSize = None
    add = lf.addEntry
    start = time.perf_counter()
    for channel, text in items:
        add(channel, text)
    lf.finish()
    return time.perf_counter() - start, lf


def time_raw_write(path: str, data: bytes) -> float:
    os.sync()
    start = time.perf_counter()
    with open(path, "wb") as f:
        for pos in range(0, len(data), IO_SIZE):
            f.write(data[pos : pos + IO_SIZE])
    return time.perf_counter() - start


def time_raw_read(path: str) -> float:
    start = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(IO_SIZE):
            pass
    return time.perf_counter() - start


async def time_catch_up(lf: LogFile, expected: int) -> float:
    done: defer.Deferred = defer.Deferred()
    start = time.perf_counter()
    lf.subscribeConsumer(CountingConsumer(done))
    got = await done
    elapsed = time.perf_counter() - start
    assert got == expected, (got, expected)
    return elapsed


async def main(reactor) -> None:
    items = entries()
    text_bytes = sum(len(t) for _, t in items)
    appends, writes, reads, catch_ups = [], [], [], []
    # Both writers start from a clean page cache (os.sync), so neither pays
    # for the other's write-back.
    with tempfile.TemporaryDirectory() as basedir:
        raw = os.path.join(basedir, "raw")
        for _ in range(ROUNDS):
            elapsed, lf = time_append(basedir, items)
            appends.append(elapsed)
            data = Path(lf.getFilename()).read_bytes()
            writes.append(time_raw_write(raw, data))
            reads.append(time_raw_read(raw))
            catch_ups.append(await time_catch_up(lf, text_bytes))
            os.unlink(lf.getFilename())
            os.unlink(raw)
    mib = len(data) / 2**20
    best = {
        k: min(v)
        for k, v in {
            "append": appends,
            "write": writes,
            "read": reads,
            "catch_up": catch_ups,
        }.items()
    }
    print(f"bench_logfile: {len(items)} entries, {mib:.1f} MiB on disk, best of {ROUNDS}")
    print(
        f"  raw write   {best['write']:.3f} s   append   {best['append']:.3f} s"
        f"   ratio {best['write'] / best['append']:.2f}x  (target >= 0.60x)"
    )
    print(
        f"  raw read    {best['read']:.3f} s   catch-up {best['catch_up']:.3f} s"
        f"   ratio {best['read'] / best['catch_up']:.2f}x  (target >= 0.12x)"
    )


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
