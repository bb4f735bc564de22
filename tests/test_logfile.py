"""LogFile: the 0.8 on-disk format, methods, truncation and compression."""

from __future__ import annotations

import bz2
import copy
import gzip
import io
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from buildbot_logfile import _spool
from buildbot_logfile._records import iter_records
from buildbot_logfile._spool import SpoolWriter
from buildbot_logfile.logfile import (
    HEADER,
    STDERR,
    STDOUT,
    ChunkTypes,
    HTMLLogFile,
    LogFile,
    LogFileFormatError,
    SpoolUnavailable,
)
from tests.support import RecordingConsumer, make_step, merged, run_until_idle

WRITE_BUFFER = SpoolWriter.WRITE_BUFFER
RESERVE_MIN = SpoolWriter.RESERVE_MIN


def new_log(tmp_path: Path, name: str = "stdio", **config) -> LogFile:
    return LogFile(make_step(tmp_path, **config), name, "1-log-shell-stdio")


def spool(lf: LogFile) -> bytes:
    return Path(lf.getFilename()).read_bytes()


def test_channels() -> None:
    assert (STDOUT, STDERR, HEADER) == (0, 1, 2)
    assert ChunkTypes == ["stdout", "stderr", "header"]


def test_netstring_format(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    lf.addStdout("hello world!")
    lf.finish()
    assert spool(lf) == b"13:0hello world!,"


def test_file_location(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    assert lf.getFilename() == os.path.join(str(tmp_path), "1-log-shell-stdio")
    assert lf.getName() == "stdio"
    assert lf.getStep().build.builder.basedir == str(tmp_path)


def test_runs_of_one_channel_merge(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    lf.addHeader("cmd\n")
    lf.addStdout("a")
    lf.addStdout("bc")
    lf.addStderr("E")
    lf.addStdout("d")
    lf.finish()
    assert spool(lf) == b"5:2cmd\n,4:0abc,2:1E,2:0d,"
    assert lf.length == 9


def test_a_run_of_ascii_other_text_and_bytes_is_one_record(tmp_path: Path) -> None:
    # ASCII text waits in the run as it is, anything else encoded: the run
    # reads the same, live and on disk, whatever it holds.
    lf = new_log(tmp_path)
    lf.addStdout("plain ")
    lf.addStdout("‘quoted’ ")
    lf.addStdout(b"bytes \xe2\x98\x83 ")
    clock = Clock()
    consumer = RecordingConsumer()
    lf.subscribeConsumer(consumer, clock)
    run_until_idle(clock)
    lf.addStdout(b"bad \xff ")
    lf.addStdout("end")
    text = "plain ‘quoted’ bytes ☃ bad \ufffd end"
    assert lf.getText() == text
    assert "".join(t for _, t in consumer.chunks) == text
    lf.addStderr("!")
    data = text.encode()
    assert list(lf.getChunks()) == [(STDOUT, text), (STDERR, "!")]
    lf.finish()
    assert spool(lf) == b"%d:0%s,2:1!," % (len(data) + 1, data)
    assert lf.length == len(data) + 1


def test_records_hold_at_most_chunksize_bytes(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    lf.addStdout("x" * 25000)
    lf.finish()
    assert spool(lf) == (
        b"10001:0"
        + b"x" * 10000
        + b","
        + b"10001:0"
        + b"x" * 10000
        + b","
        + b"5001:0"
        + b"x" * 5000
        + b","
    )


def test_records_never_split_a_character(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    text = "a" + "\u00e9" * 6000  # byte 10000 falls inside an e-acute
    lf.addStdout(text)
    lf.finish()
    data = spool(lf)
    first = b"a" + "\u00e9".encode() * 4999
    assert data.startswith(b"10000:0" + first + b",")
    rest = "\u00e9".encode() * 1001
    assert data == b"10000:0" + first + b"," + b"%d:0" % (len(rest) + 1) + rest + b","
    assert lf.getText() == text


def test_many_small_entries_and_records(tmp_path: Path) -> None:
    # Runs of many tiny entries, and more records than one write takes.
    lf = new_log(tmp_path)
    for _ in range(3000):
        lf.addStdout("o")
    for i in range(3000):
        lf.addEntry(1 - i % 2, "ab")
    lf.addStdout("x" * (3 * WRITE_BUFFER))
    lf.finish()
    # The last "ab" is stdout: it and the x's are one run, cut every 10,000 bytes, as 0.8 cut it.
    run = b"ab" + b"x" * (3 * WRITE_BUFFER)
    cut = [run[i : i + 10000] for i in range(0, len(run), 10000)]
    assert spool(lf) == (
        b"3001:0"
        + b"o" * 3000
        + b","
        + b"3:1ab,3:0ab," * 1499
        + b"3:1ab,"
        + b"".join(b"%d:0%s," % (len(piece) + 1, piece) for piece in cut)
    )


@pytest.mark.parametrize("short", [0, 1, 7, 20000])
def test_short_and_missing_positional_writes_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short: int
) -> None:
    # A gather-write may write less than asked (a signal, a full disk
    # freeing up); some platforms have none at all.
    if short:
        real = os.pwritev
        monkeypatch.setattr(
            os, "pwritev", lambda fd, pieces, offset: real(fd, pieces, offset) and short
        )
    else:
        monkeypatch.delattr(os, "pwritev")
    lf = new_log(tmp_path)
    records = []
    for i in range(200):
        text = f"{i:04d}" * 300
        lf.addEntry(i % 3, text)
        records.append(b"%d:%d" % (len(text) + 1, i % 3) + text.encode() + b",")
    f = lf.getFile()
    f.seek(0)
    assert f.read() == b"".join(records[:-1])  # the last is the pending run
    lf.finish()
    assert spool(lf) == b"".join(records)


def test_writes_end_on_multiples_of_the_write_buffer(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    records = []
    on_disk = []
    with open(lf.getFilename(), "rb") as outside:  # sees only what is written
        for i in range(700):
            text = f"{i:05d}é" * (i % 7 * 230 + 1)  # one record each
            lf.addEntry(i % 2, text)
            records.append(b"%d:%d" % (len(text.encode()) + 1, i % 2) + text.encode() + b",")
            outside.seek(0)
            on_disk.append(outside.read())
    expected = b"".join(records)
    sizes = sorted({len(d) for d in on_disk})
    assert sizes == [n * WRITE_BUFFER for n in range(len(sizes))]
    assert len(sizes) == len(expected) // WRITE_BUFFER + 1
    assert all(expected.startswith(d) for d in on_disk)
    lf.finish()
    assert spool(lf) == expected


def test_a_spool_that_cannot_be_written_is_given_up_not_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk: nothing raises into the log's writer, watchers and
    # followers get every entry, the partial file is removed (its space
    # given back), and reading the text says it cannot.
    def pwritev(fd, pieces, offset):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwritev", pwritev)
    clock = Clock()
    lf = new_log(tmp_path)
    watcher = Watcher()
    lf.subscribe(watcher, False)
    follower = RecordingConsumer()
    lf.subscribeConsumer(follower, clock)
    run_until_idle(clock)
    texts = [f"{i:04d}" * 2500 for i in range(300)]  # one record each, 3 MB
    for text in texts:
        lf.addEntry(STDOUT, text)
    assert not lf.spooled
    assert isinstance(lf.spool_failure, OSError)
    assert not os.path.exists(lf.getFilename())
    assert not lf.hasContents()
    with pytest.raises(SpoolUnavailable, match="No space left on device"):
        lf.getText()
    lf.finish()
    assert [s[-1] for s in watcher.seen] == texts
    assert merged(follower.chunks) == [(STDOUT, "".join(texts))]
    assert follower.finished
    assert lf.length == sum(map(len, texts))


def test_a_spool_that_cannot_be_opened_is_given_up_not_the_log(tmp_path: Path) -> None:
    (tmp_path / "readonly").mkdir()
    os.chmod(tmp_path / "readonly", 0o500)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the builder's directory should be")
    for basedir in (tmp_path / "readonly", blocked):
        lf = LogFile(make_step(basedir), "stdio", "1-log-s-stdio")
        if os.geteuid() == 0 and basedir.name == "readonly":
            assert lf.spooled  # root writes anyway
        else:
            assert not lf.spooled
        watcher = Watcher()
        lf.subscribe(watcher, False)
        lf.addStdout("kept for the watcher")
        lf.finish()
        assert [s[-1] for s in watcher.seen] == ["kept for the watcher"]


def test_a_linked_spool_is_replaced_never_written_through(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"not a log")
    builder = tmp_path / "builder"
    builder.mkdir()
    (builder / "1-log-s-stdio").symlink_to(target)
    lf = LogFile(make_step(builder), "stdio", "1-log-s-stdio")
    lf.addStdout("text")
    lf.finish()
    assert target.read_bytes() == b"not a log"
    assert not (builder / "1-log-s-stdio").is_symlink()
    assert spool(lf) == b"5:0text,"
    linked = tmp_path / "linked"
    linked.symlink_to(builder)  # a builder directory that is a link
    lf = LogFile(make_step(linked), "stdio", "2-log-s-stdio")
    assert not lf.spooled
    assert not (builder / "2-log-s-stdio").exists()


def test_a_new_spool_of_a_name_leaves_a_reader_of_the_old_one_its_file(tmp_path: Path) -> None:
    # A page paused on a log whose service went, as the next one spools
    # the log again under the same name.
    old = new_log(tmp_path)
    old.addStdout("the old spool's text\n")
    reader = old.open_reader()
    old.cut_off(RuntimeError("the service stopped"))
    new = new_log(tmp_path)
    new.addStdout("new\n")
    new.finish()
    assert spool(new) == b"5:0new\n,"
    reader.seek(0)
    assert reader.read() == b"22:0the old spool's text\n,"
    reader.close()


def test_the_shared_handle_sees_every_record_merged_so_far(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    f = lf.getFile()
    lf.addStdout("one\n")
    lf.addStderr("two\n")  # stdout's run becomes a record, held in memory
    f.seek(0)
    assert f.read() == b"5:0one\n,"
    lf.addStdout("three\n")
    assert f.seek(0, os.SEEK_END) == 16
    f.seek(0)
    assert f.readline() == b"5:0one\n"
    buf = bytearray(100)
    f.seek(8)
    assert buf[: f.readinto(buf)] == b"5:1two\n,"
    lf.finish()


@pytest.mark.parametrize("reserver", ["platform", "none", "failing"])
def test_space_reserved_ahead_is_given_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reserver: str
) -> None:
    if reserver == "none":
        monkeypatch.setattr(_spool, "reserve_blocks", None)
    elif reserver == "failing":
        monkeypatch.setattr(_spool, "reserve_blocks", lambda fd, offset, length: -1)
    lf = new_log(tmp_path)
    text = "r" * 999 + "\n"
    record = b"10001:0" + text.encode() * 10 + b","
    for _ in range(3 * RESERVE_MIN // 10000):
        for _ in range(10):
            lf.addStdout(text)
    f = lf.getFile()
    f.seek(0)
    live = f.read()
    # The reserved blocks lie past the end of file: readers never see them.
    assert os.path.getsize(lf.getFilename()) == len(live)
    assert live == record * (len(live) // len(record))
    reserved = os.stat(lf.getFilename()).st_blocks * 512 - len(live)
    if reserver == "platform":  # Linux's fallocate, on this ext4
        assert reserved >= RESERVE_MIN
    else:
        assert reserved < RESERVE_MIN
    lf.finish()
    data = spool(lf)
    assert data == record * (3 * RESERVE_MIN // 10000)
    assert os.stat(lf.getFilename()).st_blocks * 512 < len(data) + RESERVE_MIN


def test_text_of_another_type_is_rejected(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    with pytest.raises(TypeError, match="log text must be str or bytes, not int"):
        lf.addStdout(5)  # type: ignore[arg-type]
    lf.addStdout(bytearray(b"ok"))
    lf.finish()
    assert spool(lf) == b"3:0ok,"


def test_channel_of_ten_is_rejected(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    with pytest.raises(ValueError, match="single decimal digit, not 10"):
        lf.addEntry(10, "x")
    with pytest.raises(ValueError, match="single decimal digit, not -1"):
        lf.addEntry(-1, "x")
    lf.addEntry(9, "ok")
    lf.finish()
    assert spool(lf) == b"3:9ok,"


def test_bytes_in_are_decoded_with_replacement(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    lf.addStdout(b"ok \xff\xfe end")
    lf.finish()
    assert lf.getText() == "ok \ufffd\ufffd end"
    assert spool(lf) == b"14:0ok \xef\xbf\xbd\xef\xbf\xbd end,"


def test_text_accessors(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    added = [lf.addHeader("H\n"), lf.addStdout("line 1\nline "), lf.addStderr("err\r\n")]
    lf.addStdout("2\x0c\n\u2603 3")
    finished = lf.finish()
    # 0.8 returned already-fired Deferreds
    assert [d.result for d in (*added, finished)] == [None] * 4
    assert lf.getText() == "line 1\nline err\r\n2\x0c\n\u2603 3"
    assert lf.getTextWithHeaders() == "H\nline 1\nline err\r\n2\x0c\n\u2603 3"
    # only \\n ends a line, as for 0.8's StringIO.readlines
    assert lf.readlines() == ["line 1\n", "line 2\x0c\n", "\u2603 3"]
    assert lf.readlines(STDERR) == ["err\r\n"]  # 0.8.0-0.8.7 took the channel
    assert list(lf.getChunks()) == [
        (HEADER, "H\n"),
        (STDOUT, "line 1\nline "),
        (STDERR, "err\r\n"),
        (STDOUT, "2\x0c\n\u2603 3"),
    ]
    assert list(lf.getChunks([STDERR], onlyText=True)) == ["err\r\n"]
    assert isinstance(lf.getFile().read(), bytes)


def test_getchunks_is_a_snapshot(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    lf.addStdout("one")
    lf.addStderr("two")
    chunks = lf.getChunks()
    lf.addStderr("three")
    lf.addStdout("four")
    assert list(chunks) == [(STDOUT, "one"), (STDERR, "two")]
    # a snapshot taken mid-iteration keeps to its own moment too
    it = lf.getChunks()
    assert next(it) == (STDOUT, "one")
    lf.addStdout("five")
    assert list(it) == [(STDERR, "twothree"), (STDOUT, "four")]


def test_live_getchunks_sees_pending_run(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    lf.addStdout("a")
    assert spool(lf) == b""  # still pending in the run
    assert lf.getText() == "a"


def test_has_contents_and_finished(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    assert lf.hasContents()
    assert not lf.isFinished()
    d = lf.waitUntilFinished()
    results = []
    d.addCallback(results.append)
    lf.finish()
    assert results == [lf]
    assert lf.isFinished()
    assert lf.waitUntilFinished().result is lf
    os.unlink(lf.getFilename())
    assert not lf.hasContents()


class Watcher:
    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def logChunk(self, build, step, log, channel, text) -> None:
        self.seen.append((build, step, log, channel, text))


def test_watchers(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    lf.addStdout("before ")
    w = Watcher()
    lf.subscribe(w, True)
    lf.addStderr("after")
    lf.unsubscribe(w)
    lf.addStdout("unseen")
    step = lf.getStep()
    assert w.seen == [
        (step.build, step, lf, STDOUT, "before "),
        (step.build, step, lf, STDERR, "after"),
    ]
    lf.finish()
    late = Watcher()
    lf.subscribe(late, True)
    assert late.seen == []
    assert late not in lf.watchers


def test_a_watcher_that_raises_loses_nothing(tmp_path: Path) -> None:
    class Broken:
        def logChunk(self, *args) -> None:
            raise RuntimeError("boom")

    lf = new_log(tmp_path)
    lf.subscribe(Broken(), False)
    w = Watcher()
    lf.subscribe(w, False)
    lf.addStdout("kept")
    lf.finish()
    assert lf.getText() == "kept"
    assert [s[-1] for s in w.seen] == ["kept"]


class TrialFlush(unittest.TestCase):
    def test_raising_watcher_is_logged(self) -> None:
        class Broken:
            def logChunk(self, *args) -> None:
                raise RuntimeError("boom")

        lf = LogFile(make_step(self.mktemp()), "stdio", "f")
        lf.subscribe(Broken(), False)
        lf.addStdout("x")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


def test_log_max_size(tmp_path: Path) -> None:
    lf = new_log(tmp_path, logMaxSize=10)
    w = Watcher()
    lf.subscribe(w, False)
    lf.addHeader("head\n")
    lf.addStdout("0123456")
    lf.addStderr("789abc")
    lf.addStdout("more")
    lf.addHeader("still here\n")
    lf.finish()
    msg = "\nOutput exceeded 10 bytes, remaining output has been truncated\n"
    assert list(lf.getChunks()) == [
        (HEADER, "head\n"),
        (STDOUT, "0123456"),
        (STDERR, "789"),
        (HEADER, msg + "still here\n"),
    ]
    # watchers see every entry as it was added
    assert [s[-1] for s in w.seen] == ["head\n", "0123456", "789abc", "more", "still here\n"]


@pytest.mark.parametrize("set_later", [False, True])
def test_log_max_size_unwatched(tmp_path: Path, set_later: bool) -> None:
    if set_later:  # as a plugin may do, after construction
        lf = new_log(tmp_path)
        lf.logMaxSize = 10
    else:
        lf = new_log(tmp_path, logMaxSize=10)
    lf.addStdout("0123456")
    lf.addStdout("789abc")
    lf.finish()
    msg = "\nOutput exceeded 10 bytes, remaining output has been truncated\n"
    assert list(lf.getChunks()) == [(STDOUT, "0123456789"), (HEADER, msg)]


def test_log_max_size_cuts_on_a_character_boundary(tmp_path: Path) -> None:
    lf = new_log(tmp_path, logMaxSize=4)
    lf.addStdout("ab\u00e9\u00e9")  # 6 bytes; byte 4 is inside the second e-acute
    lf.finish()
    assert lf.getText() == "ab\u00e9"


def test_log_max_tail_size(tmp_path: Path) -> None:
    lf = new_log(tmp_path, logMaxSize=5, logMaxTailSize=6)
    for piece in ["abcde", "fg", "hij", "klm", "nop"]:
        lf.addStdout(piece)
    lf.finish()
    exceeded = "\nOutput exceeded 5 bytes, remaining output has been truncated\n"
    # the tail drops whole entries until it fits: "klm" + "nop"
    assert (
        lf.getTextWithHeaders() == "abcde" + exceeded + "\nFinal 6 bytes follow below:\n" + "klmnop"
    )
    assert list(lf.getChunks())[-1] == (STDOUT, "klmnop")


def test_html_logfile(tmp_path: Path) -> None:
    lf = HTMLLogFile(make_step(tmp_path), "report", "1-log-report", "<b>hi</b>")
    assert lf.isFinished()
    assert spool(lf) == b"10:1<b>hi</b>,"
    assert list(lf.getChunks()) == [(STDERR, "<b>hi</b>")]


def fixture_08_records() -> tuple[bytes, list[tuple[int, str]]]:
    """A file as 0.8 wrote it: it split a UTF-8 character between records."""
    snowman = "\u2603".encode()
    first = b"x" * 9998 + snowman[:2]
    second = snowman[1 + 1 :] + b" ok\n"
    data = (
        b"11:2headers...,"
        + b"%d:0" % (len(first) + 1)
        + first
        + b","
        + b"%d:0" % (len(second) + 1)
        + second
        + b","
        + b"6:1oops!,"
    )
    expected = [(HEADER, "headers..."), (STDOUT, "x" * 9998 + "\u2603 ok\n"), (STDERR, "oops!")]
    return data, expected


@pytest.mark.parametrize("suffix", ["", ".bz2", ".gz"])
def test_reads_files_written_by_08(tmp_path: Path, suffix: str) -> None:
    data, expected = fixture_08_records()
    fn = tmp_path / ("7-log-compile-stdio" + suffix)
    if suffix == ".bz2":
        data = bz2.compress(data)
    elif suffix == ".gz":
        data = gzip.compress(data)
    fn.write_bytes(data)
    lf = LogFile.open_finished(make_step(tmp_path), "stdio", "7-log-compile-stdio")
    from tests.support import merged

    assert merged(list(lf.getChunks())) == expected
    assert lf.hasContents()


def test_truncated_last_record_ends_reading_quietly(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"3:0ab,6:1cd")
    lf = LogFile.open_finished(make_step(tmp_path), "stdio", "f")
    assert list(lf.getChunks()) == [(STDOUT, "ab")]
    (tmp_path / "f").write_bytes(b"3:0ab,12")
    assert list(lf.getChunks()) == [(STDOUT, "ab")]


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"3:0ab,x3:0ab,", 6),
        (b"3:0ab;", 0),
        (b"3:0ab,3:xab,", 6),
        (b"3:0ab,-1:0,", 6),
        (b"3:0ab,03:0ab,", 6),
        (b"99999999999999999:0", 0),
    ],
)
def test_corrupt_record_raises_with_file_and_offset(
    tmp_path: Path, data: bytes, offset: int
) -> None:
    (tmp_path / "f").write_bytes(data)
    lf = LogFile.open_finished(make_step(tmp_path), "stdio", "f")
    with pytest.raises(LogFileFormatError) as e:
        list(lf.getChunks())
    assert e.value.offset == offset
    assert e.value.filename == str(tmp_path / "f")
    assert f"{tmp_path / 'f'}: corrupt log record at byte {offset}" in str(e.value)


class CompressionTests(unittest.TestCase):
    def make(self, method: str) -> LogFile:
        lf = LogFile(
            make_step(self.mktemp(), logCompressionMethod=method), "stdio", "3-log-s-stdio"
        )
        lf.addHeader("h\n")
        lf.addStdout("\u00e9" * 30000)
        lf.addStderr("e\n")
        lf.finish()
        return lf

    @defer.inlineCallbacks
    def check_compression(self, method: str, opener) -> defer.Generator:
        lf = self.make(method)
        plain = Path(lf.getFilename()).read_bytes()
        early_reader = lf.getFile()
        yield lf.compressLog()
        fn = lf.getFilename()
        self.assertFalse(os.path.exists(fn))
        self.assertFalse(os.path.exists(fn + "." + method + ".tmp"))
        with opener(fn + "." + method, "rb") as f:
            self.assertEqual(f.read(), plain)
        self.assertEqual(early_reader.read(), plain)
        early_reader.close()
        self.assertEqual(lf.getText(), "\u00e9" * 30000 + "e\n")
        self.assertTrue(lf.hasContents())

    def test_bz2(self):
        return self.check_compression("bz2", bz2.BZ2File)

    def test_gz(self):
        return self.check_compression("gz", gzip.GzipFile)

    @defer.inlineCallbacks
    def test_a_link_planted_beside_the_spool_is_not_written_through(self) -> defer.Generator:
        for method in ("gz", "bz2"):
            lf = self.make(method)
            fn = lf.getFilename()
            directory = os.path.dirname(fn)
            outside = os.path.abspath(self.mktemp())
            Path(outside).write_bytes(b"precious")
            # Where a compression might write: the name an earlier version
            # used, one a crash left, and another log's temporary file.
            planted = [
                fn + f".{method}.tmp",
                os.path.join(directory, f".3-log-s-stdio.{method}@compress.x.tmp"),
            ]
            for link in planted:
                os.symlink(outside, link)
            # (An encoded page's, of a log whose spool is named as this
            # one's compressed file.)
            others = os.path.join(directory, f".3-log-s-stdio.{method}@text.gz.y.tmp")
            Path(others).write_bytes(b"another log's")
            os.chmod(fn, 0o640)
            plain = Path(fn).read_bytes()
            yield lf.compressLog()
            self.assertEqual(Path(outside).read_bytes(), b"precious")
            compressed = fn + "." + method
            self.assertFalse(os.path.islink(compressed))
            self.assertEqual(stat.S_IMODE(os.stat(compressed).st_mode), 0o640)
            opener = gzip.GzipFile if method == "gz" else bz2.BZ2File
            with opener(compressed, "rb") as f:
                self.assertEqual(f.read(), plain)
            # The leftovers went (the links, not what they lead to).
            self.assertEqual(
                sorted(os.listdir(directory)),
                sorted([os.path.basename(compressed), os.path.basename(others)]),
            )
            os.unlink(others)

    @defer.inlineCallbacks
    def test_other_methods_keep_the_plain_file(self):
        for method in ("zstd", "lz4", "br", "raw"):
            lf = self.make(method)
            yield lf.compressLog()
            self.assertEqual(os.listdir(os.path.dirname(lf.getFilename())), ["3-log-s-stdio"])


def test_text_bytes_pages_through_the_text(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    lf.TEXT_MARK_SPACING = 10  # marks every few records
    lf.addHeader("cmd\n")
    lf.addStdout("ab\u00e9cd\n")  # the e-acute is bytes 2-3
    lf.addStderr("err\n")
    lf.addHeader("between\n")
    lf.addStdout("\u2603" * 5)  # 15 bytes, three per snowman
    text = "ab\u00e9cd\nerr\n" + "\u2603" * 5
    data = text.encode()
    for _live_then_finished in range(2):
        assert lf.text_bytes(0, 1000) == (data, len(data), False)
        assert lf.text_bytes(3, 1000) == (data[4:], len(data), False)  # inside the e-acute
        assert lf.text_bytes(len(data) + 5, 1000) == (b"", len(data), False)
        # A page ends before a character it would cut.
        page, offset, more = lf.text_bytes(0, 13)
        assert (page, offset, more) == (data[:11], 11, True)
        page, offset, more = lf.text_bytes(offset, 13)
        assert (page, offset, more) == (data[11:23], 23, True)
        assert lf.text_bytes(offset, 13) == (data[23:], len(data), False)
        lf.finish()
    with pytest.raises(ValueError, match="limit must hold a whole character"):
        lf.text_bytes(0, 3)


def test_text_bytes_of_a_large_log_reads_from_the_nearest_mark(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    line = "0123456789" * 99 + "\n"
    for i in range(3000):  # 3 MB of stdout, with headers between
        lf.addStdout(line)
        if i % 100 == 0:
            lf.addHeader("h\n")
    expected = (line * 3000).encode()
    offset, pages = 0, []
    while True:
        page, offset, more = lf.text_bytes(offset, 256 * 1024)
        pages.append(page)
        if not more:
            break
    assert b"".join(pages) == expected
    assert offset == len(expected)
    # From a mark, not from the start: the file before the last one is
    # never read again.  Marks are left every TEXT_MARK_SPACING bytes.
    with open(lf.getFilename(), "r+b") as f:
        f.write(b"x" * lf.TEXT_MARK_SPACING)  # corrupt the first MiB
    late = 2 * lf.TEXT_MARK_SPACING + 12345
    assert lf.text_bytes(late, 100)[0] == expected[late : late + 100]
    with pytest.raises(LogFileFormatError):
        list(lf.getChunks())  # which does read from the start
    lf.finish()


def test_a_first_poll_of_a_large_live_log_reads_from_a_mark_left_while_writing(
    tmp_path: Path,
) -> None:
    lf = new_log(tmp_path)
    line = "0123456789" * 99 + "\n"
    for i in range(3000):
        lf.addStdout(line)
        if i % 100 == 0:
            lf.addStderr("e\n")
    lf.addHeader("the stdout before this is a record now\n")
    with open(lf.getFilename(), "r+b") as f:
        f.write(b"x" * (2 * lf.TEXT_MARK_SPACING))  # no poll may read this
    size = len(line) * 3000 + 2 * 30
    page, offset, more = lf.text_bytes(size - 10, 100)
    assert (page, offset, more) == ((line * 3000)[-10:].encode(), size, False)
    lf.finish()


def test_text_bytes_of_a_corrupt_file_raises_rather_than_cut_it_short(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"3:0ab,3:2hh,3:1cd;rest")
    lf = LogFile.open_finished(make_step(tmp_path), "stdio", "f")
    with pytest.raises(LogFileFormatError, match="byte 12"):
        lf.text_bytes(1, 100)
    assert not lf.spooled  # the bridge rebuilds it when it is next opened
    assert isinstance(lf.spool_failure, LogFileFormatError)


# 0.8 read its settings when it used them: chunkSize at each record here
# (at each entry in 0.8: only where records end differs), logMaxSize and
# logMaxTailSize from the master's config at each entry.

settings_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("entry"),
            st.sampled_from([STDOUT, STDERR, HEADER]),
            st.text(alphabet="ab\u00e9\u2603\n", min_size=1, max_size=30),
        ),
        st.tuples(st.just("chunkSize"), st.integers(1, 40), st.booleans()),
        st.tuples(
            st.just("config"),
            st.sampled_from([None, 0, 5, 20, 60]),
            st.sampled_from([None, 0, 4, 15]),
            st.booleans(),
        ),
    ),
    max_size=60,
)


def expected_08(ops: list, max_size: int | None, tail_size: int | None) -> list[tuple[int, str]]:
    """What 0.8's LogFile kept of these entries, as merged chunks."""
    kept: list[tuple[int, str]] = []
    tail: list[tuple[int, bytes]] = []
    non_header = tail_length = 0
    exceeded = False
    for op in ops:
        if op[0] == "config":
            max_size, tail_size = op[1], op[2]
            continue
        if op[0] != "entry":
            continue
        _, channel, text = op
        data = text.encode()
        if channel != HEADER and max_size:
            non_header += len(data)
            if non_header > max_size:
                if not exceeded:
                    keep = _char_boundary(data, max(0, len(data) - (non_header - max_size)))
                    kept.append((channel, data[:keep].decode()))
                    kept.append((HEADER, OUTPUT_EXCEEDED % max_size))
                    exceeded = True
                    data = data[keep:]
                if tail_size and data:
                    tail.append((channel, data))
                    tail_length += len(data)
                    while tail_length > tail_size:
                        tail_length -= len(tail.pop(0)[1])
                continue
        kept.append((channel, text))
    if tail:
        kept.append((HEADER, f"\nFinal {tail_length} bytes follow below:\n"))
        kept.extend((channel, data.decode()) for channel, data in tail)
    return merged(kept)


OUTPUT_EXCEEDED = "\nOutput exceeded %d bytes, remaining output has been truncated\n"


def _char_boundary(data: bytes, end: int) -> int:
    while 0 < end < len(data) and (data[end] & 0xC0) == 0x80:
        end -= 1
    return end


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=settings_ops, own_limits=st.booleans())
def test_settings_are_read_when_used(ops: list, own_limits: bool) -> None:
    class Sized(LogFile):
        pass  # chunkSize changes on the class must not leak to other tests

    with tempfile.TemporaryDirectory() as basedir:
        step = make_step(basedir)
        lf = Sized(step, "stdio", "1-log-s-stdio")
        if own_limits:  # as the bridge's logs: the config no longer applies
            lf.logMaxSize = lf.logMaxTailSize = None
        chunk_sizes = [lf.chunkSize]
        for op in ops:
            if op[0] == "entry":
                lf.addEntry(op[1], op[2])
            elif op[0] == "chunkSize":
                _, size, on_class = op
                (Sized if on_class else lf).chunkSize = size
                chunk_sizes.append(size)
            else:
                _, max_size, tail_size, reconfig = op
                config = copy.copy(step.build.builder.master.config) if reconfig else None
                target = config or step.build.builder.master.config
                target.logMaxSize, target.logMaxTailSize = max_size, tail_size
                if config is not None:  # as a reconfig does: a new config object
                    step.build.builder.master.config = config
        lf.finish()
        data = Path(lf.getFilename()).read_bytes()
        records = list(iter_records(io.BytesIO(data), 0, len(data), 4096, "f"))
        assert sum(len(r[1]) + len(b"%d:0," % (len(r[1]) + 1)) for r in records) == len(data)
        # A record holds at most chunkSize bytes, or one whole character.
        assert all(len(r[1]) <= max(*chunk_sizes, 4) for r in records)
        if own_limits:
            ops = [op for op in ops if op[0] != "config"]
        assert merged(list(lf.getChunks())) == expected_08(ops, None, None)


def test_a_log_opened_from_its_file_knows_its_length(tmp_path: Path) -> None:
    lf = new_log(tmp_path)
    lf.addHeader("cmd\n")
    lf.addStdout("h\u00e9llo\n" * 3000)
    lf.addStderr("err\n")
    lf.finish()
    again = LogFile.open_finished(lf.step, "stdio", lf.filename)
    assert again.length == lf.length == len("cmd\n") + len("h\u00e9llo\n".encode()) * 3000 + 4
    (tmp_path / "bad").write_bytes(b"3:0ab,3:2hh;")
    damaged = LogFile.open_finished(make_step(tmp_path), "stdio", "bad")
    assert damaged.length == 0
    assert not damaged.spooled


def test_a_gz_spool_whose_deflate_stream_is_damaged_is_a_failed_spool(tmp_path: Path) -> None:
    data = b"".join(b"%d:0line %d\n," % (len(b"line %d\n" % i) + 1, i) for i in range(2000))
    damaged = bytearray(gzip.compress(data))
    damaged[40:56] = b"\xff" * 16  # inside the first deflate block
    (tmp_path / "f.gz").write_bytes(bytes(damaged))
    lf = LogFile.open_finished(make_step(tmp_path), "stdio", "f")
    with pytest.raises(_spool.READ_ERRORS):
        lf.text_bytes(0, 100)
    assert not lf.spooled
    assert lf.length == 0
