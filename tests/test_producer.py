"""LogFileProducer: from the file, then live, exactly once, with pause in both phases."""

from __future__ import annotations

import gc
import os
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from buildbot_logfile.logfile import HEADER, STDERR, STDOUT, LogFile, LogFileProducer
from tests.support import RecordingConsumer, make_step, merged, run_one_call, run_until_idle


def new_log(basedir) -> LogFile:
    return LogFile(make_step(basedir), "stdio", "1-log-shell-stdio")


def subscribe(lf: LogFile, clock: Clock) -> RecordingConsumer:
    consumer = RecordingConsumer()
    lf.subscribeConsumer(consumer, clock)
    return consumer


def test_registers_as_streaming_producer(tmp_path: Path) -> None:
    clock = Clock()
    lf = new_log(tmp_path)
    consumer = subscribe(lf, clock)
    assert consumer.streaming is True
    assert isinstance(consumer.producer, LogFileProducer)
    assert consumer.producer.subscribed
    assert not consumer.producer.paused
    assert LogFileProducer.BUFFERSIZE > 0


def test_reads_the_file_then_follows_live(tmp_path: Path) -> None:
    clock = Clock()
    lf = new_log(tmp_path)
    lf.addHeader("cmd\n")
    lf.addStdout("x" * 25000)
    lf.addStderr("pending")
    consumer = subscribe(lf, clock)
    assert consumer.chunks == []  # nothing before the reactor turns
    run_until_idle(clock)
    assert merged(consumer.chunks) == [
        (HEADER, "cmd\n"),
        (STDOUT, "x" * 25000),
        (STDERR, "pending"),
    ]
    lf.addStderr(" more")
    lf.addStdout("\u2603")
    assert consumer.chunks[-2:] == [(STDERR, " more"), (STDOUT, "\u2603")]
    assert consumer.calls == ["registerProducer"]
    lf.finish()
    assert consumer.calls == ["registerProducer", "unregisterProducer", "finish"]
    assert not consumer.producer.subscribed


def test_finished_log_streams_and_finishes_once(tmp_path: Path) -> None:
    clock = Clock()
    lf = new_log(tmp_path)
    lf.addStdout("a")
    lf.addStderr("b")
    lf.finish()
    consumer = subscribe(lf, clock)
    run_until_idle(clock)
    assert merged(consumer.chunks) == [(STDOUT, "a"), (STDERR, "b")]
    assert consumer.calls == ["registerProducer", "unregisterProducer", "finish"]
    consumer.producer.resumeProducing()
    run_until_idle(clock)
    assert consumer.calls.count("finish") == 1


def test_stop_producing_writes_nothing_more_and_unsubscribes(tmp_path: Path) -> None:
    clock = Clock()
    lf = new_log(tmp_path)
    lf.addStdout("a")
    consumer = subscribe(lf, clock)
    run_until_idle(clock)
    consumer.producer.stopProducing()
    lf.addStdout("b")
    lf.finish()
    run_until_idle(clock)
    assert consumer.chunks == [(STDOUT, "a")]
    assert consumer.calls == ["registerProducer"]
    assert not consumer.producer.subscribed


def test_stop_before_the_first_turn(tmp_path: Path) -> None:
    clock = Clock()
    lf = new_log(tmp_path)
    lf.addStdout("a")
    consumer = subscribe(lf, clock)
    consumer.producer.stopProducing()
    run_until_idle(clock)
    assert consumer.chunks == []


def test_paused_live_producer_gets_nothing_and_catches_up(tmp_path: Path) -> None:
    clock = Clock()
    lf = new_log(tmp_path)
    lf.addStdout("start ")
    consumer = subscribe(lf, clock)
    run_until_idle(clock)
    consumer.producer.pauseProducing()
    lf.addStdout("during ")  # joins the run that was partly sent
    lf.addStderr("E" * 12000)
    lf.addStdout("tail")
    run_until_idle(clock)
    assert consumer.chunks == [(STDOUT, "start ")]
    consumer.producer.resumeProducing()
    run_until_idle(clock)
    assert merged(consumer.chunks) == [
        (STDOUT, "start during "),
        (STDERR, "E" * 12000),
        (STDOUT, "tail"),
    ]
    lf.finish()
    assert consumer.finished


def test_paused_when_the_log_finishes(tmp_path: Path) -> None:
    clock = Clock()
    lf = new_log(tmp_path)
    consumer = subscribe(lf, clock)
    run_until_idle(clock)
    consumer.producer.pauseProducing()
    lf.addStdout("late")
    lf.finish()
    run_until_idle(clock)
    assert consumer.chunks == []
    assert consumer.calls == ["registerProducer"]
    consumer.producer.resumeProducing()
    run_until_idle(clock)
    assert consumer.chunks == [(STDOUT, "late")]
    assert consumer.calls == ["registerProducer", "unregisterProducer", "finish"]


def test_catch_up_gives_the_reactor_back(tmp_path: Path) -> None:
    clock = Clock()
    lf = new_log(tmp_path)
    for _ in range(300):
        lf.addStdout("y" * 10000)
    lf.finish()
    consumer = subscribe(lf, clock)
    run_one_call(clock)
    first_turn = sum(len(t) for _, t in consumer.chunks)
    assert 0 < first_turn <= LogFileProducer.TURN_BYTES + 10000
    run_until_idle(clock)
    assert sum(len(t) for _, t in consumer.chunks) == 3000000


def ending_lines(events: list[dict[str, Any]]) -> list[str]:
    """What was logged of streams ended early: one line each, no traceback."""
    assert not any(e.get("isError") for e in events)
    lines = (" ".join(map(str, e.get("message", ()))) for e in events)
    return [line for line in lines if line.startswith("ending the stream")]


def test_corrupt_file_ends_the_stream(tmp_path: Path) -> None:
    from twisted.python import log

    errors = []
    log.addObserver(errors.append)
    try:
        (tmp_path / "f").write_bytes(b"3:0ab,3:0cd;rest")
        lf = LogFile.open_finished(make_step(tmp_path), "stdio", "f")
        clock = Clock()
        consumer = subscribe(lf, clock)
        run_until_idle(clock)
    finally:
        log.removeObserver(errors.append)
    assert consumer.chunks == [(STDOUT, "ab")]
    assert consumer.calls == ["registerProducer", "unregisterProducer", "finish"]
    assert ending_lines(errors) == [
        f"ending the stream of {lf.getFilename()} early: {lf.getFilename()}: corrupt log record"
        " at byte 6: record not terminated by ','"
    ]


def test_live_file_cut_short_ends_the_stream(tmp_path: Path) -> None:
    from twisted.python import log

    errors = []
    log.addObserver(errors.append)
    try:
        clock = Clock()
        lf = new_log(tmp_path)
        lf.addStdout("x" * 9000)
        lf.addStderr("y")
        lf.getFile().read()  # the stdout record is on disk
        os.truncate(lf.getFilename(), 0)
        consumer = subscribe(lf, clock)
        run_until_idle(clock)
    finally:
        log.removeObserver(errors.append)
    assert consumer.chunks == []
    assert consumer.calls == ["registerProducer", "unregisterProducer", "finish"]
    assert ending_lines(errors) == [
        f"ending the stream of {lf.getFilename()} early: {lf.getFilename()}: corrupt log record"
        " at byte 0: file ends before what was written"
    ]


def test_paused_live_reader_memory_does_not_grow(tmp_path: Path) -> None:
    clock = Clock()
    lf = new_log(tmp_path)
    consumer = subscribe(lf, clock)
    run_until_idle(clock)
    consumer.producer.pauseProducing()
    piece = "z" * 1000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(8000):  # 8 MB, alternating channels
            lf.addEntry(STDOUT if (i // 50) % 2 == 0 else STDERR, piece)
        run_until_idle(clock)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert consumer.chunks == []
    assert grown < 256 * 1024, grown
    consumer.producer.resumeProducing()
    run_until_idle(clock)
    assert sum(len(t) for _, t in consumer.chunks) == 8000 * 1000


class PausingConsumer(RecordingConsumer):
    """Pauses its producer from inside writeChunk after a budget, as a transport does."""

    def __init__(self, budget: int | None) -> None:
        super().__init__()
        self.budget = budget
        self.paused = False
        self.stopped = False
        self.violations: list[str] = []

    def writeChunk(self, chunk: tuple[int, str]) -> None:
        if self.paused:
            self.violations.append(f"written while paused: {chunk!r}")
        if self.stopped:
            self.violations.append(f"written after stop: {chunk!r}")
        super().writeChunk(chunk)
        if self.budget is not None:
            self.budget -= 1
            if self.budget <= 0:
                self.pause()

    def pause(self) -> None:
        self.paused = True
        self.producer.pauseProducing()

    def resume(self, budget: int | None) -> None:
        self.paused = False
        self.budget = budget
        self.producer.resumeProducing()

    def stop(self) -> None:
        self.stopped = True
        self.producer.stopProducing()


texts = st.one_of(
    st.text(min_size=1, max_size=40),
    st.builds(
        lambda ch, n: ch * n,
        st.sampled_from(["a", "\u00e9", "\u2603", "\U0001f600", "\x1b[31m"]),
        st.integers(min_value=1, max_value=3).map(lambda k: 10000 // k + 1) | st.integers(1, 12000),
    ),
)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.sampled_from([STDOUT, STDERR, HEADER]), texts),
        st.tuples(st.just("subscribe"), st.one_of(st.none(), st.integers(1, 5))),
        st.tuples(st.just("pause"), st.integers(0, 3)),
        st.tuples(st.just("resume"), st.integers(0, 3), st.one_of(st.none(), st.integers(1, 5))),
        st.tuples(st.just("stop"), st.integers(0, 3)),
        st.tuples(st.just("turn")),
        st.tuples(st.just("idle")),
        st.tuples(st.just("idle")),
    ),
    max_size=40,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, finish_early=st.booleans())
def test_every_consumer_gets_exactly_the_log(ops, finish_early) -> None:
    with tempfile.TemporaryDirectory() as basedir:
        old = LogFileProducer.BUFFERSIZE, LogFileProducer.TURN_BYTES
        LogFileProducer.BUFFERSIZE, LogFileProducer.TURN_BYTES = 4096, 15000
        try:
            run_ops(basedir, ops, finish_early)
        finally:
            LogFileProducer.BUFFERSIZE, LogFileProducer.TURN_BYTES = old


def run_ops(basedir: str, ops, finish_early: bool) -> None:
    clock = Clock()
    lf = new_log(basedir)
    entries: list[tuple[int, str]] = []
    consumers: list[PausingConsumer] = []
    stopped_at: dict[int, list[tuple[int, str]]] = {}
    if finish_early:
        ops = (
            ops[: len(ops) // 2]
            + [("finish",)]
            + [op for op in ops[len(ops) // 2 :] if op[0] != "append"]
        )
    for op in ops:
        kind = op[0]
        if kind == "append":
            lf.addEntry(op[1], op[2])
            entries.append((op[1], op[2]))
        elif kind == "finish":
            lf.finish()
        elif kind == "subscribe":
            c = PausingConsumer(op[1])
            consumers.append(c)
            lf.subscribeConsumer(c, clock)
        elif kind == "turn":
            clock.advance(0)
        elif kind == "idle":
            run_until_idle(clock)
        elif consumers:
            i = op[1] % len(consumers)
            c = consumers[i]
            if i in stopped_at or c.finished:
                continue
            if kind == "pause" and not c.paused:
                c.pause()
            elif kind == "resume" and c.paused:
                c.resume(op[2])
            elif kind == "stop":
                c.stop()
                stopped_at[i] = merged(c.chunks)
    lf.finish()
    run_until_idle(clock)
    while waiting := [c for i, c in enumerate(consumers) if i not in stopped_at and c.paused]:
        for c in waiting:
            c.resume(None)
        run_until_idle(clock)
    expected = merged(entries)
    for i, c in enumerate(consumers):
        assert c.violations == []
        got = merged(c.chunks)
        if i in stopped_at:
            assert got == stopped_at[i]
            assert c.calls == ["registerProducer"]
            # what a stopped consumer got is a prefix of the log
            if got:
                last_channel, last_text = got[-1]
                assert got[:-1] == expected[: len(got) - 1]
                assert expected[len(got) - 1][0] == last_channel
                assert expected[len(got) - 1][1].startswith(last_text)
        else:
            assert got == expected
            assert c.calls == ["registerProducer", "unregisterProducer", "finish"]
    assert not any(c.producer.subscribed for c in consumers)
    assert merged(list(lf.getChunks())) == expected


@pytest.mark.parametrize("buffersize", [7, 64, 4096])
def test_small_read_buffers(tmp_path: Path, buffersize: int, monkeypatch) -> None:
    monkeypatch.setattr(LogFileProducer, "BUFFERSIZE", buffersize)
    clock = Clock()
    lf = new_log(tmp_path)
    lf.addStdout("abc\u2603" * 50)
    lf.addStderr("x")
    lf.addStdout("\U0001f600")
    consumer = subscribe(lf, clock)
    run_until_idle(clock)
    lf.finish()
    assert merged(consumer.chunks) == [
        (STDOUT, "abc\u2603" * 50),
        (STDERR, "x"),
        (STDOUT, "\U0001f600"),
    ]


def test_a_consumer_of_bytes_gets_the_records_as_they_are(tmp_path: Path) -> None:
    """Phase one hands write_encoded the spool's bytes; live entries stay str."""

    class BytesConsumer(RecordingConsumer):
        def __init__(self) -> None:
            super().__init__()
            self.encoded: list[tuple[int, bytes]] = []

        def write_encoded(self, channel: int, data: bytes) -> None:
            self.encoded.append((channel, bytes(data)))

    snowman = "\u2603".encode()
    (tmp_path / "f").write_bytes(
        b"4:0a" + snowman[:2] + b"," + b"3:0" + snowman[2:] + b"b,3:1e\xff,"
    )
    lf = LogFile.open_finished(make_step(tmp_path), "stdio", "f")
    clock = Clock()
    consumer = BytesConsumer()
    lf.subscribeConsumer(consumer, clock)
    run_until_idle(clock)
    assert consumer.encoded == [(STDOUT, b"a" + snowman + b"b"), (STDERR, b"e\xff")]
    assert consumer.chunks == []
    assert consumer.calls == ["registerProducer", "unregisterProducer", "finish"]

    live = new_log(tmp_path)
    live.addStdout("x")
    consumer = BytesConsumer()
    live.subscribeConsumer(consumer, clock)
    run_until_idle(clock)
    live.addStderr("y")
    live.finish()
    assert consumer.chunks == [(STDOUT, "x"), (STDERR, "y")]
