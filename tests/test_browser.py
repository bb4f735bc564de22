"""The HTML log page in a real headless Chromium, against a real master."""

from __future__ import annotations

import os
import shutil
import tempfile

import treq
from twisted.internet import defer, threads

from tests.masters import (
    LiveLog,
    MasterTestCase,
    html_log_step,
    live_log_step,
    poll,
    python_step,
)
from tests.support import cannot_run

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def new_driver(profile: str):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    # A live log page loads until the log ends: do not wait for it.
    options.page_load_strategy = "none"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
    )


class BrowserTests(MasterTestCase):
    timeout = 120

    def setUp(self) -> None:
        if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
            cannot_run(
                self,
                "needs Debian's chromium and chromium-driver"
                " (apt-get install chromium chromium-driver)",
            )

    @defer.inlineCallbacks
    def driver(self) -> defer.Generator:
        profile = tempfile.mkdtemp(prefix="chromium-")
        driver = yield threads.deferToThread(new_driver, profile)
        self.addCleanup(
            lambda: threads.deferToThread(driver.quit).addBoth(
                lambda _: shutil.rmtree(profile, ignore_errors=True)
            )
        )
        return driver

    def call(self, f, *args) -> defer.Deferred:
        """Selenium blocks: run it in a thread so the master keeps serving."""
        return threads.deferToThread(f, *args)

    @defer.inlineCallbacks
    def test_live_page_colours_follow_and_escape(self) -> defer.Generator:
        from selenium.webdriver.common.by import By

        live = LiveLog()
        yield self.start_master(
            {
                "b1": [
                    live_log_step(live, "slow"),
                    html_log_step(
                        "summary", "<p id='report'>fine</p><script>window.pwned = 1</script>"
                    ),
                ]
            },
            http=True,
            www={"port": "tcp:0:interface=127.0.0.1", "plugins": {"legacy_logs": {}}},
        )
        driver = yield self.driver()
        yield self.force("b1")
        yield live.opened

        @defer.inlineCallbacks
        def write_lines(first: int, last: int) -> defer.Generator:
            for i in range(first, last):
                yield live.write(stdout="\x1b[32mline %d\x1b[0m\n" % i)
                if i == 6:
                    yield live.write(stderr="<script>window.pwned = 1</script>\n")

        def green_spans() -> defer.Deferred:
            return self.call(driver.find_elements, By.CSS_SELECTOR, "span.stdout.ansi32")

        @defer.inlineCallbacks
        def spans_count(n: int) -> defer.Generator:
            return len((yield green_spans())) == n

        yield write_lines(0, 7)
        page = self.pages + "/builders/b1/builds/1/steps/slow/logs/stdio"
        yield self.call(driver.get, page)
        yield poll(lambda: spans_count(7), "the first seven lines on the live page")
        yield write_lines(7, 14)
        yield poll(lambda: spans_count(14), "all lines on the live page")
        self.assertEqual(self.recorder.finished_builds, 0)
        live.end()
        yield self.recorder.wait_for_builds(1)
        spans = yield green_spans()
        self.assertEqual(len(spans), 14)
        colour = yield self.call(spans[0].value_of_css_property, "color")
        self.assertEqual(colour, "rgba(0, 119, 0, 1)")
        title = yield self.call(lambda: driver.title)
        self.assertEqual(title, "Log File contents")
        pwned = yield self.call(driver.execute_script, "return window.pwned === undefined")
        self.assertTrue(pwned, "log text ran as script")
        stderr = yield self.call(driver.find_element, By.CSS_SELECTOR, "span.stderr")
        self.assertEqual(
            (yield self.call(lambda: stderr.text)), "<script>window.pwned = 1</script>"
        )

        link = yield self.call(driver.find_element, By.LINK_TEXT, "(view as text)")
        yield self.call(link.click)

        @defer.inlineCallbacks
        def text_page() -> defer.Generator:
            url = yield self.call(lambda: driver.current_url)
            body = yield self.call(lambda: driver.find_element(By.TAG_NAME, "body").text)
            return url == page + "/text" and "line 13" in body and body

        body = yield poll(text_page, "the text page")
        self.assertIn("line 0\x1b[0m\n", body)

        # build-made HTML is sandboxed: its script does not run
        yield self.call(driver.get, self.pages + "/builders/b1/builds/1/steps/report/logs/summary")
        found = yield poll(lambda: self.call(driver.find_elements, By.ID, "report"), "the HTML log")
        self.assertEqual(len(found), 1)
        ran = yield self.call(driver.execute_script, "return window.pwned")
        self.assertIsNone(ran)

    @defer.inlineCallbacks
    def test_the_modern_ui_still_loads_with_the_plugin(self) -> defer.Generator:
        from selenium.webdriver.common.by import By

        yield self.start_master(
            {"b1": []},
            www={"port": "tcp:0:interface=127.0.0.1", "plugins": {"legacy_logs": {}}},
        )
        driver = yield self.driver()
        yield self.call(driver.get, f"http://127.0.0.1:{self.master.www.getPortnum()}/#/builders")
        yield poll(
            lambda: self.call(driver.find_elements, By.LINK_TEXT, "b1"), "the builder in the UI"
        )
        entries = yield self.call(driver.get_log, "browser")
        errors = [
            e["message"]
            for e in entries
            if e["level"] == "SEVERE" and "legacy_logs" in e["message"]
        ]
        self.assertEqual(errors, [])

    @defer.inlineCallbacks
    def test_every_link_of_the_page_set_resolves(self) -> defer.Generator:
        from selenium.webdriver.common.by import By

        live = LiveLog()
        yield self.start_master(
            {
                "b1": [python_step("emit", "print('done')"), live_log_step(live, "slow")],
                "b/2": [python_step("emit", "print('other')")],
            },
            http=True,
        )
        self.addCleanup(lambda: None if live._end.called else live.end())
        yield self.force("b/2")
        yield self.force("b1")
        yield self.recorder.wait_for_builds(1)
        yield live.opened
        yield live.write(stdout="live line\n")
        driver = yield self.driver()
        pages = [self.pages + "/builders"]
        seen_pages: set[str] = set()
        checked: dict[str, int] = {}
        while pages:
            url = pages.pop(0)
            if url in seen_pages:
                continue
            seen_pages.add(url)
            yield self.call(driver.get, url)
            yield poll(lambda: self.call(driver.find_elements, By.TAG_NAME, "h1"), url)
            anchors = yield self.call(driver.find_elements, By.TAG_NAME, "a")
            hrefs = yield defer.gatherResults([self.call(a.get_attribute, "href") for a in anchors])
            for href in hrefs:
                self.assertTrue(href.startswith(self.pages + "/builders"), (url, href))
                if href not in checked:
                    # HEAD: a live log's page would stream until the log ends.
                    response = yield treq.head(href, persistent=False)
                    checked[href] = response.code
                if "/logs/" not in href:
                    pages.append(href)
        self.assertEqual({h: c for h, c in checked.items() if c != 200}, {})
        # the builders, each builder, each build, each step; the logs linked
        self.assertEqual(len(seen_pages), 1 + 2 + 2 + 5)
        self.assertIn(self.pages + "/builders/b1/builds/1/steps/slow/logs/stdio/text", checked)
        self.assertIn(self.pages + "/builders/b%2F2/builds/1/steps/emit/logs/stdio", checked)
        live.end()
