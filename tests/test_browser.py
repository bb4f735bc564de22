"""The HTML log page in a real headless Chromium, against a real master."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
import time

from twisted.internet import defer, threads
from twisted.trial.unittest import SkipTest

from buildbot_logfile.bridge import LegacyStatus
from tests.masters import MasterTestCase, Recorder, html_log_step, master_config, python_step, sleep

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

SLOW = textwrap.dedent(
    r"""
    import sys, time
    for i in range(14):
        sys.stdout.write("\x1b[32mline %d\x1b[0m\n" % i); sys.stdout.flush()
        if i == 6:
            sys.stderr.write("<script>window.pwned = 1</script>\n"); sys.stderr.flush()
        time.sleep(0.6)
    """
)


def new_driver(profile: str):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # A live log page loads until the log ends: do not wait for it.
    options.page_load_strategy = "none"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


class BrowserTests(MasterTestCase):
    timeout = 120

    def setUp(self) -> None:
        if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
            message = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
            if os.environ.get("CI"):
                self.fail(message)
            raise SkipTest(message)

    @defer.inlineCallbacks
    def driver(self) -> defer.Generator:
        profile = tempfile.mkdtemp(prefix="chromium-")
        driver = yield threads.deferToThread(new_driver, profile)
        self.addCleanup(lambda: threads.deferToThread(driver.quit).addBoth(
            lambda _: shutil.rmtree(profile, ignore_errors=True)))
        return driver

    def call(self, f, *args) -> defer.Deferred:
        """Selenium blocks: run it in a thread so the master keeps serving."""
        return threads.deferToThread(f, *args)

    @defer.inlineCallbacks
    def test_live_page_colours_follow_and_escape(self) -> defer.Generator:
        from selenium.webdriver.common.by import By

        recorder = Recorder()
        yield self.setup_master(master_config(
            {"b1": [python_step("slow", SLOW),
                    html_log_step("summary", "<p id='report'>fine</p><script>window.pwned = 1</script>")]},
            [LegacyStatus(receivers=[recorder], http_port="tcp:0:interface=127.0.0.1")],
            www={"port": "tcp:0:interface=127.0.0.1", "plugins": {"legacy_logs": {}}},
        ))
        base = f"http://127.0.0.1:{self.legacy_status().http_listener.getHost().port}"
        driver = yield self.driver()
        yield self.force("b1")
        for _ in range(100):
            if (yield self.legacy_status().locate_log("b1", 1, "slow", "stdio")):
                break
            yield sleep(0.1)

        page = base + "/builders/b1/builds/1/steps/slow/logs/stdio"
        yield self.call(driver.get, page)
        counts = []
        while recorder.finished_builds == 0:
            spans = yield self.call(driver.find_elements, By.CSS_SELECTOR, "span.stdout.ansi32")
            counts.append(len(spans))
            yield sleep(0.5)
        yield sleep(1)
        spans = yield self.call(driver.find_elements, By.CSS_SELECTOR, "span.stdout.ansi32")
        self.assertEqual(len(spans), 14)
        self.assertTrue(any(0 < c < 14 for c in counts), f"no span appeared while live: {counts}")
        colour = yield self.call(spans[0].value_of_css_property, "color")
        self.assertEqual(colour, "rgba(0, 119, 0, 1)")
        title = yield self.call(lambda: driver.title)
        self.assertEqual(title, "Log File contents")
        pwned = yield self.call(driver.execute_script, "return window.pwned === undefined")
        self.assertTrue(pwned, "log text ran as script")
        stderr = yield self.call(driver.find_element, By.CSS_SELECTOR, "span.stderr")
        self.assertEqual((yield self.call(lambda: stderr.text)), "<script>window.pwned = 1</script>")

        link = yield self.call(driver.find_element, By.LINK_TEXT, "(view as text)")
        yield self.call(link.click)
        for _ in range(50):
            url = yield self.call(lambda: driver.current_url)
            body = yield self.call(lambda: driver.find_element(By.TAG_NAME, "body").text)
            if url.endswith("/text") and "line 13" in body:
                break
            yield sleep(0.1)
        self.assertEqual(url, page + "/text")
        self.assertIn("line 0", body)

        # build-made HTML is sandboxed: its script does not run
        yield self.call(driver.get, base + "/builders/b1/builds/1/steps/report/logs/summary")
        for _ in range(50):
            found = yield self.call(driver.find_elements, By.ID, "report")
            if found:
                break
            yield sleep(0.1)
        self.assertEqual(len(found), 1)
        ran = yield self.call(driver.execute_script, "return window.pwned")
        self.assertIsNone(ran)

    @defer.inlineCallbacks
    def test_modern_ui_still_loads_with_the_plugin(self) -> defer.Generator:
        from selenium.webdriver.common.by import By

        yield self.setup_master(master_config(
            {"b1": [python_step("emit", "print(1)")]},
            [LegacyStatus()],
            www={"port": "tcp:0:interface=127.0.0.1", "plugins": {"legacy_logs": {}}},
        ))
        driver = yield self.driver()
        yield self.call(driver.get, f"http://127.0.0.1:{self.master.www.getPortnum()}/#/builders")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            links = yield self.call(driver.find_elements, By.LINK_TEXT, "b1")
            if links:
                break
            yield sleep(0.2)
        self.assertTrue(links, "the modern UI did not list the builder")
        entries = yield self.call(driver.get_log, "browser")
        errors = [e["message"] for e in entries if e["level"] == "SEVERE" and "legacy_logs" in e["message"]]
        self.assertEqual(errors, [])
