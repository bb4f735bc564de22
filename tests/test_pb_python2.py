"""
0.8's PB status port against 0.8's own clients: Python 2.7, Twisted 20.3
and Buildbot 0.8.14, which `make test` installs beside the test venv
(C{<venv>/python2}) where the machine has a Python 2.7.  Debian 12 has no
Python 2 package, so on a machine without one these tests are skipped.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.python import log
from twisted.trial.unittest import SkipTest

from buildbot_logfile._pb_status import PBListener
from tests.masters import MasterTestCase, Waiters, db_chunks, db_text, poll, python_step

PYTHON2 = Path(sys.prefix, "python2", "bin", "python")
STATUSLOG = Path(sys.prefix, "python2", "bin", "buildbot")
CLIENT = Path(__file__).with_name("python2_client.py")

EMIT = textwrap.dedent(
    r"""
    import sys
    print("h\u00e9llo \u2603"); sys.stdout.flush()
    sys.stderr.write("\u00fcber error\n"); sys.stderr.flush()
    print("bye")
    """
)


class Lines(protocol.ProcessProtocol):
    """A process's standard output, line by line, as it comes."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.errors = b""
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._partial = b""
        self._waiting = Waiters()

    def outReceived(self, data: bytes) -> None:
        *whole, self._partial = (self._partial + data).split(b"\n")
        self.lines += [line.decode() for line in whole]
        self._waiting.check()

    def errReceived(self, data: bytes) -> None:
        self.errors += data

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)

    def wait_until(self, check: Any) -> defer.Deferred[None]:
        """Fires once C{check(lines)} holds; fails if the process ends first."""
        d = self._waiting.wait_until(lambda: check(self.lines))

        def ended(result: None) -> None:
            if not d.called:
                d.errback(AssertionError(f"it ended first: {self.lines} {self.errors!r}"))
            return result

        self.ended.addCallback(ended)
        return d


class Python2ClientTests(MasterTestCase):
    def setUp(self) -> Any:
        if not PYTHON2.exists():
            raise SkipTest(
                f"needs {PYTHON2}: `make test` makes it where the machine has a Python 2.7"
            )
        return super().setUp()

    @defer.inlineCallbacks
    def start(self, steps: list[Any]) -> defer.Generator:
        listener = PBListener("tcp:0:interface=127.0.0.1")
        yield self.start_master({"b1": steps}, receivers=[listener])
        self.port = listener.listening_port
        yield poll(lambda: self.legacy_status().getBuilder("b1").getState()[0] == "idle", "idle")

    def spawn(self, *argv: str) -> Lines:
        """A Python 2 process; it is stopped, if it still runs, when the test ends."""
        lines = Lines()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"}
        process = reactor.spawnProcess(lines, str(PYTHON2), [str(PYTHON2), *argv], env=env)

        def stop() -> defer.Deferred[None]:
            if not lines.ended.called:
                process.signalProcess("KILL")
            return lines.ended

        self.addCleanup(stop)
        return lines

    @defer.inlineCallbacks
    def test_buildbot_statuslog_of_0_8_14_follows_a_build(self) -> defer.Generator:
        yield self.start([python_step("emit", EMIT), python_step("fails", "raise SystemExit(1)")])
        out = self.spawn(str(STATUSLOG), "statuslog", "--master", f"127.0.0.1:{self.port}")
        yield out.wait_until(lambda lines: "builderChangedState b1 idle None" in lines)
        yield self.force("b1")
        yield out.wait_until(lambda lines: lines.count("builderChangedState b1 idle None") == 2)
        # ETA updates come every 5 s while the build runs: as many as it takes.
        printed = [line for line in out.lines if not line.startswith("ETA ")]
        self.assertEqual(
            printed,
            [
                "connected",
                "builderAdded b1",
                "builderChangedState b1 idle None",
                "builderChangedState b1 building None",
                "buildStarted b1",
                "stepStarted b1 worker_preparation",
                "stepFinished b1 worker_preparation (0, [])",
                "stepStarted b1 emit",
                "stepFinished b1 emit (0, [])",
                "stepStarted b1 fails",
                # a Python 2 str, as 0.8 sent it, not u'fails'
                "stepFinished b1 fails (2, ['fails'])",
                "buildFinished 2",
                "builderChangedState b1 idle None",
            ],
            out.errors,
        )

    @defer.inlineCallbacks
    def test_a_python2_client_gets_its_text_as_python2_str(self) -> defer.Generator:
        yield self.start([python_step("emit", EMIT)])
        said_by_master: list[str] = []
        observer = lambda event: said_by_master.append(log.textFromEventDict(event) or "")  # noqa: E731
        log.addObserver(observer)
        self.addCleanup(log.removeObserver, observer)
        written = self.mktemp()
        out = self.spawn(str(CLIENT), "127.0.0.1", str(self.port), written)
        yield out.wait_until(lambda lines: '{"event": "subscribed"}' in lines)
        yield self.force("b1")
        yield out.ended
        said = [json.loads(line) for line in out.lines]
        _, content = yield self.db_log("b1", 1, "emit", "stdio")
        chunks = db_chunks("s", content)
        with open(written, "rb") as f:
            # Written as it came, with no error: every byte, headers too.
            self.assertEqual(f.read(), "".join(text for _, text in chunks).encode(), out.errors)
        finished = next(s for s in said if s.get("event") == "buildFinished")
        self.assertEqual(finished, {"event": "buildFinished", "results": 0, "chunk_types": ["str"]})
        (emit,) = [s for s in said if s.get("step") == "emit" and "log" in s]
        self.assertEqual(
            emit,
            {
                "step": "emit",
                "log": "stdio",
                "text": db_text(content),
                "type": "str",
                "chunks": [[channel, text] for channel, text in chunks],
            },
        )
        self.assertIn({"event": "stepStarted", "step": "emit", "type": "str"}, said)
        # (a KeyError, as 0.8 raised, that Python 2 knows as one: its str() quotes it)
        self.assertEqual(said[-1], {"error": "\"no builder named 'nope'\"", "keyerror": True})
        # The client has no remote_builderChangedState: its error arrives, and is told once.
        failed = [m for m in said_by_master if "its remote_builderChangedState failed" in m]
        self.assertEqual(len(failed), 1, said_by_master)
        self.assertIn("(No such method: remote_builderChangedState)", failed[0])
