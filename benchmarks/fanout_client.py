"""
N concurrent streaming clients of one live text page, in their own process.

    fanout_client.py URL COUNT [START_AT SPREAD INDEX STRIDE]

The clients speak HTTP/1.1 over a bare protocol rather than treq: a
thousand of them share two cores with the master they measure, so each
costs as little client-side work as it can.  Client C{i} of this process
opens its connection at C{START_AT + (i * STRIDE + INDEX) * SPREAD / total}
(C{total} is C{COUNT * STRIDE}), so several processes of the same run
interleave their arrivals; without those arguments all connect at once.

Per client: its byte count and SHA-256, its time to first byte (from the
connection attempt), and its marks: for each block received, the first
token of the last whole line in it (with the time it came) when that
token changed.  A log whose lines start with a tick number tells the
benchmark when each tick reached the client (see bench_fanout).

Prints C{connected} once every client has its first byte, then one JSON
line.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer, protocol, task
from twisted.web.http import _ChunkedTransferDecoder


class TailClient(protocol.Protocol):
    """One GET of a streamed page: hashes the body, notes its first byte and its marks."""

    def __init__(self, path: bytes) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0
        self.partial = b""
        self.head = b""
        self.decoder: _ChunkedTransferDecoder | None = None
        self.started = time.time()
        self.first_byte: float | None = None
        self.marks: list[tuple[str, float]] = []
        self.error: str | None = None
        self.first_data: defer.Deferred[None] = defer.Deferred()
        # Fires when the answer ends, well or not (see L{error}): one
        # failing client must not cost the figures of the others.
        self.done: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"GET " + self.path + b" HTTP/1.1\r\nHost: bench\r\n\r\n")

    def dataReceived(self, data: bytes) -> None:
        if self.decoder is not None:
            self.decoder.dataReceived(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = self.head[:end], self.head[end + 4 :]
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status or b"transfer-encoding: chunked" not in head.lower():
            self.transport.loseConnection()
            self._end(f"unexpected answer: {head!r}")
            return
        self.decoder = _ChunkedTransferDecoder(self._body, self._finished)
        if rest:
            self.decoder.dataReceived(rest)

    def _body(self, data: bytes) -> None:
        now = time.time()
        if self.first_byte is None:
            self.first_byte = now
            self.first_data.callback(None)
        self.digest.update(data)
        self.size += len(data)
        block = self.partial + data
        last_nl = block.rfind(b"\n")
        if last_nl >= 0:
            line_start = block.rfind(b"\n", 0, last_nl) + 1
            token = block[line_start : block.find(b" ", line_start, last_nl)].decode()
            if not self.marks or self.marks[-1][0] != token:
                self.marks.append((token, now))
        self.partial = block[last_nl + 1 :]

    def _finished(self, rest: bytes) -> None:
        self.transport.loseConnection()
        self._end(None)

    def connectionLost(self, reason: Any = None) -> None:
        self._end(f"connection lost before the end: {reason}")

    def _end(self, error: str | None) -> None:
        if self.done.called:
            return
        if self.first_byte is None:
            self.first_data.callback(None)
        self.error = error
        self.done.callback(None)

    def result(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "sha256": self.digest.hexdigest(),
            "ttfb": None if self.first_byte is None else self.first_byte - self.started,
            "started": self.started,
            "first_byte": self.first_byte,
            "marks": self.marks,
            "error": self.error,
        }


async def one_client(reactor: Any, url: str, at: float) -> TailClient:
    parts = urlsplit(url)
    path = (parts.path + (f"?{parts.query}" if parts.query else "")).encode()
    delay = at - time.time()
    if delay > 0:
        await task.deferLater(reactor, delay, lambda: None)
    client = TailClient(path)
    endpoint_done: defer.Deferred[Any] = protocol.ClientCreator(reactor, lambda: client).connectTCP(
        parts.hostname, parts.port
    )
    await endpoint_done
    return client


async def main(reactor: Any, url: str, count: str, *schedule: str) -> None:
    # One descriptor per client, and a thousand of them may run here.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = int(count)
    start_at, spread, index, stride = (
        (float(schedule[0]), float(schedule[1]), int(schedule[2]), int(schedule[3]))
        if schedule
        else (time.time(), 0.0, 0, 1)
    )
    total = n * stride
    clients = await defer.gatherResults(
        [
            defer.ensureDeferred(
                one_client(reactor, url, start_at + (i * stride + index) * spread / total)
            )
            for i in range(n)
        ]
    )
    await defer.gatherResults([c.first_data for c in clients])
    print("connected", flush=True)
    await defer.gatherResults([c.done for c in clients])
    print(json.dumps({"details": [c.result() for c in clients]}), flush=True)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, *sys.argv[1:])))
