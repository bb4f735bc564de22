"""Finished logs' pages read from the spool block by block (_finished), over real HTTP."""

from __future__ import annotations

import os
import textwrap

import treq
from twisted.internet import defer

from buildbot_logfile import _finished, _spool
from buildbot_logfile._render import PAGE_FOOTER, AnsiHTMLRenderer, page_header
from tests.masters import MasterTestCase, db_chunks, poll, python_step

# Colours that carry across blocks, text to escape, non-ASCII, all three
# channels, and enough of it for many blocks once BLOCK is small.
EMIT = textwrap.dedent(
    r"""
    import sys
    for i in range(300):
        sys.stdout.write("line %d <b>&amp;</b>%s\n" % (i, " caf\u00e9" if i > 120 else ""))
        if i % 50 == 0:
            sys.stdout.flush()
            sys.stderr.write("\x1b[1;31mred %d " % i); sys.stderr.flush()
            sys.stderr.write("still red\x1b[0m plain\n"); sys.stderr.flush()
        if i % 100 == 0:
            sys.stdout.write("\x1b[32mgreen from here\n")
    """
)
PATH = "/builders/b1/builds/1/steps/emit/logs/stdio"


class FinishedPageTests(MasterTestCase):
    @defer.inlineCallbacks
    def finished_log(self, compression: str):
        """A finished log whose spool is compressed as C{compression} says; its LogFile."""
        yield self.start_master({"b1": [python_step("emit", EMIT)]}, http=True)
        self.master.config.logCompressionMethod = compression
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        status = self.legacy_status()
        lf = yield status.getLogFile("b1", 1, "emit", "stdio")
        suffix = {"gz": ".gz", "bz2": ".bz2"}.get(compression, "")
        yield poll(
            lambda: (
                (_spool.existing_spool(lf.getFilename()) or "").endswith(suffix)
                and lf._compressing is None
            ),
            "the spool compressed",
        )
        return lf

    @defer.inlineCallbacks
    def expected(self):
        """The text page's and the HTML page's bodies, from the database."""
        _, content = yield self.db_log("b1", 1, "emit", "stdio")
        chunks = db_chunks("s", content)
        renderer = AnsiHTMLRenderer()
        spans = "".join(renderer.render(channel, text) for channel, text in chunks)
        html = page_header("stdio/text", live=False) + spans.encode() + PAGE_FOOTER
        text = "".join(t for c, t in chunks if c in (0, 1)).encode()
        return text, html

    @defer.inlineCallbacks
    def get(self, path: str, method: str = "GET"):
        response = yield treq.request(method, self.pages + path, persistent=False)
        body = yield treq.content(response)
        return response, body

    def count_blocks(self) -> list[int]:
        """
        Small blocks, the records of each noted: many blocks per page, and
        proof the page came from the spool; and small turns, so that pages
        also go on after yielding the reactor.
        """
        self.patch(_finished, "BLOCK", 200)
        self.patch(_finished, "TURN_BYTES", 600)
        blocks: list[int] = []
        read = _finished.SpoolBlocks.read

        def noted(spool: _finished.SpoolBlocks) -> tuple[memoryview, list] | None:
            block = read(spool)
            if block is not None:
                blocks.append(len(block[1]))
            return block

        self.patch(_finished.SpoolBlocks, "read", noted)
        return blocks

    @defer.inlineCallbacks
    def check_pages(self, compression: str):
        yield self.finished_log(compression)
        text, html = yield self.expected()
        blocks = self.count_blocks()
        response, body = yield self.get(PATH + "/text")
        self.assertEqual((response.code, body), (200, text))
        self.assertGreater(len(blocks), 2)
        del blocks[:]
        response, body = yield self.get(PATH)
        self.assertEqual((response.code, body), (200, html))
        self.assertGreater(len(blocks), 2)
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["max-age=604800"])
        response, body = yield self.get(PATH + "/text", method="HEAD")
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"]
        )
        response, body = yield self.get(PATH + "/text?start=7")
        self.assertEqual(body, text[7 : 7 + 1024 * 1024])

    def test_gz_spool(self):
        return self.check_pages("gz")

    def test_bz2_spool(self):
        return self.check_pages("bz2")

    def test_plain_spool(self):
        return self.check_pages("raw")

    @defer.inlineCallbacks
    def test_spool_damaged_in_place_is_served_from_the_database(self):
        """
        A gz spool damaged without a change its stat shows: the first block
        fails, the log is marked, and the page comes whole from the database.
        """
        lf = yield self.finished_log("gz")
        text, _ = yield self.expected()
        found = _spool.existing_spool(lf.getFilename())
        before = os.stat(found)
        with open(found, "r+b") as f:
            f.seek(before.st_size // 2)
            f.write(b"\xff" * 64)
        os.utime(found, ns=(before.st_atime_ns, before.st_mtime_ns))
        self.count_blocks()
        response, body = yield self.get(PATH + "/text")
        self.assertEqual((response.code, body), (200, text))
        self.assertFalse(lf.spooled)
