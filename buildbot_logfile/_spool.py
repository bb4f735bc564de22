"""
The spool file underneath a L{LogFile}: how its records reach the disk,
how a finished file is compressed, and how one is opened for reading.

This is where the write path's speed comes from, boxed in so that
C{logfile.py} reads as 0.8's contract.  Every figure quoted here was
measured with C{benchmarks/bench_logfile.py} on ext4.
"""

from __future__ import annotations

import bz2
import contextlib
import ctypes
import glob
import io
import os
import stat
import sys
import tempfile
import zlib
from collections.abc import Callable
from typing import IO, Any, Union, cast

from twisted.internet import defer, threads
from twisted.python import log

from buildbot_logfile._records import LogFileFormatError, iter_records

try:
    # ISA-L's gzip reader inflates two to five times faster than zlib's,
    # which bounds how fast a compressed log's page can go; its writer
    # deflates a log ten times faster than zlib's level 9, for a file a few
    # per cent larger (a master compresses every log it mirrors, on the
    # cores its builds use).  Both are plain gzip, as 0.8 read and wrote.
    from isal import isal_zlib
    from isal.igzip import GzipFile as GzipReader
    from isal.igzip import GzipFile as GzipWriter

    # What ISA-L raises for a damaged stream: not a zlib.error.
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (cast("type[Exception]", isal_zlib.error),)
except ImportError:  # pragma: no cover - isal is a dependency; zlib still reads
    from gzip import GzipFile as GzipReader  # type: ignore[assignment]
    from gzip import GzipFile as GzipWriter  # type: ignore[assignment]

    _INFLATE_ERRORS = ()

# Compression methods whose files 0.8 can read back; any other configured
# method (zstd, lz4, br, raw) leaves the spool file uncompressed, because a
# spool file must stay readable by 0.8 tools.
COMPRESSION_SUFFIXES = {"bz2": ".bz2", "gz": ".gz"}

# The gzip-encoded pages that _encoded keeps beside a finished log's
# spool: a new spool of that name takes them away.  No spool's name holds
# "@" (0.8's names keep letters, digits, "_", "." and "-"), so no log's
# spool can be taken for another's page.
ENCODED_PAGE_SUFFIXES = {"text": "@text.gz", "html": "@html.gz"}

# One write takes at most this many records (IOV_MAX on Linux, macOS and
# the BSDs).
_MAX_PIECES = 1024

_Pieces = list[Union[bytes, memoryview]]

# What reading a damaged spool file can raise: a bad record, a bad
# compressed stream (gzip and bz2 raise OSError, EOFError or zlib.error;
# ISA-L's reader its own error), or the file system.
READ_ERRORS: tuple[type[Exception], ...] = (
    LogFileFormatError,
    OSError,
    EOFError,
    zlib.error,
    *_INFLATE_ERRORS,
)


class SpoolUnavailable(OSError):
    """A log's spool file cannot be read or written; the database still has the log."""


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

    The spool is a cache: when the file cannot be opened or written (a full
    disk, a read-only directory, a symbolic link in the way of the
    builder's directory), the writer says why once through C{on_failure},
    removes what it wrote, and drops every record from then on; it never
    raises into the log.
    """

    # The page cache takes writes of this size, aligned to it, about a
    # tenth faster than the same bytes at other offsets.
    WRITE_BUFFER = 512 * 1024
    # Disk space reserved ahead of a live log's end (Linux), from the size
    # where a log is likely to grow on.
    RESERVE_MIN = 1024 * 1024
    RESERVE_MAX = 8 * 1024 * 1024

    def __init__(self, path: str, on_failure: Callable[[OSError], None]) -> None:
        self.path = path
        self.failure: OSError | None = None
        self._on_failure = on_failure
        # Records not yet written, the first maybe the rest of one that an
        # aligned write cut.
        self._pending: _Pieces = []
        self._written = 0
        # Where the records end, pending ones included.
        self.end = 0
        self._reserved = 0
        self.file: SharedSpool | None = None
        try:
            self.file = SharedSpool(self, _create(path))
        except OSError as e:
            self._fail(e)

    def add(self, record: bytes) -> None:
        """Queue one record; write once C{WRITE_BUFFER} bytes are pending."""
        if self.failure is not None:
            return
        self._pending.append(record)
        end = self.end = self.end + len(record)
        if end - self._written >= self.WRITE_BUFFER or len(self._pending) >= _MAX_PIECES:
            self._write(end - end % self.WRITE_BUFFER)

    def flush(self) -> int:
        """
        Write every pending record; the offset where the records end.
        Raises L{SpoolUnavailable} once the file has failed.
        """
        if self._pending:
            self._write(None)
        if self.failure is not None:
            raise SpoolUnavailable(f"{self.path}: {self.failure}")
        return self.end

    def open_reader(self) -> IO[bytes]:
        """
        A read handle of its own: a duplicate of the writer's descriptor,
        so that it outlives the writer and reads on if the file is deleted.
        """
        self.flush()
        assert self.file is not None
        return io.FileIO(os.dup(self.file.fileno()), "r")

    def intact(self) -> bool:
        """Whether the file still holds all that was written to it (none cut it short)."""
        if self.file is None:
            return False
        try:
            return os.fstat(self.file.fileno()).st_size >= self._written
        except OSError:
            return False

    def close(self) -> None:
        """Write everything, give back the reserved blocks, close the file."""
        if self.file is None:
            return
        try:
            self.flush()
            if self._reserved > self.end:
                os.ftruncate(self.file.fileno(), self.end)
        except OSError as e:
            self._fail(e)
        finally:
            if self.file is not None:
                self.file.close()

    def abandon(self, reason: Exception) -> None:
        """Stop using the file: a reader found it damaged."""
        self._fail(SpoolUnavailable(f"{self.path}: {reason}"), tell=False)

    def _fail(self, failure: OSError, *, tell: bool = True) -> None:
        """Stop writing, for good: remove what was written, say why once."""
        if self.failure is not None:
            return
        self.failure = failure
        self._pending = []
        if self.file is not None:
            file, self.file = self.file, None
            try:
                # Only our own file: whatever may have replaced it stays.
                if os.path.samestat(os.fstat(file.fileno()), os.lstat(self.path)):
                    os.unlink(self.path)
            except OSError:
                pass
            file.close()
        if tell:
            self._on_failure(failure)

    def _write(self, end: int | None) -> None:
        """
        Write the pending records, or their bytes up to file offset C{end}
        if that is past what is written.
        """
        assert self.file is not None
        fd = self.file.fileno()
        if self.end > self._reserved:
            self._reserve(fd)
        pending = self._pending
        rest: _Pieces = []
        if end is None or end <= self._written:
            end = self.end
        else:
            pending, rest = _split_tail(pending, self.end - end)
        try:
            _write_at(fd, pending, self._written, end - self._written)
        except OSError as e:
            self._fail(e)
            return
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

    def __init__(self, writer: SpoolWriter, fd: int) -> None:
        super().__init__(fd, "w+")
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


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _create(path: str) -> int:
    """
    A new, empty spool file at C{path}, opened for reading and writing.
    What stands there (a file, a link) is replaced, never written
    through nor emptied in place: a reader that still holds an earlier
    spool of that name (a page paused as its service went) keeps reading
    that one.  The builder's directory must not be a link either.  A
    compressed spool of an earlier log of that name goes: readers prefer
    it to the plain file; and so do its encoded pages.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    check_directory(path)
    for suffix in ("", *COMPRESSION_SUFFIXES.values(), *ENCODED_PAGE_SUFFIXES.values()):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    return os.open(path, flags, 0o644)


def check_directory(path: str) -> None:
    """
    Refuse a spool path whose builder directory is a link: spool files
    live under C{logdir} only, and this project makes the builder
    directories itself.  (The last part of a path is opened without
    following links; this is the part before it.)
    """
    if _in_linked_directory(path):
        directory = os.path.dirname(path)
        raise SpoolUnavailable(f"{directory} is a symbolic link; not going through it")


def _in_linked_directory(path: str) -> bool:
    return os.path.islink(os.path.dirname(path))


def existing_spool(path: str) -> str | None:
    """
    The regular file a finished log at C{path} lives in (0.8 preferred the
    compressed ones); links do not count, nor does a builder directory
    that is one.
    """
    if _in_linked_directory(path):
        return None
    for suffix in (".bz2", ".gz", ""):
        try:
            if stat.S_ISREG(os.lstat(path + suffix).st_mode):
                return path + suffix
        except OSError:
            continue
    return None


def open_no_link(path: str) -> int:
    """
    A regular file opened for reading, never through a link, and never
    waiting on what is no file (opening a FIFO put in its place would
    block until something writes to it).
    """
    directory, name = os.path.split(path)
    # Opened as the directory it is now, not through a link put in its
    # place between a check and the open.
    try:
        dir_fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError:
        check_directory(path)  # says so, if a link is why
        raise
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SpoolUnavailable(f"{path}: not a regular file")
    return fd


def open_spool_file(path: str) -> tuple[io.FileIO, str]:
    """
    The file a finished log at C{path} lives in, opened as it is on disk
    (compressed or not), never through a link, and its path (the suffix
    says how it is compressed).
    """
    found = existing_spool(path)
    if found is None:
        raise SpoolUnavailable(f"{path}: no spool file")
    return io.FileIO(open_no_link(found), "r"), found


def gzip_writer(fileobj: IO[bytes]) -> IO[bytes]:
    """A gzip file writing to C{fileobj}, through the fastest writer there is."""
    return cast(IO[bytes], GzipWriter(fileobj=fileobj, mode="wb"))


def open_spool(path: str) -> IO[bytes]:
    """
    A finished spool file for reading, never through a link; compressed
    files read transparently.
    """
    raw, found = open_spool_file(path)
    if found.endswith(".bz2"):
        return cast(IO[bytes], bz2.BZ2File(raw, "rb"))
    if found.endswith(".gz"):
        return cast(IO[bytes], GzipReader(fileobj=raw, mode="rb"))
    return raw


def spool_holds(path: str, num_lines: int) -> bool:
    """
    Whether the finished spool at C{path} (plain or compressed) holds a
    whole log of C{num_lines} lines: every record parses, to the end, and
    its text has as many newlines as the database has lines (each line of
    a log ends in one).  For a plain file, blocks reserved past its end by
    a writer that never finished (a crash) are given back.  Runs in a
    thread: it reads the whole file.
    """
    found = existing_spool(path)
    if found is None:
        return False
    newlines = 0
    try:
        with open_spool(path) as f:
            for _, data, _ in iter_records(f, 0, None, 1024 * 1024, found, strict=True):
                newlines += data.tobytes().count(b"\n")
        if found == path:
            _give_back_reserved(path)
    except READ_ERRORS:
        return False
    return newlines == num_lines


def _give_back_reserved(path: str) -> None:
    st = os.lstat(path)
    if st.st_blocks * 512 > st.st_size + SpoolWriter.RESERVE_MIN // 2:
        os.truncate(path, st.st_size)  # frees the blocks past the end


def write_into_place(
    target: str, prefix: str, write: Callable[[IO[bytes]], None], mode: int
) -> os.stat_result:
    """
    Write a new file with C{write} under a name of its own beside C{target}
    (C{prefix}, random letters, C{.tmp}: made afresh, never a link someone
    put at a fixed name, which would be written through), then rename it
    into C{target}; the stat of the file written, not of whatever the
    target is after the rename.  What a crash left under C{prefix} goes
    first (one write at a time per target).
    """
    directory = os.path.dirname(target)
    check_directory(target)
    for left in glob.glob(os.path.join(glob.escape(directory), glob.escape(prefix) + "*.tmp")):
        os.unlink(left)
    fd, temporary = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw:
            os.fchmod(raw.fileno(), mode)
            write(raw)
        written = os.lstat(temporary)
        os.replace(temporary, target)
        return written
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _compressor(suffix: str, raw: IO[bytes]) -> IO[bytes]:
    if suffix == ".bz2":
        return cast(IO[bytes], bz2.BZ2File(raw, "wb"))
    return gzip_writer(raw)


def compress_spool(path: str, method: str | None) -> defer.Deferred[None]:
    """
    Compress the finished spool file at C{path} with C{bz2} or C{gz} in a
    thread, rename the result into place, then remove the plain file.
    Readers that opened the plain file keep reading it.  Other methods keep
    the file as it is.
    """
    suffix = COMPRESSION_SUFFIXES.get(method or "")
    if suffix is None or existing_spool(path) != path:
        return defer.succeed(None)  # none to compress, or not a file of its own
    name = os.path.basename(path)

    def compress() -> None:
        # An earlier version wrote at a fixed name: what it left goes.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix + ".tmp")
        with io.FileIO(open_no_link(path), "r") as infile:

            def write(raw: IO[bytes]) -> None:
                with _compressor(suffix, raw) as out:
                    while buf := infile.read(1024 * 1024):
                        out.write(buf)

            mode = stat.S_IMODE(os.fstat(infile.fileno()).st_mode)
            # "@" is in no spool file's name, nor "compress" in the encoded
            # pages' names after it: no other file's leftovers match.
            write_into_place(path + suffix, f".{name}{suffix}@compress.", write, mode)
        os.unlink(path)

    def failed(failure: Any) -> Any:
        if failure.check(OSError):
            # The spool is a cache: the plain file stays, and is read.
            log.msg(f"could not compress {path}: {failure.getErrorMessage()}")
            return None
        log.msg(f"failed to compress {path}")
        return failure

    return threads.deferToThread(compress).addErrback(failed)
