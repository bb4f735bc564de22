"""The old log pages over real HTTP (treq) from a real master."""

from __future__ import annotations

import gc
import gzip
import html
import random
import re
import textwrap
from typing import Any
from urllib.parse import urljoin

import treq
from buildbot.plugins import util
from buildbot.process.buildstep import BuildStep
from buildbot.process.results import SUCCESS
from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.web import client
from twisted.web.http_headers import Headers

from buildbot_logfile import _build_status, web
from buildbot_logfile._render import PAGE_FOOTER, AnsiHTMLRenderer, page_header
from buildbot_logfile.logfile import LogFileProducer
from tests.authz_rules import BuilderMatcher, BuildGetMatcher, EndpointsMatcher, LogTextMatcher
from tests.masters import (
    LiveLog,
    MasterTestCase,
    Recorder,
    db_chunks,
    db_text,
    html_log_step,
    live_log_step,
    merged,
    named_logs_step,
    poll,
    python_step,
)

EMIT = textwrap.dedent(
    r"""
    import sys
    sys.stdout.write("plain <b>&</b>\n"); sys.stdout.flush()
    sys.stderr.write("\x1b[1;31mbold red\x1b[0m after\n"); sys.stderr.flush()
    sys.stdout.write("caf\u00e9 <script>alert(1)</script>\n")
    """
)


# Readers and receivers of one live log in the fan-out test.
LIVE_READERS = 200
LIVE_RECEIVERS = 20


class WebTestCase(MasterTestCase):
    def start(self, builders: dict, **extra) -> defer.Deferred:
        return self.start_master(builders, http=True, **extra)

    def url(self, path: str) -> str:
        return self.pages + path

    @defer.inlineCallbacks
    def get(self, path: str, method: str = "GET") -> defer.Generator:
        response = yield treq.request(method, self.url(path), persistent=False)
        body = yield treq.content(response)
        return response, body


class PageTests(WebTestCase):
    @defer.inlineCallbacks
    def test_finished_log_pages(self) -> defer.Generator:
        yield self.start({"b1": [python_step("emit", EMIT)]})
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        _, content = yield self.db_log("b1", 1, "emit", "stdio")
        chunks = db_chunks("s", content)

        response, body = yield self.get("/builders/b1/builds/1/steps/emit/logs/stdio")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"]
        )
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["max-age=604800"])
        renderer = AnsiHTMLRenderer()
        spans = "".join(renderer.render(channel, text) for channel, text in chunks)
        self.assertEqual(body, page_header("stdio/text", live=False) + spans.encode() + PAGE_FOOTER)
        text = body.decode()
        self.assertIn("<title>Log File contents</title>", text)
        self.assertIn('<a href="stdio/text">(view as text)</a>', text)
        self.assertIn(
            '<span class="stderr ansi1 ansi31">bold red</span><span class="stderr"> after\n</span>',
            text,
        )
        self.assertIn("caf\u00e9 &lt;script&gt;alert(1)&lt;/script&gt;", text)
        self.assertNotIn("<script>alert", text)
        self.assertTrue(text.endswith("</pre>\n</body>\n</html>\n"))

        response, body = yield self.get("/builders/b1/builds/1/steps/emit/logs/stdio/text")
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"]
        )
        expected = "".join(t for c, t in chunks if c in (0, 1)).encode()
        self.assertEqual(body, expected)

        response, body = yield self.get(
            "/builders/b1/builds/1/steps/emit/logs/stdio", method="HEAD"
        )
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["max-age=604800"])
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"]
        )

    @defer.inlineCallbacks
    def test_text_from_an_offset(self) -> defer.Generator:
        yield self.start({"b1": [python_step("emit", "print('ab\u00e9cd')")]})
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        path = "/builders/b1/builds/1/steps/emit/logs/stdio/text"
        response, body = yield self.get(path + "?start=1")
        self.assertEqual(body, "b\u00e9cd\n".encode())
        self.assertEqual(response.headers.getRawHeaders("x-text-size"), ["7"])
        self.assertIsNone(response.headers.getRawHeaders("x-more-data"))
        response, body = yield self.get(path + "?start=3")  # inside the e-acute
        self.assertEqual(body, b"cd\n")
        response, body = yield self.get(path + "?start=99")
        self.assertEqual((body, response.headers.getRawHeaders("x-text-size")), (b"", ["7"]))
        self.patch(web, "START_LIMIT", 4)  # a finished log, answered in pages
        response, body = yield self.get(path + "?start=0")
        self.assertEqual(body, "ab\u00e9".encode())
        self.assertEqual(response.headers.getRawHeaders("x-text-size"), ["4"])
        self.assertEqual(response.headers.getRawHeaders("x-more-data"), ["true"])
        for bad in ("-1", "x", "", "1" * 20):
            response, _ = yield self.get(path + "?start=" + bad)
            self.assertEqual(response.code, 400)
            # of a finished log, whose pages may be kept a week: not this
            self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-store"])

    @defer.inlineCallbacks
    def test_not_found_and_hostile_paths(self) -> defer.Generator:
        yield self.start({"b1": [python_step("emit", "print(1)")]})
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        for path in [
            "/builders/nope/builds/1/steps/emit/logs/stdio",
            "/builders/b1/builds/2/steps/emit/logs/stdio",
            "/builders/b1/builds/1/steps/nope/logs/stdio",
            "/builders/b1/builds/1/steps/emit/logs/nope",
            "/builders/b1/builds/1/steps/emit/logs/nope/text",
            "/builders/b1/builds/9",
            "/builders/1/builds/1/steps/emit/logs/stdio",  # b1's id is not its name
        ]:
            response, body = yield self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertTrue(body.startswith(b"No such "), body)
        hostile = [
            "/builders/b1/builds/x/steps/emit/logs/stdio",
            "/builders/b1/builds/-1/steps/emit/logs/stdio",
            "/builders/../../../../etc/passwd",
            "/builders/b1/builds/1/steps/..%2F..%2F..%2Fetc/logs/passwd",
            "/builders/%2e%2e/builds/1/steps/%2e%2e/logs/%2e%2e",
            "/builders/b1/builds/1/steps/emit/logs/..%2f..%2fstate.sqlite",
            "/builders/b1%00/builds/1/steps/emit/logs/stdio",
            "/builders/b1/builds/99999999999999999999999/steps/emit/logs/stdio",
            "/builders/" + "a" * 5000 + "/builds/1",
            "/builders/\u2603/builds/1/steps/\u00e9/logs/stdio/text?start=1",
            "/%ff%fe/builders",
            "/",
        ]
        rng = random.Random(4)
        alphabet = "ab/%.\\:?#&=;~\u00e9\u2603\x7f 0123456789"
        for _ in range(60):
            hostile.append(
                "/builders/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
            )
        for path in hostile:
            response, body = yield self.get(path)
            # what a "#" or "?" leaves of it may be /builders/, the builders page
            sent = re.split("[#?]", path)[0]
            self.assertIn(response.code, (200,) if sent == "/builders/" else (400, 404), path)
            self.assertNotIn(b"root:", body)

    @defer.inlineCallbacks
    def test_listings(self) -> defer.Generator:
        yield self.start({"b1": [python_step("emit", "print(1)")]})
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        response, body = yield self.get("/builders/b1/builds/1")
        self.assertEqual(response.code, 200)
        self.assertIn(b'<a href="1/steps/emit/logs/stdio">stdio</a>', body)
        response, body = yield self.get("/builders/b1/builds/1/steps/emit/logs/")
        self.assertIn(b'<a href="stdio">stdio</a> (<a href="stdio/text">text</a>)', body)

    @defer.inlineCallbacks
    def test_spool_gone_is_rebuilt_and_served_whole(self) -> defer.Generator:
        import shutil

        yield self.start({"b1": [python_step("emit", EMIT)]})
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        shutil.rmtree(self.legacy_status().spool_dir)
        _, content = yield self.db_log("b1", 1, "emit", "stdio")
        _, body = yield self.get("/builders/b1/builds/1/steps/emit/logs/stdio/text")
        self.assertEqual(
            body, "".join(t for c, t in db_chunks("s", content) if c in (0, 1)).encode()
        )

    @defer.inlineCallbacks
    def test_safety_headers_redirects_and_odd_requests(self) -> defer.Generator:
        yield self.start(
            {"b1": [python_step("emit", "print(1)"), html_log_step("a/b", "<p>x</p>")]}
        )
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        for path in ("/builders/b1/builds/1/steps/emit/logs/stdio/text", "/builders/nope/builds/1",
                     "/%ff"):  # fmt: skip
            response, _ = yield self.get(path)
            self.assertEqual(response.headers.getRawHeaders("x-content-type-options"), ["nosniff"])
            self.assertEqual(response.headers.getRawHeaders("x-frame-options"), ["SAMEORIGIN"])
        # a relative redirect, whatever Host says
        response = yield treq.get(
            self.url("/builders/b1/builds/1/steps/emit/logs"),
            headers={"Host": "evil.example"}, allow_redirects=False, persistent=False,
        )  # fmt: skip
        self.assertEqual(
            (response.code, response.headers.getRawHeaders("location")), (301, ["logs/"])
        )
        # build numbers in ASCII digits only: U+0661 is an Arabic-Indic 1
        response, _ = yield self.get("/builders/b1/builds/%D9%A1")
        self.assertEqual(response.code, 404)
        # a log whose name holds a "/" is linked by its slug, which resolves
        _, listing = yield self.get("/builders/b1/builds/1")
        (link,) = [
            h
            for h in re.findall(rb'href="([^"]+)"', listing)
            if b"report/logs/" in h and not h.endswith(b"/text")
        ]
        response, body = yield self.get("/builders/b1/builds/" + link.decode())
        self.assertEqual((response.code, body), (200, b"<p>x</p>\n"))

    @defer.inlineCallbacks
    def test_a_host_header_that_is_not_ascii_is_a_400(self) -> defer.Generator:
        yield self.start({"b1": []})

        client = yield ClientCreator(reactor, RecordingClient).connectTCP(
            "127.0.0.1", self.legacy_status().http_listener.getHost().port
        )
        client.transport.write(b"GET /builders/b1/builds/1 HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n")
        yield poll(lambda: b"\r\n\r\n" in client.received, "an answer")
        self.assertTrue(client.received.startswith(b"HTTP/1.1 400 "), client.received)
        client.transport.loseConnection()
        self.assertEqual(self.flushLoggedErrors(), [])

    @defer.inlineCallbacks
    def test_html_log_is_sandboxed(self) -> defer.Generator:
        yield self.start({"b1": [html_log_step("summary", "<h1>Hi</h1><script>alert(1)</script>")]})
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        response, body = yield self.get("/builders/b1/builds/1/steps/report/logs/summary")
        self.assertEqual(body, b"<h1>Hi</h1><script>alert(1)</script>\n")
        self.assertEqual(response.headers.getRawHeaders("content-security-policy"), ["sandbox"])
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"]
        )


class RecordingClient(Protocol):
    """A raw TCP client that keeps what it receives."""

    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class EndingClient(RecordingClient):
    """A raw TCP client that keeps what it receives and notes when its connection ends."""

    def __init__(self) -> None:
        super().__init__()
        self.ended = False

    def connectionLost(self, reason: Any) -> None:
        self.ended = True


def live_producers(master: Any) -> list[LogFileProducer]:
    """The producers following logs of C{master} (not those an earlier test left)."""
    gc.collect()
    return [
        p
        for p in gc.get_objects()
        if isinstance(p, LogFileProducer) and p.subscribed and p.logfile.master is master
    ]


class LiveTests(WebTestCase):
    # The log of build 1's step "slow" on builder b1.
    SLOW_LOG = "/builders/b1/builds/1/steps/slow/logs/stdio"

    @defer.inlineCallbacks
    def stream_slow_text(self) -> Any:
        """
        GET the text page of L{SLOW_LOG} once the bridge has the log: the
        response, the list its body's parts go into as they come, and the
        Deferred that fires as the body ends.
        """
        yield poll(
            lambda: self.legacy_status().lookup.locate_log("b1", 1, "slow", "stdio"), "the log"
        )
        received: list[bytes] = []
        response = yield treq.get(
            self.url(self.SLOW_LOG + "/text"), unbuffered=True, persistent=False
        )
        return response, received, treq.collect(response, received.append)

    @defer.inlineCallbacks
    def test_live_text_arrives_while_the_log_is_written(self) -> defer.Generator:
        live = LiveLog()
        yield self.start({"b1": [live_log_step(live, "slow")]})
        yield self.force("b1")
        yield live.opened
        yield live.write(stdout="\x1b[32mline 0\x1b[0m\n")
        response, received, collected = yield self.stream_slow_text()
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-cache"])
        head = yield treq.head(self.url(self.SLOW_LOG), persistent=False)
        self.assertEqual(head.headers.getRawHeaders("cache-control"), ["no-cache"])
        expected = "\x1b[32mline 0\x1b[0m\n"
        for i in range(1, 6):
            line = f"line {i}\n"
            yield live.write(stdout=line, stderr="err\n" if i == 3 else "")
            expected += line + ("err\n" if i == 3 else "")
            yield poll(lambda e=expected: b"".join(received) == e.encode(), f"line {i} on the page")
            self.assertFalse(collected.called)
        live.end()
        yield collected
        _, content = yield self.db_log("b1", 1, "slow", "stdio")
        self.assertEqual(b"".join(received), db_text(content).encode())
        self.assertEqual(db_text(content), expected)

    @defer.inlineCallbacks
    def test_many_live_readers_and_receivers_each_get_every_byte(self) -> defer.Generator:
        # Issue 13's fan-out, scaled to a test: readers that arrive before
        # the log is written and while it is, and receivers, all following
        # one live log (bench_fanout runs 1,000 readers and 100 receivers).
        live = LiveLog()
        receivers = [Recorder(f"r{i}") for i in range(LIVE_RECEIVERS)]
        yield self.start({"b1": [live_log_step(live, "slow")]}, receivers=receivers)
        yield self.force("b1")
        yield live.opened
        written = "before any reader\n"
        yield live.write(stdout=written)
        streams = []
        for _ in range(LIVE_READERS // 2):
            streams.append((yield self.stream_slow_text()))
        rng = random.Random(13)
        for i in range(200):
            stdout = "".join(f"out {i}.{j} caf\u00e9 \u2603\n" for j in range(rng.randrange(1, 40)))
            stderr = f"err {i}\n" if rng.random() < 0.2 else ""
            yield live.write(stdout=stdout, stderr=stderr)
            written += stdout + stderr
            if i % 4 == 0 and len(streams) < LIVE_READERS:
                for _ in range(LIVE_READERS // 100):
                    streams.append((yield self.stream_slow_text()))
        self.assertEqual(len(streams), LIVE_READERS)
        self.assertEqual([c for _, _, c in streams if c.called], [])
        live.end()
        yield defer.gatherResults([collected for _, _, collected in streams])
        for recorder in receivers:
            yield recorder.wait_for_builds(1)
        _, content = yield self.db_log("b1", 1, "slow", "stdio")
        self.assertEqual(db_text(content), written)
        text = written.encode()
        for n, (_, received, _) in enumerate(streams):
            self.assertEqual(b"".join(received), text, f"reader {n}")
        for recorder in receivers:
            self.assertEqual(
                merged(recorder.chunks[(1, "slow", "stdio")]), db_chunks("s", content), recorder
            )

    @defer.inlineCallbacks
    def test_a_live_log_of_a_build_whose_start_could_not_be_read(self) -> defer.Generator:
        # The bridge failed to read build 1 as it started (the database
        # away for a moment): receivers never hear of it, but its pages
        # still stream it live and end with it, and the next build is
        # heard as ever.
        load_build_data = _build_status.load_build_data
        failures = []

        def failing_once(data: Any, build: Any) -> Any:
            if not failures:
                failures.append(build)
                raise RuntimeError("the database is away")
            return load_build_data(data, build)

        self.patch(_build_status, "load_build_data", failing_once)
        live = LiveLog()
        yield self.start(
            {"b1": [live_log_step(live, "slow")], "b2": [python_step("emit", "print('b2')")]}
        )
        yield self.force("b1")
        yield live.opened
        yield live.write(stdout="line 0\n")
        _, received, collected = yield self.stream_slow_text()
        expected = "line 0\n"
        for i in range(1, 4):
            yield live.write(stdout=f"line {i}\n")
            expected += f"line {i}\n"
            yield poll(lambda e=expected: b"".join(received) == e.encode(), f"line {i} on the page")
        live.end()
        yield collected
        _, content = yield self.db_log("b1", 1, "slow", "stdio")
        self.assertEqual(b"".join(received), db_text(content).encode())
        self.assertEqual(len(failures), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        yield self.force("b2")
        yield self.recorder.wait_for_builds(1)
        heard = {
            (event[1], event[2])
            for event in self.recorder.events
            if event[0] in ("buildStarted", "buildFinished")
        }
        self.assertEqual(heard, {("b2", 1)})

    @defer.inlineCallbacks
    def test_a_client_that_disconnects_stops_its_producer(self) -> defer.Generator:
        live = LiveLog()
        yield self.start({"b1": [live_log_step(live, "slow")]})
        yield self.force("b1")
        yield live.opened
        yield live.write(stdout="line 0\n")

        client = yield ClientCreator(reactor, RecordingClient).connectTCP(
            "127.0.0.1", self.legacy_status().http_listener.getHost().port
        )
        client.transport.write(
            b"GET /builders/b1/builds/1/steps/slow/logs/stdio HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        yield poll(lambda: b"line 0" in client.received, "the page's first line")
        self.assertEqual(len(live_producers(self.master)), 1)
        client.transport.loseConnection()
        yield poll(lambda: not live_producers(self.master), "the producer to stop")
        yield live.write(stdout="line 1\n")  # goes nowhere, breaks nothing
        live.end()
        yield self.recorder.wait_for_builds(1)


class AuthzTests(MasterTestCase):
    @defer.inlineCallbacks
    def start(self, authz) -> defer.Generator:
        yield self.start_master(
            {"b1": [python_step("emit", "print('secret')")]},
            http=True,
            www={
                "port": "tcp:0:interface=127.0.0.1",
                "plugins": {"legacy_logs": {}},
                "authz": authz,
            },
        )
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        self.www = f"http://127.0.0.1:{self.master.www.getPortnum()}/plugins/legacy_logs"
        self.standalone = self.pages

    @defer.inlineCallbacks
    def fetch(self, url: str) -> defer.Generator:
        response = yield treq.get(url, persistent=False)
        body = yield treq.content(response)
        return response.code, body

    @defer.inlineCallbacks
    def test_allowed(self) -> defer.Generator:
        yield self.start(util.Authz())
        for base in (self.www, self.standalone):
            response = yield treq.get(
                base + "/builders/b1/builds/1/steps/emit/logs/stdio/text", persistent=False
            )
            self.assertEqual((response.code, (yield treq.content(response))), (200, b"secret\n"))
            # anyone may see it: caches may keep it
            self.assertEqual(response.headers.getRawHeaders("cache-control"), ["max-age=604800"])
        code, _ = yield self.fetch(self.www + "/scripts.js")
        self.assertEqual(code, 200)
        code, _ = yield self.fetch(self.www + "/styles.css")
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_the_plugins_root_and_files(self) -> defer.Generator:
        yield self.start(util.Authz())
        # /plugins/legacy_logs, with no "/": the pages' own 404, as for "/"
        for method in ("GET", "HEAD"):
            response = yield treq.request(method, self.www, persistent=False)
            body = yield treq.content(response)
            expected = b"No such page '/': the pages start at /builders\n"
            self.assertEqual((response.code, body), (404, b"" if method == "HEAD" else expected))
            self.assertEqual(response.headers.getRawHeaders("x-frame-options"), ["SAMEORIGIN"])
        for name, content_type in (
            ("scripts.js", "application/javascript"),
            ("styles.css", "text/css"),
        ):
            response = yield treq.get(f"{self.www}/{name}", persistent=False)
            yield treq.content(response)
            headers = response.headers
            self.assertEqual(headers.getRawHeaders("content-type"), [content_type])
            self.assertEqual(headers.getRawHeaders("x-content-type-options"), ["nosniff"])
            self.assertEqual(headers.getRawHeaders("x-frame-options"), ["SAMEORIGIN"])
            for method in ("PUT", "OPTIONS", "POST"):
                response = yield treq.request(method, f"{self.www}/{name}", persistent=False)
                body = yield treq.content(response)
                self.assertEqual(
                    (response.code, body), (405, b"The pages only answer GET and HEAD.\n")
                )
                self.assertEqual(response.headers.getRawHeaders("allow"), ["GET, HEAD"])
            code, body = yield self.fetch(f"{self.www}/{name}/x")
            self.assertEqual((code, body), (404, b"No such page.\n"))

    @defer.inlineCallbacks
    def test_denied(self) -> defer.Generator:
        yield self.start(
            util.Authz(
                allowRules=[util.AnyEndpointMatcher(role="admins")],
                roleMatchers=[],
            )
        )
        for base in (self.www, self.standalone):
            for path in (
                "/builders/b1/builds/1/steps/emit/logs/stdio/text",
                "/builders/b1/builds/1/steps/emit/logs/stdio",
                "/builders/b1/builds/1",
                "/builders/b1/builds/1/steps/emit/logs/",
                # what does not exist answers as what does: nothing to learn
                "/builders/nope/builds/1/steps/emit/logs/stdio",
                "/builders/b1/builds/9",
                "/builders/b1/builds/1/steps/nope/logs/stdio/text",
                "/builders/b1/builds/1/steps/emit/logs/nope",
                "/builders/b1/builds/abc",
                "/builders/b1/builds/1/steps/emit/logs/stdio/text/extra",
                "/builders/b1/builds/1/steps/../logs",
                "/builders/",
            ):
                code, body = yield self.fetch(base + path)
                self.assertEqual(code, 403, base + path)
                self.assertNotIn(b"secret", body)

    @defer.inlineCallbacks
    def check_as_the_data_api(self, answers: dict[tuple[str, str], int]) -> defer.Generator:
        """Each page (and the data API path of what it shows) answers with its code."""
        api = f"http://127.0.0.1:{self.master.www.getPortnum()}/api/v2"
        for (page, data_path), expected in answers.items():
            code, _ = yield self.fetch(api + data_path)
            self.assertEqual(code, expected, data_path)
            for base in (self.www, self.standalone):
                code, body = yield self.fetch(base + page)
                self.assertEqual(code, expected, base + page)
                if expected == 403:
                    self.assertEqual(body, b"You may not view this.\n")

    @defer.inlineCallbacks
    def test_a_log_whose_text_only_some_may_read(self) -> defer.Generator:
        # A rule on a log's text (the data API's .../contents) alone.
        yield self.start(util.Authz(allowRules=[LogTextMatcher(role="admins")], roleMatchers=[]))
        log = "/builders/b1/builds/1/steps/emit/logs/stdio"
        data_log = "/builders/1/builds/1/steps/1/logs/stdio"
        yield self.check_as_the_data_api({
            (log + "/text", data_log + "/contents"): 403,
            (log + "/text?start=2", data_log + "/raw"): 403,
            (log, data_log + "/contents"): 403,
            ("/builders/b1/builds/1/steps/emit/logs/", data_log): 200,
            ("/builders/b1/builds/1/steps/emit", "/builders/1/builds/1/steps/1"): 200,
            ("/builders/b1/builds/1", "/builders/1/builds/1"): 200,
        })  # fmt: skip

    @defer.inlineCallbacks
    def test_a_rule_on_the_get_of_a_build(self) -> defer.Generator:
        # The action is the one REST asks with, GET.
        yield self.start(util.Authz(allowRules=[BuildGetMatcher(role="admins")], roleMatchers=[]))
        yield self.check_as_the_data_api({
            ("/builders/b1/builds/1", "/builders/1/builds/1"): 403,
            ("/builders/b1", "/builders/1"): 200,
        })  # fmt: skip

    @defer.inlineCallbacks
    def test_a_rule_on_the_builder_itself(self) -> defer.Generator:
        # The builder page shows the builder: asked as the data API asks for it.
        rule = EndpointsMatcher("admins", "BuilderEndpoint")
        yield self.start(util.Authz(allowRules=[rule], roleMatchers=[]))
        yield self.check_as_the_data_api({
            ("/builders/b1", "/builders/1"): 403,
            ("/builders/b1/builds/1", "/builders/1/builds/1"): 200,
        })  # fmt: skip

    @defer.inlineCallbacks
    def test_a_build_that_does_not_exist_of_a_builder_known_by_id(self) -> defer.Generator:
        # A rule that knows the builder by id only: a build that is not
        # there is refused as one that is, not told apart by a 404.
        yield self.start(
            util.Authz(allowRules=[BuilderMatcher(role="admins", builder="b1")], roleMatchers=[])
        )
        yield self.check_as_the_data_api({
            ("/builders/b1/builds/1", "/builders/1/builds/1"): 403,
            ("/builders/b1/builds/9", "/builders/1/builds/9"): 403,
            ("/builders/b1/builds/9/steps/emit/logs/stdio", "/builders/1/builds/9/steps/emit"): 403,
        })  # fmt: skip
        code, body = yield self.fetch(self.www + "/builders/nope/builds/9")
        self.assertEqual((code, body), (404, b"No such builder nope\n"))

    @defer.inlineCallbacks
    def test_pages_that_depend_on_who_asks_are_cached_privately(self) -> defer.Generator:
        yield self.start(util.Authz(allowRules=[util.StopBuildEndpointMatcher(role="admins")]))
        for base in (self.www, self.standalone):
            response = yield treq.get(
                base + "/builders/b1/builds/1/steps/emit/logs/stdio", persistent=False
            )
            yield treq.content(response)
            self.assertEqual(response.code, 200)
            self.assertEqual(
                response.headers.getRawHeaders("cache-control"), ["private, max-age=604800"]
            )

    @defer.inlineCallbacks
    def test_live_pages_are_held_to_the_rules_a_reconfig_brings(self) -> defer.Generator:
        live = LiveLog()
        www = {"port": "tcp:0:interface=127.0.0.1", "plugins": {"legacy_logs": {}}}
        yield self.start_master(
            {"b1": [live_log_step(live)]}, http=True, www={**www, "authz": util.Authz()}
        )
        yield self.force("b1")
        yield live.opened
        yield live.write(stdout="before\n")
        log = "/builders/b1/builds/1/steps/live/logs/stdio"
        clients = []
        for port, prefix in (
            (self.master.www.getPortnum(), "/plugins/legacy_logs"),
            (self.legacy_status().http_listener.getHost().port, ""),
        ):
            for page in (log, log + "/text"):
                client = yield ClientCreator(reactor, EndingClient).connectTCP("127.0.0.1", port)
                client.transport.write(f"GET {prefix}{page} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                clients.append(client)
        for client in clients:
            yield poll(lambda c=client: b"before" in c.received, "each page's first line")
        # New rules that let everyone see what they saw: the pages go on.
        yield self.reconfig(www={**www, "authz": util.Authz()})
        yield live.write(stdout="still\n")
        for client in clients:
            yield poll(lambda c=client: b"still" in c.received, "each page's next line")
        # Rules that let only admins read logs' text: nothing more goes out,
        # and each answer is cut off unfinished.
        only_admins = util.Authz(allowRules=[LogTextMatcher(role="admins")], roleMatchers=[])
        yield self.reconfig(www={**www, "authz": only_admins})
        yield live.write(stdout="secret\n")
        for client in clients:
            yield poll(lambda c=client: c.ended, "each page's connection to end")
            self.assertNotIn(b"secret", client.received)
            self.assertFalse(client.received.endswith(b"\r\n0\r\n\r\n"))
        self.assertEqual(live_producers(self.master), [])
        live.end()
        yield self.recorder.wait_for_builds(1)

    @defer.inlineCallbacks
    def test_paths_that_are_not_pages(self) -> defer.Generator:
        # What is wrong with a path is named, on the standalone port and
        # under the plugin alike; no answer is a redirect made from Host.
        yield self.start(util.Authz())
        not_a_number = "No such build b1 #{}: a build number is a whole number\n"
        answers = {
            "/builders/b1/builds/abc": not_a_number.format("abc"),
            "/builders/b1/builds/-1": not_a_number.format("-1"),
            "/builders/b1/builds/1e3": not_a_number.format("1e3"),
            "/builders/b1/builds/%C2%B2": not_a_number.format("\u00b2"),
            "/builders/b1/builds/abc/steps/emit/logs/stdio/text": not_a_number.format("abc"),
            "/builders/b1/builds/99999999999999999999999":
                "No such build b1 #99999999999999999999999\n",
            "/builders/b1/builds/1/steps/emit/logs/stdio/text/extra":
                "No such page '/logs/stdio/text/extra' in step 'emit' of build b1 #1\n",
            "/builders/b1/builds/1/steps/emit/logs/stdio/":
                "No such page '/logs/stdio/' in step 'emit' of build b1 #1\n",
            "/builders/b1/builds/1/steps/nope/logs/stdio/text/extra":
                "No such step 'nope' in build b1 #1\n",
            # the step is "..": no such step, so no redirect to its logs/
            "/builders/b1/builds/1/steps/../logs": "No such step '..' in build b1 #1\n",
            "/builders/b1/builds/1/steps/%2E%2E/logs": "No such step '..' in build b1 #1\n",
            "/builders/b1/builds/1/steps/..%2F..%2F..%2Fetc/logs":
                "No such step '../../../etc' in build b1 #1\n",
            "/builders/b1/builds/1/": "No such page '/builds/1/' in builder b1\n",
            "/builders/b1/builds/1/steps": "No such page '/builds/1/steps' in builder b1\n",
            "/builders/b1/builds": "No such page '/builds' in builder b1\n",
            "/builders/b1/": "No such page '/' in builder b1\n",
            "/builders/nope/builds/abc": "No such builder nope\n",
            "/builders//b1/builds/1": "No such page '/builders//b1/builds/1'\n",
            "/builders/b1/builds//1": "No such page '/builds//1' in builder b1\n",
            "/": "No such page '/': the pages start at /builders\n",
            "/nope": "No such page '/nope': the pages start at /builders\n",
        }  # fmt: skip
        for base in (self.www, self.standalone):
            for path, expected in answers.items():
                response = yield treq.get(
                    base + path, headers={"Host": "evil.example"}, allow_redirects=False,
                    persistent=False,
                )  # fmt: skip
                body = yield treq.content(response)
                self.assertEqual((response.code, body.decode()), (404, expected), base + path)
                self.assertEqual(
                    response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"]
                )
                self.assertIsNone(response.headers.getRawHeaders("location"), base + path)
            # /builders/ is the builders page, its links made for where it is
            response = yield treq.get(
                base + "/builders/", headers={"Host": "evil.example"}, allow_redirects=False,
                persistent=False,
            )  # fmt: skip
            body = yield treq.content(response)
            self.assertEqual(response.code, 200)
            self.assertIn(b'<li><a href="b1">b1</a></li>', body)
            _, slashless = yield self.fetch(base + "/builders")
            self.assertIn(b'<li><a href="builders/b1">b1</a></li>', slashless)
            self.assertEqual(body, slashless.replace(b'href="builders/', b'href="'))
            # a step that exists: its logs/, relative, whatever Host says
            response = yield treq.get(
                base + "/builders/b1/builds/1/steps/emit/logs?x=1",
                headers={"Host": "evil.example"}, allow_redirects=False, persistent=False,
            )  # fmt: skip
            self.assertEqual(
                (response.code, response.headers.getRawHeaders("location")), (301, ["logs/?x=1"])
            )
            self.assertEqual(
                response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"]
            )
            self.assertEqual((yield treq.content(response)), b"Moved to logs/?x=1\n")
            # the pages only read: other methods get a short text 405
            for method in ("POST", "PUT", "DELETE"):
                for path in ("/builders/b1/builds/1/steps/emit/logs/stdio/text", "/builders"):
                    response = yield treq.request(method, base + path, persistent=False)
                    body = yield treq.content(response)
                    self.assertEqual(
                        (response.code, body), (405, b"The pages only answer GET and HEAD.\n")
                    )
                    self.assertEqual(response.headers.getRawHeaders("allow"), ["GET, HEAD"])
                    self.assertEqual(
                        response.headers.getRawHeaders("content-type"),
                        ["text/plain; charset=utf-8"],
                    )


def live_named_log_step(control: LiveLog, log_name: str, name: str = "slash logs") -> BuildStep:
    """As L{live_log_step}, the log that C{control} writes named C{log_name}."""

    class LiveNamed(BuildStep):
        @defer.inlineCallbacks
        def run(self) -> Any:
            control.log = yield self.addLog(log_name)
            control.opened.callback(None)
            yield control._end
            yield control.log.finish()
            return SUCCESS

    return LiveNamed(name=name)


# The step of the logs named with a "/", and those logs, in build 1 of b1.
SLASH_STEP = "/builders/b1/builds/1/steps/slash%20logs"
SLASH_LOGS = SLASH_STEP + "/logs"
SLASH_LOGS_TEXT = {
    "a/b log": ("out <1>\n\u00e9 two\n", "err \x1b[31mred\x1b[0m\n"),
    "x": ("the log x\n", ""),
    "x/text": ("the log x/text\n", ""),
}


class SlashedLogNameTests(MasterTestCase):
    """
    A log whose name holds a "/" is reached by its name, as 0.8.14's
    WebStatus served it and its build page linked it (URL-quoted, "/" as
    %2F), and with a plain "/", and by its slug; on the standalone port and
    under the www plugin.
    """

    @defer.inlineCallbacks
    def start(self, steps: list[Any]) -> defer.Generator:
        yield self.start_master(
            {"b1": steps},
            http=True,
            www={"port": "tcp:0:interface=127.0.0.1", "plugins": {"legacy_logs": {}}},
        )
        www = f"http://127.0.0.1:{self.master.www.getPortnum()}/plugins/legacy_logs"
        self.bases = (self.pages, www)

    @defer.inlineCallbacks
    def get(self, url: str, method: str = "GET", accept: str | None = None) -> defer.Generator:
        """The answer as sent (not gzip-encoded unless C{accept} asks), and its body."""
        headers = Headers({} if accept is None else {"Accept-Encoding": [accept]})
        response = yield client.Agent(reactor).request(method.encode(), url.encode(), headers)
        body = yield client.readBody(response)
        return response, body

    @defer.inlineCallbacks
    def expected(self, log: str) -> defer.Generator:
        """The log's text page, and its HTML page's body without the page's head."""
        _, content = yield self.db_log("b1", 1, "slash logs", log)
        chunks = db_chunks("s", content)
        renderer = AnsiHTMLRenderer()
        spans = "".join(renderer.render(channel, text) for channel, text in chunks)
        text = "".join(t for c, t in chunks if c in (0, 1)).encode()
        return text, spans.encode() + PAGE_FOOTER

    @defer.inlineCallbacks
    def check_text(self, url: str, text: bytes) -> defer.Generator:
        response, body = yield self.get(url)
        self.assertEqual((response.code, body), (200, text), url)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"], url
        )
        response, body = yield self.get(url + "?start=2")
        self.assertEqual((response.code, body), (200, text[2:]), url)
        self.assertEqual(response.headers.getRawHeaders("x-text-size"), [str(len(text))], url)
        response, body = yield self.get(url, method="HEAD")
        self.assertEqual((response.code, body), (200, b""), url)
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["max-age=604800"])

    @defer.inlineCallbacks
    def check_html(self, url: str, text_link: str, page: bytes, text: bytes) -> defer.Generator:
        """The HTML page at C{url}, linking its text as C{text_link}, which leads to it."""
        response, body = yield self.get(url)
        self.assertEqual(
            (response.code, body), (200, page_header(text_link, live=False) + page), url
        )
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"], url
        )
        response, body = yield self.get(urljoin(url, text_link))
        self.assertEqual((response.code, body), (200, text), url)
        response, body = yield self.get(url, method="HEAD")
        self.assertEqual((response.code, body), (200, b""), url)
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["max-age=604800"])

    @defer.inlineCallbacks
    def test_the_links_of_a_step_named_with_a_slash_however_reached(self) -> defer.Generator:
        yield self.start([named_logs_step({"out": ("hello\n", "")}, name="a/b")])
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        for base in self.bases:
            build = base + "/builders/b1/builds/1"
            expected = {
                build,
                f"{build}/steps/a%2Fb/logs/out",
                f"{build}/steps/a%2Fb/logs/out/text",
            }
            for spelling in ("a%2Fb", "a/b"):
                response, body = yield self.get(f"{build}/steps/{spelling}")
                self.assertEqual(response.code, 200)
                links = {
                    urljoin(f"{build}/steps/{spelling}", href)
                    for href in re.findall(r'href="([^"]*)"', body.decode())
                }
                self.assertEqual(links, expected, spelling)
            for link in expected:
                response, _ = yield self.get(link)
                self.assertEqual(response.code, 200, link)

    @defer.inlineCallbacks
    def test_the_links_of_a_builder_named_with_a_slash_however_reached(
        self,
    ) -> defer.Generator:
        yield self.start_master(
            {"a/b": [named_logs_step({"out": ("hello\n", "")}, name="s")]}, http=True
        )
        yield self.force("a/b")
        yield self.recorder.wait_for_builds(1)
        builder = self.pages + "/builders/a%2Fb"
        for spelling in ("a%2Fb", "a/b"):
            for page in (f"/builders/{spelling}", f"/builders/{spelling}/builds/1"):
                url = self.pages + page
                response, body = yield self.get(url)
                self.assertEqual(response.code, 200, url)
                links = {
                    urljoin(url, html.unescape(href))
                    for href in re.findall(r'href="([^"]*)"', body.decode())
                }
                self.assertTrue(links & {builder, f"{builder}/builds/1"}, (url, links))
                for link in links:
                    response, _ = yield self.get(link)
                    self.assertEqual(response.code, 200, (url, link))

    @defer.inlineCallbacks
    def test_a_finished_log_named_with_a_slash(self) -> defer.Generator:
        yield self.start([named_logs_step(SLASH_LOGS_TEXT)])
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        text, page = yield self.expected("a/b log")
        self.assertEqual(text, "out <1>\n\u00e9 two\nerr \x1b[31mred\x1b[0m\n".encode())
        for base in self.bases:
            logs = base + SLASH_LOGS
            # as 0.8's build page linked it, with a plain "/", by its slug
            for spelling, link in [
                ("a%2Fb%20log", "a%2Fb%20log/text"),
                ("a/b%20log", "b%20log/text"),  # its last segment, as 0.8's link
                ("a_b_log", "a_b_log/text"),
            ]:
                yield self.check_html(f"{logs}/{spelling}", link, page, text)
                yield self.check_text(f"{logs}/{spelling}/text", text)
            # the pages' own links to it lead to it
            for listing in (base + SLASH_STEP[: -len("/steps/slash%20logs")], base + SLASH_STEP,
                            logs + "/"):  # fmt: skip
                _, body = yield self.get(listing)
                ((html_link, text_link),) = re.findall(
                    rb'<a href="([^"]+)">a/b log</a> \(<a href="([^"]+)">text</a>\)', body
                )
                response, body = yield self.get(urljoin(listing, html_link.decode()))
                self.assertEqual((response.code, body[-len(page) :]), (200, page), listing)
                response, body = yield self.get(urljoin(listing, text_link.decode()))
                self.assertEqual((response.code, body), (200, text), listing)
            # what is not a page stays a 404 that says why
            for path, expected in [
                ("/a/b%20log/text/extra", "No such page '/logs/a/b log/text/extra'"),
                ("/a%2Fb%20log/extra", "No such page '/logs/a/b log/extra'"),
                ("/a", "No such log 'a'"),
                ("/a/b", "No such page '/logs/a/b'"),
                ("/a_b_log/", "No such page '/logs/a_b_log/'"),
            ]:
                response, body = yield self.get(logs + path)
                self.assertEqual(
                    (response.code, body.decode()),
                    (404, expected + " in step 'slash logs' of build b1 #1\n"),
                    path,
                )

    @defer.inlineCallbacks
    def test_each_link_leads_to_its_own_log_where_slugs_and_names_meet(
        self,
    ) -> defer.Generator:
        # Buildbot slugs "a/b" as "a_b", and then the log named "a_b" as "a_b_2".
        texts = {name: (f"log {name}\n", "") for name in ("a/b", "a_b", "x y", "x_y", "..")}
        yield self.start([named_logs_step(texts, name="meet")])
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        for base in self.bases:
            build = base + "/builders/b1/builds/1"
            for listing in (build, f"{build}/steps/meet", f"{build}/steps/meet/logs/"):
                _, body = yield self.get(listing)
                found = re.findall(
                    r'<a href="([^"]+)">([^<]+)</a> \(<a href="([^"]+)">text</a>\)', body.decode()
                )
                self.assertEqual(sorted(html.unescape(name) for _, name, _ in found), sorted(texts))
                for html_link, name, text_link in found:
                    name = html.unescape(name)
                    response, page = yield self.get(urljoin(listing, html.unescape(text_link)))
                    self.assertEqual((response.code, page.decode()), (200, f"log {name}\n"), name)
                    response, page = yield self.get(urljoin(listing, html.unescape(html_link)))
                    self.assertEqual(response.code, 200, name)
                    self.assertIn(f"log {html.escape(name)}", page.decode())

    @defer.inlineCallbacks
    def test_names_of_dots_only_are_linked_so_that_browsers_follow(self) -> defer.Generator:
        # A browser resolves "." and "..", quoted or not, before it asks (as
        # urljoin does): builders and steps so named are linked as "_" and
        # "__", which a step named so keeps for itself (no builder's name
        # starts with "_").
        steps_of = {".": (".", ".."), "..": (".", ".."), "b1": (".", "__")}
        yield self.start_master(
            {
                b: [python_step(s, f"print('{b} {s}')") for s in steps]
                for b, steps in steps_of.items()
            },
            http=True,
            www={"port": "tcp:0:interface=127.0.0.1", "plugins": {"legacy_logs": {}}},
        )
        for builder in steps_of:
            yield self.force(builder)
        yield self.recorder.wait_for_builds(3)
        www = f"http://127.0.0.1:{self.master.www.getPortnum()}/plugins/legacy_logs"

        @defer.inlineCallbacks
        def follow(url: str, href: str) -> defer.Generator:
            target = urljoin(url, html.unescape(href))
            response, body = yield self.get(target)
            self.assertEqual(response.code, 200, target)
            return target, body.decode()

        def title(page: str) -> str:
            return html.unescape(re.search(r"<title>(.*?)</title>", page).group(1))

        status = self.legacy_status()
        for base in (self.pages, www):
            listing = base + "/builders"
            _, page = yield self.get(listing)
            links = re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', page.decode())
            self.assertEqual([html.unescape(name) for _, name in links], list(steps_of))
            for href, name in links:
                builder = html.unescape(name)
                url, page = yield follow(listing, href)
                self.assertEqual(title(page), f"Builder {builder}")
                (build_link,) = re.findall(r'href="([^"]+/builds/1)"', page)
                url, page = yield follow(url, build_link)
                self.assertEqual(title(page), f"Build {builder} #1")
                step_links = re.findall(r'<td><a href="([^"]+)">([^<]+)</a></td>', page)
                self.assertEqual(
                    [html.unescape(s) for _, s in step_links][1:], [*steps_of[builder]]
                )
                for step_href, step_name in step_links[1:]:
                    step = html.unescape(step_name)
                    step_url, step_page = yield follow(url, step_href)
                    self.assertEqual(title(step_page), f"Step {step} of build {builder} #1")
                    segment = html.unescape(step_href).rsplit("/", 1)[-1]
                    _, logs_page = yield follow(step_url, f"{segment}/logs/")
                    self.assertEqual(title(logs_page), f"Logs of step {step} in build {builder} #1")
                    (text_link,) = re.findall(r'\(<a href="([^"]+)">text</a>\)', step_page)
                    _, text = yield follow(step_url, text_link)
                    self.assertEqual(text, f"{builder} {step}\n")
                    # As plugins append to it (the URL is under buildbotURL).
                    log = yield status.getLogFile(builder, 1, step, "stdio")
                    path = status.getURLForThing(log).partition("/plugins/legacy_logs")[2]
                    _, text = yield follow(base, base + path + "/text")
                    self.assertEqual(text, f"{builder} {step}\n")

    @defer.inlineCallbacks
    def test_a_name_that_is_two_pages(self) -> defer.Generator:
        # "x/text" is the text page of the log "x" and the name of another
        # log: as in 0.8, where a %2F is part of a name and a "/" ends it.
        yield self.start([named_logs_step(SLASH_LOGS_TEXT)])
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        x_text, x_page = yield self.expected("x")
        slashed_text, slashed_page = yield self.expected("x/text")
        self.assertEqual((x_text, slashed_text), (b"the log x\n", b"the log x/text\n"))
        for base in self.bases:
            logs = base + SLASH_LOGS
            yield self.check_text(logs + "/x/text", x_text)
            yield self.check_html(logs + "/x", "x/text", x_page, x_text)
            yield self.check_html(logs + "/x%2Ftext", "x%2Ftext/text", slashed_page, slashed_text)
            yield self.check_text(logs + "/x%2Ftext/text", slashed_text)
            yield self.check_text(logs + "/x%2ftext/text", slashed_text)
            yield self.check_html(logs + "/x_text", "x_text/text", slashed_page, slashed_text)
            yield self.check_text(logs + "/x_text/text", slashed_text)

    @defer.inlineCallbacks
    def test_gzip_clients_get_a_page_whose_link_leads_to_the_text(self) -> defer.Generator:
        # The encoded page holds the link of the page that made it: one a
        # level further down is sent plain, its link its own.
        yield self.start([named_logs_step(SLASH_LOGS_TEXT)])
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        _, page = yield self.expected("a/b log")
        logs = self.pages + SLASH_LOGS

        @defer.inlineCallbacks
        def encoded() -> defer.Generator:
            response, body = yield self.get(logs + "/a%2Fb%20log", accept="gzip")
            if response.headers.getRawHeaders("content-encoding") == ["gzip"]:
                return body
            return None

        body = yield poll(encoded, "the encoded page")
        self.assertEqual(gzip.decompress(body), page_header("a%2Fb%20log/text", False) + page)
        response, body = yield self.get(logs + "/a/b%20log", accept="gzip")
        self.assertIsNone(response.headers.getRawHeaders("content-encoding"))
        self.assertEqual(body, page_header("b%20log/text", False) + page)

    @defer.inlineCallbacks
    def test_a_live_log_named_with_a_slash(self) -> defer.Generator:
        live = LiveLog()
        yield self.start([live_named_log_step(live, "a/b log")])
        yield self.force("b1")
        yield live.opened
        yield live.write(stdout="line 0\n")
        lookup = self.legacy_status().lookup
        yield poll(lambda: lookup.locate_log("b1", 1, "slash logs", "a/b log"), "the log")
        streams = []
        for base in self.bases:
            for spelling in ("a%2Fb%20log", "a/b%20log", "a_b_log"):
                url = f"{base}{SLASH_LOGS}/{spelling}"
                response = yield treq.get(url + "/text", unbuffered=True, persistent=False)
                self.assertEqual(
                    (response.code, response.headers.getRawHeaders("cache-control")),
                    (200, ["no-cache"]),
                    url,
                )
                received: list[bytes] = []
                streams.append((url, received, treq.collect(response, received.append)))
                response = yield treq.get(url, unbuffered=True, persistent=False)
                self.assertEqual(response.code, 200, url)
                html: list[bytes] = []
                streams.append((url, html, treq.collect(response, html.append)))
                response, body = yield self.get(url + "/text?start=2")
                self.assertEqual((response.code, body), (200, b"ne 0\n"), url)
                self.assertEqual(response.headers.getRawHeaders("x-more-data"), ["true"], url)
                response, body = yield self.get(url, method="HEAD")
                self.assertEqual((response.code, body), (200, b""), url)
                self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-cache"])
        expected = "line 0\n"
        for i in range(1, 4):
            yield live.write(stdout=f"line {i}\n", stderr="err\n" if i == 2 else "")
            expected += f"line {i}\n" + ("err\n" if i == 2 else "")
            for url, received, collected in streams[::2]:
                yield poll(lambda r=received, e=expected: b"".join(r) == e.encode(), url)
                self.assertFalse(collected.called)
        live.end()
        yield defer.gatherResults([collected for _, _, collected in streams])
        _, content = yield self.db_log("b1", 1, "slash logs", "a/b log")
        self.assertEqual(db_text(content), expected)
        for url, received, _ in streams[::2]:
            self.assertEqual(b"".join(received), expected.encode(), url)
        for url, html, _ in streams[1::2]:
            spelling = url.rsplit("/logs/", 1)[1]
            link = spelling.rsplit("/", 1)[-1] + "/text"
            body = b"".join(html)
            self.assertTrue(body.startswith(page_header(link, live=True)), url)
            self.assertTrue(body.endswith(PAGE_FOOTER), url)
            self.assertIn(b'<span class="stderr">err\n</span>', body)
