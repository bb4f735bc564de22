"""Finished logs' pages read from the spool block by block (_finished), over real HTTP."""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import textwrap

import sqlalchemy as sa
from twisted.internet import defer, reactor, task
from twisted.web import client
from twisted.web.http_headers import Headers

from buildbot_logfile import _finished, _spool
from buildbot_logfile._render import PAGE_FOOTER, AnsiHTMLRenderer, page_header
from tests.databases import PostgresTestCase
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


class FinishedLogCase(MasterTestCase):
    """A finished log on a real master, and what its pages must hold."""

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
    def get(self, path: str, method: str = "GET", accept: str | None = None):
        """
        The answer as sent, to a client that accepts C{accept} encodings
        (none: the plain page; treq would ask for gzip and decode it).
        """
        headers = Headers({} if accept is None else {"Accept-Encoding": [accept]})
        agent = client.Agent(reactor)
        response = yield agent.request(method.encode(), (self.pages + path).encode(), headers)
        body = yield client.readBody(response)
        return response, body

    def count_blocks(self) -> list[int]:
        """
        Small blocks, the records of each noted: many blocks per page, and
        proof the page came from the spool; and a block a turn of the
        reactor, so that pages go on from turn to turn.
        """
        self.patch(_finished, "BLOCK", 200)
        self.patch(_finished, "BIG_BLOCK", 200)
        self.patch(_finished, "SLICE_SECONDS", 0)
        blocks: list[int] = []
        read = _finished.SpoolBlocks.read

        def noted(spool: _finished.SpoolBlocks) -> tuple[memoryview, list] | None:
            block = read(spool)
            if block is not None:
                blocks.append(len(block[1]))
            return block

        self.patch(_finished.SpoolBlocks, "read", noted)
        return blocks


class FinishedPageTests(FinishedLogCase):
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
    def test_few_pages_at_a_time_send_large_blocks(self):
        """
        One page at a time (BIG_PAGES) reads and sends large blocks, the
        others small ones; each page is whole, and every page, finished or
        left by its client, gives its turn back.  The page's client being
        on this machine, its transport sends a large block at once while
        the page is sent.
        """
        yield self.finished_log("gz")
        text, html = yield self.expected()
        self.count_blocks()
        self.patch(_finished, "BIG_BLOCK", 1000)
        self.patch(_finished, "BIG_PAGES", 1)
        self.patch(_finished, "BLOCK_SIZES", _finished._BlockSizes())
        # The pages start together: none takes a turn before all three are there.
        held = task.Cooperator(started=False)
        self.patch(_finished, "_pages", held)
        started = []
        start = _finished.FinishedPage.start

        def noted_start(page: _finished.FinishedPage) -> defer.Deferred[None]:
            started.append(page)
            return start(page)

        self.patch(_finished.FinishedPage, "start", noted_start)
        gets = [self.get(PATH + "/text"), self.get(PATH), self.get(PATH + "/text")]
        yield poll(lambda: len(started) == 3, "three pages started")
        held.start()
        answers = yield defer.gatherResults(gets)
        self.assertEqual([body for _, body in answers], [text, html, text])
        self.assertEqual(sorted(page.block for page in started), [200, 200, 1000])
        self.assertEqual(_finished.BLOCK_SIZES.big, 0)

        # A client that goes before its page has taken a turn.
        self.patch(_finished, "_pages", task.Cooperator(started=False))
        self.patch(_finished, "BIG_BLOCK", 256 * 1024)
        leaving = socket.create_connection(("127.0.0.1", int(self.pages.rsplit(":", 1)[1])))
        leaving.sendall(f"GET {PATH}/text HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        yield poll(lambda: len(started) == 4, "the fourth page started")
        transport = started[3].request.transport
        self.assertEqual((started[3].block, _finished.BLOCK_SIZES.big), (256 * 1024, 1))
        self.assertEqual(transport.SEND_LIMIT, 256 * 1024)
        leaving.close()
        yield poll(lambda: _finished.BLOCK_SIZES.big == 0, "the left page's turn given back")
        self.assertNotIn("SEND_LIMIT", vars(transport))

    @defer.inlineCallbacks
    def test_damaged_length_is_served_from_the_database(self):
        """
        A length prefix, damaged in place, that promises more than the file
        holds (99 GB): the page comes from the database, and reading the
        spool does not set aside what the length says.
        """
        lf = yield self.finished_log("raw")
        text, _ = yield self.expected()
        found = _spool.existing_spool(lf.getFilename())
        before = os.stat(found)
        with open(found, "r+b") as f:
            f.write(b"99999999999:")
        os.utime(found, ns=(before.st_atime_ns, before.st_mtime_ns))
        self.count_blocks()
        response, body = yield self.get(PATH + "/text")
        self.assertEqual((response.code, body), (200, text))
        self.assertFalse(lf.spooled)
        self.assertEqual(_finished.BLOCK_SIZES.big, 0)

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
        self.assertEqual(_finished.BLOCK_SIZES.big, 0)

    @defer.inlineCallbacks
    def test_spool_replaced_by_a_whole_log_of_as_many_lines_is_rebuilt(self):
        """
        A spool replaced by hand with a whole log of the same number of
        lines (another build's, say): its stat changed, so it is rebuilt
        from the database, however well it parses.
        """
        lf = yield self.finished_log("gz")
        text, _ = yield self.expected()
        found = _spool.existing_spool(lf.getFilename())
        with gzip.open(found, "rb") as f:
            records = f.read()
        other = records.replace(b"line", b"LINE")
        self.assertNotEqual(other, records)
        replacement = found + ".new"
        with gzip.open(replacement, "wb") as f:
            f.write(other)
        os.replace(replacement, found)
        for _ in range(2):
            response, body = yield self.get(PATH + "/text")
            self.assertEqual((response.code, body), (200, text))


class EncodedPageTests(FinishedLogCase):
    """Gzip clients get a finished log's page as a gzip file made once beside the spool."""

    def get_gzip(self, path: str, method: str = "GET", accept: str = "gzip, deflate"):
        return self.get(path, method, accept)

    @defer.inlineCallbacks
    def encoded(self, path: str):
        """Ask as a gzip client until the page comes encoded; the answer."""

        @defer.inlineCallbacks
        def ask():
            response, body = yield self.get_gzip(path)
            self.assertEqual(response.code, 200)
            if response.headers.getRawHeaders("content-encoding") == ["gzip"]:
                return response, body
            return None

        answer = yield poll(ask, "the encoded page")
        return answer

    @defer.inlineCallbacks
    def test_gzip_clients_get_the_page_encoded(self):
        lf = yield self.finished_log("gz")
        text, html = yield self.expected()
        response, body = yield self.get_gzip(PATH + "/text")
        # The first gets the plain page while the encoded one is made.
        self.assertEqual((response.code, body), (200, text))
        self.assertIsNone(response.headers.getRawHeaders("content-encoding"))
        self.assertEqual(response.headers.getRawHeaders("vary"), ["accept-encoding"])
        for path, page in ((PATH + "/text", text), (PATH, html)):
            response, body = yield self.encoded(path)
            self.assertEqual(gzip.decompress(body), page)
            self.assertEqual(response.length, len(body))  # Content-Length
            self.assertEqual(response.headers.getRawHeaders("vary"), ["accept-encoding"])
            self.assertEqual(response.headers.getRawHeaders("cache-control"), ["max-age=604800"])
        self.assertTrue(os.path.isfile(lf.getFilename() + "@text.gz"))
        response, body = yield self.get_gzip(PATH + "/text", method="HEAD")
        self.assertEqual(response.headers.getRawHeaders("content-encoding"), ["gzip"])
        self.assertEqual(body, b"")
        for refused in ("gzip;q=0, identity", "identity", "br", "*;q=0"):
            response, body = yield self.get_gzip(PATH + "/text", accept=refused)
            self.assertEqual((response.code, body), (200, text), refused)
            self.assertIsNone(response.headers.getRawHeaders("content-encoding"), refused)
        self.assertEqual(_finished.BLOCK_SIZES.big, 0)

    @defer.inlineCallbacks
    def test_encoded_page_follows_its_spool(self):
        """A spool that changed (rebuilt, compressed) since: the page is made again."""
        lf = yield self.finished_log("raw")
        text, _ = yield self.expected()
        yield self.encoded(PATH + "/text")
        spool = _spool.existing_spool(lf.getFilename())
        os.utime(spool, ns=(0, os.stat(spool).st_mtime_ns + 10**9))
        response, body = yield self.get_gzip(PATH + "/text")
        self.assertEqual((body, response.headers.getRawHeaders("content-encoding")), (text, None))
        response, body = yield self.encoded(PATH + "/text")
        self.assertEqual(gzip.decompress(body), text)

    @defer.inlineCallbacks
    def test_files_this_master_did_not_write_are_not_sent(self):
        """
        An encoded page left by an earlier run is made again; one replaced
        by a link is replaced in turn, and what the link led to is untouched.
        """
        lf = yield self.finished_log("gz")
        text, _ = yield self.expected()
        target = lf.getFilename() + "@text.gz"
        with open(target, "wb") as f:
            f.write(gzip.compress(b"left by an earlier run\n"))
        # What an earlier run's make left when it crashed mid-write.
        cut_short = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.x1.tmp")
        with open(cut_short, "wb") as f:
            f.write(b"\x1f\x8b")
        response, body = yield self.encoded(PATH + "/text")
        self.assertEqual(gzip.decompress(body), text)
        self.assertFalse(os.path.exists(cut_short))
        outside = self.mktemp()
        with open(outside, "wb") as f:
            f.write(gzip.compress(b"secret\n"))
        os.unlink(target)
        os.symlink(os.path.abspath(outside), target)
        response, body = yield self.get_gzip(PATH + "/text")
        self.assertEqual((body, response.headers.getRawHeaders("content-encoding")), (text, None))
        response, body = yield self.encoded(PATH + "/text")
        self.assertEqual(gzip.decompress(body), text)
        self.assertFalse(os.path.islink(target))
        with open(outside, "rb") as f:
            self.assertEqual(gzip.decompress(f.read()), b"secret\n")
        # A FIFO in its place (opening one waits for a writer) is no file.
        os.unlink(target)
        os.mkfifo(target)
        response, body = yield self.get_gzip(PATH + "/text")
        self.assertEqual((body, response.headers.getRawHeaders("content-encoding")), (text, None))
        response, body = yield self.encoded(PATH + "/text")
        self.assertEqual(gzip.decompress(body), text)


class DatabaseAwayTests(PostgresTestCase, FinishedLogCase):
    @defer.inlineCallbacks
    def test_a_page_while_the_server_ends_every_connection(self):
        """
        A finished log's spool gone as the database server ends every
        connection (as it does when it restarts): each answer is a 503
        to try again or the whole log, never a page that hangs.
        """
        assert self.server is not None
        database = self.fresh_database()
        yield self.start_master({"b1": [python_step("emit", EMIT)]}, http=True, db_url=database)
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        text, _ = yield self.expected()
        response, body = yield self.get(PATH + "/text")
        self.assertEqual((response.code, body), (200, text))
        lf = yield self.legacy_status().getLogFile("b1", 1, "emit", "stdio")
        os.unlink(_spool.existing_spool(lf.getFilename()))
        name = database.rsplit("/", 1)[1]
        with contextlib.closing(self.server.connect()) as conn:
            conn.cursor().execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        answers = []
        while not answers or answers[-1][0] != 200:
            self.assertLess(len(answers), 5, answers)
            response, body = yield self.get(PATH + "/text")
            retry = response.headers.getRawHeaders("retry-after")
            answers.append((response.code, retry, body if response.code == 503 else None))
        self.assertEqual(body, text)
        self.assertGreater(len(answers), 1)  # the database failed a request
        for answer in answers[:-1]:
            self.assertEqual(answer, (503, ["1"], b"The database did not answer; try again.\n"))
        # As Buildbot's pool logs each statement the server ended.
        self.flushLoggedErrors(sa.exc.OperationalError)
