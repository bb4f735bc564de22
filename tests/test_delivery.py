"""A receiver that raises or is slow is reported by name, without flooding the log."""

from __future__ import annotations

from typing import Any

from twisted.python import log
from twisted.trial import unittest

from buildbot_logfile import _delivery


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class DeliveryTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.patch(_delivery, "_now", self.clock)
        self.messages: list[str] = []
        self.whys: list[str] = []

        def observer(event: dict[str, Any]) -> None:
            self.messages.append(" ".join(map(str, event["message"])))
            if event.get("isError"):
                self.whys.append(event["why"])

        log.addObserver(observer)
        self.addCleanup(log.removeObserver, observer)

    def test_a_raising_receiver_is_reported_at_its_first_failure_then_every_hundredth(self) -> None:
        class Broken:
            def __repr__(self) -> str:
                return "<Broken receiver>"

            def logChunk(self, *args: Any) -> None:
                raise RuntimeError("broken")

        broken = Broken()
        for _ in range(250):
            self.assertIsNone(_delivery.deliver(broken, "logChunk", 1, 2))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)
        self.assertEqual(
            self.whys,
            [
                "status receiver <Broken receiver> failed in logChunk; skipped",
                "status receiver <Broken receiver> failed in logChunk (failure 101 in it); skipped",
                "status receiver <Broken receiver> failed in logChunk (failure 201 in it); skipped",
            ],
        )

    def test_a_slow_receiver_is_reported_by_name_at_most_once_a_minute(self) -> None:
        clock = self.clock

        class Slow:
            def __repr__(self) -> str:
                return "<Slow receiver>"

            def logChunk(self, *args: Any) -> None:
                clock.now += 2.0  # two seconds of the master's time

        slow = Slow()
        for _ in range(20):  # 40 s
            _delivery.deliver(slow, "logChunk")
        reports = [m for m in self.messages if "<Slow receiver>" in m]
        self.assertEqual(len(reports), 1)
        self.assertIn("took 2.00 s in logChunk", reports[0])
        for _ in range(15):  # past the minute
            _delivery.deliver(slow, "logChunk")
        reports = [m for m in self.messages if "<Slow receiver>" in m]
        self.assertEqual(len(reports), 2)
        self.assertIn("30 call(s) over 0.1 s since the last report", reports[1])

    def test_a_quick_receiver_is_not_reported(self) -> None:
        class Quick:
            def logChunk(self, *args: Any) -> str:
                return "fine"

        self.assertEqual(_delivery.deliver(Quick(), "logChunk"), "fine")
        self.assertIsNone(_delivery.deliver(Quick(), "absent"))
        self.assertEqual(self.messages, [])

    def test_an_async_method_runs_subscribes_nothing_and_its_failure_is_logged(self) -> None:
        ran: list[str] = []

        class Modern:
            def __repr__(self) -> str:
                return "<Modern receiver>"

            async def buildStarted(self, name: str, build: Any) -> Any:
                ran.append(name)
                return self

            async def buildFinished(self, name: str, build: Any, results: int) -> None:
                raise RuntimeError("broken")

        modern = Modern()
        self.assertIsNone(_delivery.deliver(modern, "buildStarted", "b1", None))
        self.assertEqual(ran, ["b1"])
        self.assertIsNone(_delivery.deliver(modern, "buildFinished", "b1", None, 0))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.whys, ["status receiver <Modern receiver> failed in buildFinished"])
