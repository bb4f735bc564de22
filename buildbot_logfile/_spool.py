"""
The spool file underneath a L{LogFile}: how its records reach the disk,
how a finished file is compressed, and how one is opened for reading.

This is where the write path's speed comes from, boxed in so that
C{logfile.py} reads as 0.8's contract.  Every figure quoted here was
measured with C{benchmarks/bench_logfile.py} on ext4.
"""

from __future__ import annotations

import bz2
import ctypes
import gzip
import io
import os
import sys
from collections.abc import Callable
from typing import IO, Any, Union, cast

from twisted.internet import defer, threads
from twisted.python import log

# Compression methods whose files 0.8 can read back; any other configured
# method (zstd, lz4, br, raw) leaves the spool file uncompressed, because a
# spool file must stay readable by 0.8 tools.
COMPRESSION_SUFFIXES = {"bz2": ".bz2", "gz": ".gz"}

# One write takes at most this many records (IOV_MAX on Linux, macOS and
# the BSDs).
_MAX_PIECES = 1024

_Pieces = list[Union[bytes, memoryview]]


def _reserver() -> Callable[[int, int, int], int] | None:
    """
    Linux's C{fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length)}, or None
    where there is none.  Appends into blocks reserved ahead of the end of
    file cost the kernel about a fifth less than appends that allocate as
    they go, and the file's size still ends at its last record.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate64
    except (OSError, AttributeError):
        return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fallocate.restype = ctypes.c_int
    keep_size = 1  # FALLOC_FL_KEEP_SIZE
    return lambda fd, offset, length: int(fallocate(fd, keep_size, offset, length))


reserve_blocks = _reserver()


class SpoolWriter:
    """
    Owns a live log's spool file and writes its records.

    Records wait in memory until C{WRITE_BUFFER} bytes of them are pending,
    then go out in one positional gather-write that ends on a multiple of
    C{WRITE_BUFFER}.  L{flush} writes everything pending; every read of the
    file goes through it first, so a reader sees every record added so far.
    A record is queued before any write, so a write that fails loses
    nothing: the next one writes it again, at the same offset.
    """

    # The page cache takes writes of this size, aligned to it, about a
    # tenth faster than the same bytes at other offsets.
    WRITE_BUFFER = 512 * 1024
    # Disk space reserved ahead of a live log's end (Linux), from the size
    # where a log is likely to grow on.
    RESERVE_MIN = 1024 * 1024
    RESERVE_MAX = 8 * 1024 * 1024

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.file = SharedSpool(self, path)
        # Records not yet written, the first maybe the rest of one that an
        # aligned write cut.
        self._pending: _Pieces = []
        self._written = 0
        # Where the records end, pending ones included.
        self.end = 0
        self._reserved = 0

    def add(self, record: bytes) -> None:
        """Queue one record; write once C{WRITE_BUFFER} bytes are pending."""
        self._pending.append(record)
        end = self.end = self.end + len(record)
        if end - self._written >= self.WRITE_BUFFER or len(self._pending) >= _MAX_PIECES:
            self._write(end - end % self.WRITE_BUFFER)

    def flush(self) -> int:
        """Write every pending record; the offset where the records end."""
        if self._pending:
            self._write(None)
        return self.end

    def open_reader(self) -> IO[bytes]:
        """
        A read handle of its own: a duplicate of the writer's descriptor,
        so that it outlives the writer and reads on if the file is deleted.
        """
        return io.FileIO(os.dup(self.file.fileno()), "r")

    def close(self) -> None:
        """Write everything, give back the reserved blocks, close the file."""
        try:
            self.flush()
            if self._reserved > self.end:
                os.ftruncate(self.file.fileno(), self.end)
        finally:
            self.file.close()

    def _write(self, end: int | None) -> None:
        """
        Write the pending records, or their bytes up to file offset C{end}
        if that is past what is written.
        """
        fd = self.file.fileno()
        if self.end > self._reserved:
            self._reserve(fd)
        pending = self._pending
        rest: _Pieces = []
        if end is None or end <= self._written:
            end = self.end
        else:
            pending, rest = _split_tail(pending, self.end - end)
        _write_at(fd, pending, self._written, end - self._written)
        self._pending = rest
        self._written = end

    def _reserve(self, fd: int) -> None:
        """
        Once the file holds C{RESERVE_MIN} bytes, reserve disk blocks past
        its end: as much again as it holds, at most C{RESERVE_MAX}.
        L{close} gives back what the log did not use.
        """
        if reserve_blocks is None or self._reserved < 0 or self.end < self.RESERVE_MIN:
            return
        ahead = min(self.end, self.RESERVE_MAX)
        if reserve_blocks(fd, self._written, self.end + ahead - self._written) == 0:
            self._reserved = self.end + ahead
        else:
            self._reserved = -1  # not on this file system: write as it comes


class SharedSpool(io.FileIO):
    """
    A live log's spool file as its writer holds it, handed out by
    C{LogFile.getFile()}: any read through it, or a seek from its end,
    writes the pending records first, so a reader sees everything merged so
    far, as it did in 0.8 through the writer's buffered file.
    """

    def __init__(self, writer: SpoolWriter, path: str) -> None:
        super().__init__(path, "w+")
        self._writer = writer

    def read(self, size: int | None = -1) -> bytes:
        self._writer.flush()
        return super().read(size)

    def readall(self) -> bytes:
        self._writer.flush()
        return super().readall()

    def readinto(self, buffer: Any) -> int:
        self._writer.flush()
        return super().readinto(buffer)

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            self._writer.flush()
        return super().seek(pos, whence)


def _split_tail(pieces: _Pieces, tail: int) -> tuple[_Pieces, _Pieces]:
    """C{pieces} as two lists, the second holding their last C{tail} bytes."""
    i = len(pieces)
    while tail > 0:
        i -= 1
        tail -= len(pieces[i])
    head, rest = pieces[:i], pieces[i:]
    if tail < 0:
        straddling = memoryview(rest[0])
        head.append(straddling[:-tail])
        rest[0] = straddling[-tail:]
    return head, rest


def _write_at(fd: int, pieces: _Pieces, offset: int, size: int) -> None:
    """
    Write C{pieces} (C{size} bytes) at C{offset} of C{fd}, all of them.

    One positional gather-write where the platform has it: no copy, and the
    shared handle's position, which readers move, does not matter.
    """
    written = os.pwritev(fd, pieces, offset) if hasattr(os, "pwritev") else 0
    if written < size:
        rest = memoryview(b"".join(pieces))[written:]
        # A reader may be between its seek and its read.
        position = os.lseek(fd, 0, os.SEEK_CUR)
        try:
            os.lseek(fd, offset + written, os.SEEK_SET)
            while rest:
                rest = rest[os.write(fd, rest) :]
        finally:
            os.lseek(fd, position, os.SEEK_SET)


def existing_spool(path: str) -> str | None:
    """The file a finished log at C{path} lives in (0.8 preferred the compressed ones)."""
    for suffix in (".bz2", ".gz", ""):
        if os.path.exists(path + suffix):
            return path + suffix
    return None


def open_spool(path: str) -> IO[bytes]:
    """A finished spool file for reading; compressed files read transparently."""
    found = existing_spool(path) or path
    if found.endswith(".bz2"):
        return cast(IO[bytes], bz2.BZ2File(found, "rb"))
    if found.endswith(".gz"):
        return cast(IO[bytes], gzip.GzipFile(found, "rb"))
    return open(found, "rb")


def compress_spool(path: str, method: str | None) -> defer.Deferred[None]:
    """
    Compress the finished spool file at C{path} with C{bz2} or C{gz} in a
    thread, rename the result into place, then remove the plain file.
    Readers that opened the plain file keep reading it.  Other methods keep
    the file as it is.
    """
    suffix = COMPRESSION_SUFFIXES.get(method or "")
    if suffix is None or not os.path.exists(path):
        return defer.succeed(None)
    compressed = path + suffix + ".tmp"
    opener: Callable[[str, str], IO[bytes]] = (
        bz2.BZ2File if suffix == ".bz2" else gzip.GzipFile  # type: ignore[assignment]
    )

    def compress() -> None:
        with open(path, "rb") as infile, opener(compressed, "wb") as out:
            while buf := infile.read(1024 * 1024):
                out.write(buf)
        os.replace(compressed, path + suffix)
        os.unlink(path)

    def failed(failure: Any) -> Any:
        log.msg(f"failed to compress {path}")
        if os.path.exists(compressed):
            os.unlink(compressed)
        return failure

    return threads.deferToThread(compress).addErrback(failed)
