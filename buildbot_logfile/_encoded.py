"""
Gzip-encoded answers for finished logs' pages, made once and kept beside
the spool.

A client that accepts C{gzip} (browsers, python-requests, curl
--compressed) gets the page as a gzip file sent as it is: a tenth of the
bytes for a typical log, and the master only copies a file, where it
otherwise inflates the spool and cuts its records for every fetch.  The
file (C{<spool>@text.gz} or C{<spool>@html.gz}) is made in a pool
thread the first time such a client asks, from the spool, while that
client gets the plain answer; the next get the file.  Measured on a
49 MB log (bench_web): 4.8 MB sent, and a hundred such clients hold the
reactor no longer than static.File's do; on localhost the client's own
inflating makes the fetch no faster than the plain page.

The spool is a cache of the database and this file a cache of the
spool: a file is sent only if this process wrote it, it is still the
file written (same inode, size and time), and the spool it was made
from is still the spool.  Anything else -- a file left by an earlier
run, a spool rebuilt or compressed since, a link put in its place -- is
made again, written beside it and renamed into place, so that a link is
replaced, never followed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import IO, Any, NamedTuple, cast

from twisted.internet import defer, threads
from twisted.python import log

from buildbot_logfile import _spool
from buildbot_logfile._finished import BIG_BLOCK, HTMLBody, SlicedProducer, SpoolBlocks, TextBody
from buildbot_logfile._lru import LRU

# Encoded pages this process wrote and remembers; one forgotten is made
# again when next asked for.
REMEMBERED = 4096
# Pages are made one at a time, in the reactor's thread pool, which the
# master's own work shares; at most this many wait their turn (a client
# of another, while they do, gets it plain and asks again next time).
WAITING = 16
_CODING = re.compile(r"\s*([^\s;,]+)\s*(?:;\s*[qQ]\s*=\s*([0-9.]+))?\s*")


def accepts_gzip(accept_encoding: list[bytes] | None) -> bool:
    """Whether a request's C{Accept-Encoding} lines accept gzip (RFC 9110, 12.5.3)."""
    if not accept_encoding:
        return False
    qualities: dict[str, float] = {}
    for item in b",".join(accept_encoding).decode("latin-1").split(","):
        match = _CODING.fullmatch(item)
        if match is None:
            continue
        try:
            quality = float(match.group(2) or 1)
        except ValueError:
            continue
        qualities[match.group(1).lower()] = quality
    quality = qualities.get("gzip", qualities.get("x-gzip", qualities.get("*", 0.0)))
    return quality > 0


class _Identity(NamedTuple):
    """What says a file is the one it was: its inode, size and time."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Identity:
        return cls(st.st_ino, st.st_size, st.st_mtime_ns)


def _spool_identity(spool: str) -> tuple[str, _Identity] | None:
    found = _spool.existing_spool(spool)
    if found is None:
        return None
    try:
        return found, _Identity.of(os.lstat(found))
    except OSError:
        return None


class EncodedPages:
    """
    The encoded pages of a process (every page set of every master in
    it: they are files): which are ready, which are being made, and
    which could not be made from the spool as it is.
    """

    def __init__(self) -> None:
        # encoded file -> (the spool it was made from, and its identity;
        # the encoded file's identity)
        self._written: LRU[str, tuple[tuple[str, _Identity], _Identity]] = LRU(REMEMBERED)
        # encoded file -> the spool it could not be made from
        self._failed: LRU[str, tuple[str, _Identity]] = LRU(REMEMBERED)
        self._making: dict[str, defer.Deferred[None]] = {}
        self._turns = defer.DeferredSemaphore(1)

    @staticmethod
    def path(spool: str, page: str) -> str:
        """The encoded C{page} (C{"text"} or C{"html"}) of the log spooled at C{spool}."""
        return spool + _spool.ENCODED_PAGE_SUFFIXES[page]

    def open(self, spool: str, page: str) -> tuple[Any, int] | None:
        """
        The encoded page, opened, and its size, if it is ready: this
        process wrote it, from the spool as it is now.
        """
        target = self.path(spool, page)
        written = self._written.get(target)
        if written is None or _spool_identity(spool) != written[0]:
            return None
        try:
            fd = _spool.open_no_link(target)
        except OSError:
            return None
        f = os.fdopen(fd, "rb", buffering=0)
        if _Identity.of(os.fstat(fd)) != written[1]:
            f.close()
            return None
        return f, written[1].size

    def make(self, spool: str, page: str, head: bytes, trailer: bytes) -> defer.Deferred[None]:
        """
        Make the encoded page in a pool thread, unless it is being made;
        failures are logged (the plain page is still there).
        """
        target = self.path(spool, page)
        making = self._making.get(target)
        if making is not None:
            return making
        source = _spool_identity(spool)
        if source is None or self._failed.get(target) == source or len(self._making) > WAITING:
            return defer.succeed(None)
        body = HTMLBody() if page == "html" else TextBody()

        def write() -> defer.Deferred[_Identity]:
            return threads.deferToThread(_write, spool, target, body.block, body.end, head, trailer)

        def made(identity: _Identity) -> None:
            self._written.put(target, (source, identity))

        def failed(failure: Any) -> None:
            self._failed.put(target, source)
            if failure.check(*_spool.READ_ERRORS):
                log.msg(f"could not make {target}: {failure.getErrorMessage()}")
            else:
                log.err(failure, f"while making {target}")

        def done(result: Any) -> Any:
            del self._making[target]
            return result

        d = self._turns.run(write)
        making = cast("defer.Deferred[None]", d.addCallbacks(made, failed))
        self._making[target] = making
        making.addBoth(done)
        return making


def _write(
    spool: str,
    target: str,
    block: Callable[[memoryview, list[tuple[int, int, int]]], bytes],
    end: Callable[[], bytes],
    head: bytes,
    trailer: bytes,
) -> _Identity:
    """Write the page gzip-encoded to a new file renamed into C{target}; its identity."""
    blocks = SpoolBlocks(spool, BIG_BLOCK)

    def write(raw: IO[bytes]) -> None:
        with _spool.gzip_writer(raw) as out:
            out.write(head)
            while (records := blocks.read()) is not None:
                out.write(block(*records))
            out.write(end() + trailer)

    try:
        name = os.path.basename(target)
        return _Identity.of(_spool.write_into_place(target, f".{name}.", write, 0o644))
    finally:
        blocks.close()


class FileSender(SlicedProducer):
    """Sends an open file to a twisted.web request, a block a step."""

    def __init__(self, request: Any, f: Any, path: str) -> None:
        super().__init__(request)
        self.file = f
        self.path = path

    def step(self) -> None:
        try:
            data = self.file.read(self.block)
        except OSError as e:
            # The length is promised: the client must see the answer cut.
            log.msg(f"while sending {self.path}: {e}")
            self.cut_short()
            return
        if data:
            self.request.write(data)
            return
        self.finish()

    def close(self) -> None:
        self.file.close()


# The encoded pages of this process.
PAGES = EncodedPages()
