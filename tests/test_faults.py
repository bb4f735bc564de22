"""
Faults of the spool on a real master: whatever the cache does, receivers
get every event and byte once, and pages serve the whole log or say they
cannot.  Each test injects one fault and checks both against the database.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import textwrap
from typing import Any

import treq
from twisted.internet import defer

from buildbot_logfile import _spool
from buildbot_logfile.base import StatusReceiverMultiService
from buildbot_logfile.bridge import LegacyStatus
from tests.masters import (
    LiveLog,
    MasterTestCase,
    Recorder,
    db_chunks,
    db_text,
    live_log_step,
    merged,
    poll,
    python_step,
)
from tests.support import cannot_run

EMIT = textwrap.dedent(
    r"""
    import sys
    sys.stdout.write("caf\u00e9 <b>&</b>\n"); sys.stdout.flush()
    sys.stderr.write("\x1b[31mred\x1b[0m\n"); sys.stderr.flush()
    sys.stdout.write("last line\n")
    """
)

# 20 MB of stdout, as fast as the worker takes it.
BIG = textwrap.dedent(
    r"""
    import sys
    line = "0123456789" * 10 + "\n"
    for i in range(200000):
        sys.stdout.write("%07d " % i + line)
    """
)


def mount_tmpfs(case: MasterTestCase, path: str, options: str) -> None:
    """A small real file system over C{path}, unmounted at cleanup."""
    if os.geteuid() != 0:
        cannot_run(case, "mounting a tmpfs needs root (CI runs as root)")
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], check=True)
    case.addCleanup(subprocess.run, ["umount", "-l", path], check=False)


class FaultTestCase(MasterTestCase):
    # BIG is served two to four times, compressed and not, on a machine
    # that may run at half its usual speed.
    timeout = 180

    @defer.inlineCallbacks
    def start(self, builders: dict, **kwargs) -> defer.Generator:
        yield self.start_master(builders, http=True, logdir="spool", **kwargs)
        self.spool = os.path.join(self.master.basedir, "spool")

    @defer.inlineCallbacks
    def finished_log(self, step, compression: str = "raw") -> defer.Generator:
        """A master with b1 running C{step}, its build done: the log's LogFile."""
        yield self.start({"b1": [step]})
        self.master.config.logCompressionMethod = compression
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        lf = yield self.legacy_status().getLogFile("b1", 1, step.name, "stdio")
        return lf

    @defer.inlineCallbacks
    def restart_legacy_status(self) -> defer.Generator:
        """As after a master restart: a new LegacyStatus, which knows nothing."""
        yield self.reconfig(services=[])
        yield self.reconfig(
            services=[LegacyStatus(http_port="tcp:0:interface=127.0.0.1", logdir="spool")]
        )
        self.pages = f"http://127.0.0.1:{self.legacy_status().http_listener.getHost().port}"

    @defer.inlineCallbacks
    def get(self, path: str) -> defer.Generator:
        response = yield treq.get(self.pages + path, persistent=False)
        body = yield treq.content(response)
        return response, body

    @defer.inlineCallbacks
    def db_text_of(self, builder: str, number: int, step: str) -> defer.Generator:
        _, content = yield self.db_log(builder, number, step, "stdio")
        return db_text(content)

    @defer.inlineCallbacks
    def assert_served_whole(self, builder: str, number: int, step: str) -> defer.Generator:
        """The text page, streamed and paged with ?start=, is the database's text."""
        expected = (yield self.db_text_of(builder, number, step)).encode()
        path = f"/builders/{builder}/builds/{number}/steps/{step}/logs/stdio/text"
        response, body = yield self.get(path)
        self.assertEqual((response.code, len(body)), (200, len(expected)))
        self.assertEqual(body, expected)
        offset, pages = 0, []
        while True:
            response, page = yield self.get(f"{path}?start={offset}")
            self.assertEqual(response.code, 200)
            pages.append(page)
            offset = int(response.headers.getRawHeaders("x-text-size")[0])
            if not response.headers.getRawHeaders("x-more-data"):
                break
        self.assertEqual(b"".join(pages), expected)
        response, _ = yield self.get(path.rsplit("/", 1)[0])  # the HTML page
        self.assertEqual(response.code, 200)

    @defer.inlineCallbacks
    def assert_receiver_got_everything(
        self, builder: str, number: int, step: str
    ) -> defer.Generator:
        """Every byte of the log once, and each of its events once."""
        _, content = yield self.db_log(builder, number, step, "stdio")
        key = (number, step, "stdio")
        self.assertEqual(merged(self.recorder.chunks[key]), db_chunks("s", content))
        events = self.recorder.events
        self.assertEqual(events.count(("logStarted", *key)), 1)
        self.assertEqual(events.count(("logFinished", *key)), 1)
        self.assertEqual(events.count(("stepFinished", number, step, 0)), 1)
        finished = [e for e in events if e[0] == "buildFinished" and e[2] == number]
        self.assertEqual(finished, [("buildFinished", builder, number, 0)])

    @defer.inlineCallbacks
    def stream_live_text(self) -> defer.Generator:
        """The text page of b1 #1's live log, as it arrives: its parts, and the end of it."""
        received: list[bytes] = []
        response = yield treq.get(
            self.pages + "/builders/b1/builds/1/steps/live/logs/stdio/text",
            unbuffered=True,
            persistent=False,
        )
        return received, treq.collect(response, received.append)

    @defer.inlineCallbacks
    def first_answer(self, path: str) -> defer.Generator:
        """C{(code, body)}, or C{("cut", None)} for an answer that ended unfinished."""
        try:
            response = yield treq.get(self.pages + path, persistent=False)
            body = yield treq.content(response)
        except Exception:  # treq's ResponseFailed: the connection was dropped
            return "cut", None
        return response.code, body


class ReadsText(Recorder):
    """Reads each log's text at its end and the build's, as 0.8's mail and scanners did."""

    def __init__(self) -> None:
        super().__init__("reads text")
        self.texts: dict[tuple[str, str], str] = {}

    def logFinished(self, build: Any, step: Any, log: Any) -> None:
        if log.getName() == "stdio" and log.hasContents():
            self.texts[("logFinished", step.getName())] = log.getText()
        super().logFinished(build, step, log)

    def buildFinished(self, builderName: str, build: Any, results: Any) -> None:
        for log in build.getLogs():
            if log.getName() == "stdio" and log.hasContents():
                self.texts[("buildFinished", log.getStep().getName())] = log.getText()
        super().buildFinished(builderName, build, results)


class SpoolFaultTests(FaultTestCase):
    @defer.inlineCallbacks
    def test_a_live_spool_deleted_while_a_page_streams_it(self) -> defer.Generator:
        live = LiveLog()
        yield self.start({"b1": [live_log_step(live)]})
        yield self.force("b1")
        yield live.opened
        yield live.write(stdout="first\n")
        lf = yield poll(
            lambda: self.legacy_status().getLogFile("b1", 1, "live", "stdio"), "the log"
        )
        received, collected = yield self.stream_live_text()
        yield poll(lambda: b"".join(received) == b"first\n", "the first line on the page")
        os.unlink(lf.getFilename())
        for i in range(50):
            yield live.write(stdout=f"line {i}\n", stderr="err\n" if i % 10 == 0 else "")
        live.end()
        yield collected
        yield self.recorder.wait_for_builds(1)
        expected = yield self.db_text_of("b1", 1, "live")
        self.assertEqual(b"".join(received), expected.encode())
        yield self.assert_receiver_got_everything("b1", 1, "live")
        yield self.assert_served_whole("b1", 1, "live")

    @defer.inlineCallbacks
    def check_unwritable_spool(self, step, mount_options: str) -> defer.Generator:
        reader = ReadsText()
        yield self.start({"b1": [step]}, receivers=[reader])
        self.recorder = reader
        mount_tmpfs(self, self.spool, mount_options)
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        yield self.assert_receiver_got_everything("b1", 1, step.name)
        yield self.assert_served_whole("b1", 1, step.name)
        # What the failed spool wrote is gone: its space is free again.
        self.assertEqual([files for _, _, files in os.walk(self.spool) if files], [])
        # The text reads from the database, as plugins read it when a log ends...
        expected = yield self.db_text_of("b1", 1, step.name)
        self.assertEqual(
            reader.texts,
            {("logFinished", step.name): expected, ("buildFinished", step.name): expected},
        )
        # ... and later, from history (the spool still cannot be written).
        yield self.restart_legacy_status()
        build = self.legacy_status().getBuilder("b1").getBuild(1)
        (log,) = build.getSteps()[-1].getLogs()
        self.assertTrue(log.hasContents())
        self.assertEqual(log.getText(), expected)

    def test_a_full_disk(self) -> defer.Deferred:
        return self.check_unwritable_spool(python_step("big", BIG), "size=5m")

    def test_a_read_only_spool_directory(self) -> defer.Deferred:
        return self.check_unwritable_spool(python_step("emit", EMIT), "size=1m,ro")

    @defer.inlineCallbacks
    def test_a_live_client_when_the_disk_fills(self) -> defer.Generator:
        live = LiveLog()
        yield self.start({"b1": [live_log_step(live)]})
        mount_tmpfs(self, self.spool, "size=2m")
        yield self.force("b1")
        yield live.opened
        block = "".join(f"{i:07d} " + "x" * 92 + "\n" for i in range(5000))  # 500 kB
        yield live.write(stdout=block)
        yield poll(lambda: self.legacy_status().getLogFile("b1", 1, "live", "stdio"), "the log")
        received, collected = yield self.stream_live_text()
        for _ in range(10):  # 5 MB through a 2 MB file system
            yield live.write(stdout=block)
        live.end()
        yield self.recorder.wait_for_builds(1)
        expected = yield self.db_text_of("b1", 1, "live")
        outcome = yield collected.addCallbacks(lambda _: "whole", lambda f: "cut")
        # Either every byte, or an answer the client can tell is unfinished:
        # never a complete answer with bytes missing or repeated.
        if outcome == "whole":
            self.assertEqual(b"".join(received), expected.encode())
        yield self.assert_receiver_got_everything("b1", 1, "live")
        yield self.assert_served_whole("b1", 1, "live")
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def check_damaged_gz(self, damage) -> defer.Generator:
        lf = yield self.finished_log(python_step("big", BIG), "gz")
        gz = lf.getFilename() + ".gz"
        yield lf.compressLog()  # the bridge's own, under way
        damage(gz)
        yield self.assert_served_whole("b1", 1, "big")
        # and after a restart, with the damage done again
        damage(gz)
        yield self.restart_legacy_status()
        yield self.assert_served_whole("b1", 1, "big")
        self.flushLoggedErrors()

    def test_a_truncated_gz_spool(self) -> defer.Deferred:
        return self.check_damaged_gz(lambda gz: os.truncate(gz, os.path.getsize(gz) // 2))

    def test_a_corrupt_gz_spool(self) -> defer.Deferred:
        def corrupt(gz: str) -> None:
            with open(gz, "r+b") as f:
                f.seek(os.path.getsize(gz) // 2)
                f.write(b"\x00garbage" * 100)

        return self.check_damaged_gz(corrupt)

    def test_an_empty_gz_spool(self) -> defer.Deferred:
        def empty(gz: str) -> None:
            with gzip.open(gz, "wb"):
                pass

        return self.check_damaged_gz(empty)

    @defer.inlineCallbacks
    def test_a_corrupt_record_in_a_plain_spool(self) -> defer.Generator:
        lf = yield self.finished_log(python_step("big", BIG), "raw")
        path = lf.getFilename()
        before = os.stat(path)
        with open(path, "r+b") as f:  # break the length of a record halfway
            data = f.read()
            f.seek(data.index(b",", len(data) // 2) + 1)
            f.write(b"x")
        # Even with its time kept, as a careful hand (or a bad disk) would.
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        # The first reader finds the damage and is told its answer is not
        # the whole log (a 503 before the first byte, a cut answer after)...
        code, _ = yield self.first_answer("/builders/b1/builds/1/steps/big/logs/stdio/text")
        self.assertIn(code, (503, "cut"))
        # ...and from then on the log is served whole
        yield self.assert_served_whole("b1", 1, "big")
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_a_live_spool_cut_short_by_hand(self) -> defer.Generator:
        live = LiveLog()
        yield self.start({"b1": [live_log_step(live)]})
        self.master.config.logCompressionMethod = "raw"
        yield self.force("b1")
        yield live.opened
        for i in range(3000):  # more than one write buffer
            yield live.write(stdout=f"line {i:05d} " + "y" * 300 + "\n")
        lf = yield poll(
            lambda: self.legacy_status().getLogFile("b1", 1, "live", "stdio"), "the log"
        )
        lf.getFile().read(1)  # everything so far is on disk
        os.truncate(lf.getFilename(), 0)
        response, body = yield self.get("/builders/b1/builds/1/steps/live/logs/stdio/text?start=0")
        self.assertEqual(response.code, 200)
        self.assertTrue(body.startswith(b"line 00000 "))
        yield live.write(stdout="after\n")
        live.end()
        yield self.recorder.wait_for_builds(1)
        yield self.assert_receiver_got_everything("b1", 1, "live")
        yield self.assert_served_whole("b1", 1, "live")

    @defer.inlineCallbacks
    def test_builders_whose_names_escape_alike_keep_apart(self) -> defer.Generator:
        yield self.start(
            {
                'x"y': [python_step("emit", "print('of the quoted one')")],
                "x_y": [python_step("emit", "print('of the underscored one')")],
            }
        )
        yield self.force('x"y')
        yield self.force("x_y")
        yield self.recorder.wait_for_builds(2)
        for builder, text in (
            ('x"y', b"of the quoted one\n"),
            ("x_y", b"of the underscored one\n"),
        ):
            url = f"/builders/{builder.replace(chr(34), '%22')}/builds/1/steps/emit/logs/stdio/text"
            response, body = yield self.get(url)
            self.assertEqual((response.code, body), (200, text))
        self.assertEqual(len(os.listdir(self.spool)), 2)

    @defer.inlineCallbacks
    def test_a_spool_replaced_by_a_link(self) -> defer.Generator:
        lf = yield self.finished_log(python_step("emit", EMIT), "raw")
        crafted = os.path.join(self.master.basedir, "crafted")
        with open(crafted, "wb") as f:
            f.write(b"13:0hello world!,")
        os.unlink(lf.getFilename())
        os.symlink(crafted, lf.getFilename())
        yield self.assert_served_whole("b1", 1, "emit")
        with open(crafted, "rb") as f:
            self.assertEqual(f.read(), b"13:0hello world!,")
        self.assertFalse(os.path.islink(lf.getFilename()))

    @defer.inlineCallbacks
    def test_a_builder_directory_replaced_by_a_link(self) -> defer.Generator:
        lf = yield self.finished_log(python_step("emit", "print('hello'); print('world')"))
        # As after a restart: nothing known of the log but its spool.
        yield self.restart_legacy_status()
        builder_dir = os.path.dirname(lf.getFilename())
        # Moved, not copied: the spool keeps its inode, as a link made by
        # hand to a directory moved elsewhere on the same disk would.
        outside = os.path.join(os.path.abspath(self.mktemp()), "b1")
        os.makedirs(os.path.dirname(outside))
        os.rename(builder_dir, outside)
        os.symlink(outside, builder_dir)
        spool = os.path.join(outside, os.path.basename(lf.getFilename()))
        # The same size and lines as the log's, so that only where it lies tells.
        with open(spool, "rb") as f:
            crafted = f.read().replace(b"hello\nworld\n", b"SECRE\nOUTSI\n")
        with open(spool, "wb") as f:
            f.write(crafted)
        before = sorted(os.listdir(outside))
        yield self.assert_served_whole("b1", 1, "emit")
        path = "/builders/b1/builds/1/steps/emit/logs/stdio"
        for page in (path, f"{path}/text"):
            response = yield treq.get(
                self.pages + page, headers={"Accept-Encoding": "gzip"}, persistent=False
            )
            body = yield treq.content(response)
            self.assertEqual(response.code, 200)
            self.assertNotIn(b"SECRE", gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
        # Nothing was read, written or compressed through the link.
        self.assertEqual(sorted(os.listdir(outside)), before)
        with open(spool, "rb") as f:
            self.assertEqual(f.read(), crafted)
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_a_spool_that_cannot_be_read(self) -> defer.Generator:
        # Mode 000 stops nobody when the master runs as root: a directory
        # where the file should be cannot be read by anyone.
        lf = yield self.finished_log(python_step("emit", EMIT), "raw")
        os.unlink(lf.getFilename())
        os.mkdir(lf.getFilename())
        os.mkdir(os.path.join(lf.getFilename(), "inside"))  # so it cannot be removed either
        yield self.assert_served_whole("b1", 1, "emit")
        yield self.assert_served_whole("b1", 1, "emit")  # and again, no 500

    @defer.inlineCallbacks
    def test_blocks_reserved_by_a_crashed_writer_are_given_back(self) -> defer.Generator:
        lf = yield self.finished_log(python_step("big", BIG), "raw")
        path = lf.getFilename()
        size = os.path.getsize(path)
        fd = os.open(path, os.O_RDWR)
        try:  # what a writer killed mid-log leaves: blocks past the end
            self.assertEqual(_spool.reserve_blocks(fd, size, 8 * 1024 * 1024), 0)
        finally:
            os.close(fd)
        self.assertGreater(os.stat(path).st_blocks * 512, size + 4 * 1024 * 1024)
        yield self.restart_legacy_status()
        yield self.assert_served_whole("b1", 1, "big")
        self.assertEqual(os.path.getsize(path), size)  # the same file, reused
        self.assertLess(os.stat(path).st_blocks * 512, size + 64 * 1024)


class FailsToStop(StatusReceiverMultiService):
    def stopService(self) -> Any:
        StatusReceiverMultiService.stopService(self)
        raise RuntimeError("this receiver fails as it stops")


class StopTests(FaultTestCase):
    @defer.inlineCallbacks
    def test_pages_following_a_live_log_end_unfinished_when_the_service_goes(
        self,
    ) -> defer.Generator:
        live = LiveLog()
        # Whatever its receivers do as they stop.
        yield self.start({"b1": [live_log_step(live)]}, receivers=[FailsToStop()])
        yield self.force("b1")
        yield live.opened
        yield live.write(stdout="first\n")
        yield poll(lambda: self.legacy_status().getLogFile("b1", 1, "live", "stdio"), "the log")
        text, text_collected = yield self.stream_live_text()
        html: list[bytes] = []
        response = yield treq.get(
            self.pages + "/builders/b1/builds/1/steps/live/logs/stdio",
            unbuffered=True,
            persistent=False,
        )
        html_collected = treq.collect(response, html.append)
        yield poll(lambda: b"".join(text) == b"first\n", "the first line on the text page")
        yield poll(lambda: b"first" in b"".join(html), "the first line on the HTML page")
        # A reconfig removes LegacyStatus while the build goes on.
        yield self.reconfig(services=[])
        (stopping,) = self.flushLoggedErrors(defer.FirstError)  # as Buildbot logs it
        self.assertIsInstance(stopping.value.subFailure.value, RuntimeError)
        outcomes = yield defer.gatherResults(
            [
                d.addCallbacks(lambda _: "whole", lambda f: "cut")
                for d in (text_collected, html_collected)
            ]
        )
        self.assertEqual(outcomes, ["cut", "cut"])
        self.assertEqual(b"".join(text), b"first\n")
        self.assertNotIn(b"</html>", b"".join(html))
        live.end()
        yield poll(
            lambda: self.master.data.get(("builds", 1)).addCallback(lambda b: b["complete"]),
            "the build to end",
        )
