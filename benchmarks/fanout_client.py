"""
N concurrent streaming clients of one live text page, in their own process.

Each line of the log starts with the time.time() at which the master
appended it; for each block of data a client receives, the first line's
age is one latency sample.  Prints one JSON line: the samples, and each
client's byte count and SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import treq
from twisted.internet import defer, task


async def one_client(url: str, samples: list[float]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    partial = b""

    def received(data: bytes) -> None:
        nonlocal size, partial
        now = time.time()
        digest.update(data)
        size += len(data)
        start = partial + data
        # a line that began in the previous block is already sampled there
        first = start.split(b"\n", 1)[0] if not partial else b""
        if first:
            samples.append(now - float(first.split(b" ", 1)[0]))
        partial = start[start.rfind(b"\n") + 1 :]

    response = await treq.get(url, unbuffered=True, persistent=False)
    await treq.collect(response, received)
    return size, digest.hexdigest()


async def main(reactor, url: str, count: str) -> None:
    samples: list[float] = []
    results = await defer.gatherResults(
        [defer.ensureDeferred(one_client(url, samples)) for _ in range(int(count))]
    )
    print(json.dumps({"samples": samples, "clients": results}))


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, *sys.argv[1:])))
