"""
A 0.8-style status receiver for the masters of the cluster tests
(L{tests.cluster}), which run in processes of their own: it writes every
event it is given as one JSON line, flushed at once, to a file of the
master's basedir, where the test reads it (a benchmark's receiver,
C{text_head}, flushes its logChunk lines with the next other event).

Each line holds C{event} and, where they apply, C{builder}, C{build} (the
build number), C{step}, C{log}, C{channel} and C{text}; build and step
events also hold what their status objects answer (times, results, text,
worker, reason), so that a field the bridge reads wrongly shows up;
C{logChunk} lines hold C{received}, the C{time.time()} it came at.  A
status object that raises while being described is recorded as a
C{receiverError} event instead of being lost in the master's log.

C{mqReady} is written once the master's message queue delivers the
bridge's events (see L{JsonRecorder.startService}).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from typing import Any

from twisted.internet import defer

# isort: off
import buildbot_logfile  # noqa: F401  (the 0.8 import paths, which the next line uses)
from buildbot.status.base import StatusReceiverMultiService

# isort: on

# A WAMP topic nobody publishes on: subscribing to it is the readiness probe.
PROBE_TOPIC = "org.buildbot.cluster_tests.probe"


class JsonRecorder(StatusReceiverMultiService):
    """Records every 0.8 event as a JSON line of C{path} (relative to the master's basedir)."""

    compare_attrs = ("path", "text_head")

    def __init__(self, path: str = "events.jsonl", text_head: int | None = None) -> None:
        super().__init__()
        self.path = path
        # Record only this much of each logChunk's text, and its length: a
        # benchmark times the bridge, not this receiver's writing of every byte.
        self.text_head = text_head
        self._file: Any = None

    def setServiceParent(self, parent: Any) -> Any:
        d = super().setServiceParent(parent)
        self.status = parent.getStatus()
        self.status.subscribe(self)
        return d

    def startService(self) -> Any:
        d = super().startService()
        master = self.status.master
        self._write({"event": "recorderStarted", "pid": os.getpid()})
        ready: defer.Deferred[Any] = defer.succeed(None)
        if master.config.mq.get("type") == "wamp":
            # The bridge asked for its subscriptions before this receiver
            # started; the router answers one session's requests in order,
            # so once this one is acknowledged, the bridge's are too.  Not
            # awaited: the master's start does not wait for the router.
            ready = master.wamp.subscribe(lambda *args, **kwargs: None, PROBE_TOPIC)
        ready.addCallback(lambda _: self._write({"event": "mqReady", "pid": os.getpid()}))
        ready.addErrback(
            lambda f: self._write({"event": "receiverError", "in": "probe", "error": str(f)})
        )
        return d

    def stopService(self) -> Any:
        self._write({"event": "recorderStopped", "pid": os.getpid()})
        if self._file is not None:
            self._file.close()
            self._file = None
        return super().stopService()

    # Writing

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            basedir = self.status.master.basedir
            self._file = open(os.path.join(basedir, self.path), "a", encoding="utf-8")  # noqa: SIM115
        self._file.write(json.dumps(record, ensure_ascii=True) + "\n")
        # A benchmark's receiver leaves its logChunk lines in the buffer
        # until the next other event: a flush per chunk costs the build's
        # master a system call per chunk, which is this receiver's cost,
        # not the bridge's.  Each chunk's arrival is still timed as it
        # comes (logChunk's "received").
        if self.text_head is None or record["event"] != "logChunk":
            self._file.flush()

    def _record(self, event: str, describe: Any) -> None:
        try:
            record = {"event": event, **describe()}
        except Exception:
            record = {"event": "receiverError", "in": event, "error": traceback.format_exc()}
        self._write(record)

    @staticmethod
    def _build(build: Any) -> dict[str, Any]:
        return {"builder": build.getBuilder().getName(), "build": build.getNumber()}

    @classmethod
    def _build_details(cls, build: Any) -> dict[str, Any]:
        return {
            **cls._build(build),
            "times": list(build.getTimes()),
            "results": build.getResults(),
            "text": build.getText(),
            "finished": build.isFinished(),
            "worker": build.getWorkername(),
            "reason": build.getReason(),
            "buildername_property": build.getProperty("buildername"),
            "steps": [step.getName() for step in build.getSteps()],
        }

    @classmethod
    def _step_details(cls, build: Any, step: Any) -> dict[str, Any]:
        return {
            **cls._build(build),
            "step": step.getName(),
            "times": list(step.getTimes()),
            "results": list(step.getResults()),
            "text": step.getText(),
            "started": step.isStarted(),
            "finished": step.isFinished(),
        }

    # The 0.8 callbacks

    def builderAdded(self, name: str, builder: Any) -> Any:
        self._record("builderAdded", lambda: {"builder": name, "name": builder.getName()})
        return self

    def builderRemoved(self, name: str) -> None:
        self._record("builderRemoved", lambda: {"builder": name})

    def builderChangedState(self, name: str, state: str) -> None:
        self._record("builderChangedState", lambda: {"builder": name, "state": state})

    def buildStarted(self, builderName: str, build: Any) -> Any:
        self._record(
            "buildStarted", lambda: {**self._build_details(build), "builder_arg": builderName}
        )
        return self

    def stepStarted(self, build: Any, step: Any) -> Any:
        self._record("stepStarted", lambda: self._step_details(build, step))
        return self

    def logStarted(self, build: Any, step: Any, log: Any) -> Any:
        self._record(
            "logStarted",
            lambda: {**self._build(build), "step": step.getName(), "log": log.getName()},
        )
        return self

    def logChunk(self, build: Any, step: Any, log: Any, channel: int, text: str) -> None:
        self._record(
            "logChunk",
            lambda: {
                **self._build(build),
                "step": step.getName(),
                "log": log.getName(),
                "channel": channel,
                "text": text if self.text_head is None else text[: self.text_head],
                "length": len(text),
                # When it came: benchmarks/bench_cluster.py times delivery.
                "received": time.time(),
            },
        )

    def logFinished(self, build: Any, step: Any, log: Any) -> None:
        self._record(
            "logFinished",
            lambda: {
                **self._build(build),
                "step": step.getName(),
                "log": log.getName(),
                "finished": log.isFinished(),
            },
        )

    def stepFinished(self, build: Any, step: Any, results: Any) -> None:
        self._record(
            "stepFinished",
            lambda: {**self._step_details(build, step), "results_arg": list(results)},
        )

    def buildsetSubmitted(self, buildset: Any) -> None:
        self._record("buildsetSubmitted", lambda: {"buildset": buildset.asDict()})

    def requestSubmitted(self, request: Any) -> None:
        self._record(
            "requestSubmitted",
            lambda: {"request": request.asDict(), "bsid": request.bsid, "brid": request.brid},
        )

    def buildFinished(self, builderName: str, build: Any, results: Any) -> None:
        self._record(
            "buildFinished",
            lambda: {
                **self._build_details(build),
                "builder_arg": builderName,
                "results_arg": results,
            },
        )
