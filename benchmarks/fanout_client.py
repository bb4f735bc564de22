"""
N concurrent streaming clients of one live text page, in their own process.

    fanout_client.py URL COUNT [START_AT SPREAD INDEX STRIDE]

A thousand clients share two cores with the master they measure, and every
core-second they take is one the master does not get: what they cost shows
in the figures as the master's lateness.  So they are bare HTTP/1.1 over
non-blocking sockets and one epoll loop that handles each receive whole:
as Twisted protocols with its chunked decoder they took 1.6 times the CPU
for the same run, and the master's time to first byte p99 was 211-268 ms
against 167-216 ms (three runs each).

Client C{i} of this process opens its connection at C{START_AT + (i *
STRIDE + INDEX) * SPREAD / total} (C{total} is C{COUNT * STRIDE}), so
several processes of the same run interleave their arrivals; without those
arguments all connect at once.

Per client: its byte count and SHA-256 of the body, its time to first byte
(from the connection attempt), and its marks: for each receive, the first
token of the last whole line in it (with the time it came) when that token
changed.  A log whose lines start with a tick number tells the benchmark
when each tick reached the client (see bench_fanout).

Prints C{connected} once every client has its first byte (or has ended),
then one JSON line once every answer has ended.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import json
import resource
import select
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

RECEIVE_BYTES = 256 * 1024


class TailClient:
    """One GET of a streamed page, fed what its socket receives."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.sock: socket.socket | None = None
        self.digest = hashlib.sha256()
        self.size = 0
        self.started = 0.0
        self.first_byte: float | None = None
        self.marks: list[tuple[str, float]] = []
        self.error: str | None = None
        self.ended = False
        self._head: bytes | None = b""  # None once the head is read
        self._pending = b""  # an unfinished chunk-size line or CRLF
        self._left = 0  # bytes of the current chunk still to come
        self._crlf = False  # the CRLF after a chunk's data is due
        self._partial = b""  # the last, unfinished line of the body

    def connect(self, address: tuple[str, int]) -> socket.socket:
        sock = self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.started = time.time()
        err = sock.connect_ex(address)
        if err not in (0, errno.EINPROGRESS):
            self.end(f"connect: {errno.errorcode.get(err, err)}")
        return sock

    def connected(self) -> None:
        assert self.sock is not None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.end(f"connect: {errno.errorcode.get(err, err)}")
            return
        try:
            self.sock.sendall(self.request)  # a few dozen bytes: the buffer takes them
        except OSError as e:
            self.end(f"send: {e}")

    def received(self, data: bytes, now: float) -> None:
        if self._head is not None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end], self._head[end + 4 :]
            self._head = None
            status = head.split(b"\r\n", 1)[0]
            if b" 200 " not in status or b"transfer-encoding: chunked" not in head.lower():
                self.end(f"unexpected answer: {head!r}")
                return
        body = self._chunks(self._pending + data if self._pending else data)
        if body:
            self._body(body, now)

    def _chunks(self, buf: bytes) -> bytes:
        """The body bytes in C{buf}, chunk framing taken off; the end noted."""
        parts: list[bytes] = []
        pos, size = 0, len(buf)
        self._pending = b""
        while pos < size and not self.ended:
            if self._left:
                take = min(self._left, size - pos)
                parts.append(buf[pos : pos + take])
                pos += take
                self._left -= take
                self._crlf = not self._left
            elif self._crlf:
                if size - pos < 2:
                    self._pending = buf[pos:]
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    self.end("chunk data not followed by CRLF")
                    break
                pos += 2
                self._crlf = False
            else:
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    self._pending = buf[pos:]
                    break
                try:
                    chunk_size = int(buf[pos:line_end].split(b";", 1)[0], 16)
                except ValueError:
                    self.end(f"bad chunk size line {buf[pos:line_end]!r}")
                    break
                pos = line_end + 2
                if chunk_size == 0:
                    self.end(None)  # the last chunk: the answer is whole
                    break
                self._left = chunk_size
        return b"".join(parts)

    def _body(self, data: bytes, now: float) -> None:
        if self.first_byte is None:
            self.first_byte = now
        self.digest.update(data)
        self.size += len(data)
        block = self._partial + data
        last_nl = block.rfind(b"\n")
        if last_nl >= 0:
            line_start = block.rfind(b"\n", 0, last_nl) + 1
            token = block[line_start : block.find(b" ", line_start, last_nl)].decode()
            if not self.marks or self.marks[-1][0] != token:
                self.marks.append((token, now))
        self._partial = block[last_nl + 1 :]

    def end(self, error: str | None) -> None:
        """The answer ended (C{error}: how, if not whole); the loop closes the socket."""
        if not self.ended:
            self.ended = True
            self.error = error

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


def main(url: str, count: str, *schedule: str) -> None:
    # One descriptor per client, and a thousand of them may run here.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    address = (parts.hostname, parts.port)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    n = int(count)
    start_at, spread, index, stride = (
        (float(schedule[0]), float(schedule[1]), int(schedule[2]), int(schedule[3]))
        if schedule
        else (time.time(), 0.0, 0, 1)
    )
    total = n * stride
    clients = [TailClient(request) for _ in range(n)]
    arrivals = [(start_at + (i * stride + index) * spread / total, i) for i in range(n)]
    heapq.heapify(arrivals)
    poller = select.epoll()
    by_fd: dict[int, TailClient] = {}
    connecting: set[int] = set()
    # Clients without a first byte that may still get one.
    awaited = n
    said_connected = False

    def serve(client: TailClient, fd: int) -> None:
        if fd in connecting:
            connecting.discard(fd)
            client.connected()
            if not client.ended:
                poller.modify(fd, select.EPOLLIN)
            return
        assert client.sock is not None
        try:
            data = client.sock.recv(RECEIVE_BYTES)
        except OSError as e:
            client.end(f"receive: {e}")
            return
        if data:
            client.received(data, time.time())
        else:
            client.end("connection lost before the end")

    while arrivals or by_fd:
        if not said_connected and not awaited:
            said_connected = True
            print("connected", flush=True)
        timeout = max(0.0, arrivals[0][0] - time.time()) if arrivals else -1
        for fd, _ in poller.poll(timeout):
            client = by_fd[fd]
            waiting = client.first_byte is None
            serve(client, fd)
            if waiting and (client.first_byte is not None or client.ended):
                awaited -= 1
            if client.ended:
                poller.unregister(fd)
                del by_fd[fd]
                assert client.sock is not None
                client.sock.close()
        now = time.time()
        while arrivals and arrivals[0][0] <= now:
            client = clients[heapq.heappop(arrivals)[1]]
            sock = client.connect(address)
            if client.ended:
                awaited -= 1
                sock.close()
            else:
                by_fd[sock.fileno()] = client
                connecting.add(sock.fileno())
                poller.register(sock.fileno(), select.EPOLLOUT)
    if not said_connected:
        print("connected", flush=True)
    print(json.dumps({"details": [c.result() for c in clients]}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
