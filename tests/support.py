"""Helpers shared by the tests."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from buildbot.config.master import MasterConfig
from buildbot.plugins import schedulers, steps, util
from twisted.internet.task import Clock
from twisted.trial import unittest


def cannot_run(case: unittest.TestCase, message: str) -> NoReturn:
    """
    A test that lacks what it needs here: a failure under CI, where
    nothing is skipped, and a skip elsewhere.
    """
    if os.environ.get("CI"):
        case.fail(message)
    raise unittest.SkipTest(message)


@dataclass
class Master:
    config: MasterConfig = field(default_factory=MasterConfig)


@dataclass
class Builder:
    basedir: str
    master: Master = field(default_factory=Master)


@dataclass
class Build:
    builder: Builder


@dataclass
class Step:
    """The part of a 0.8 step status that a LogFile looks at."""

    build: Build


def make_step(basedir: str, **config: Any) -> Step:
    master = Master()
    master.config.logCompressionMethod = "raw"
    for key, value in config.items():
        setattr(master.config, key, value)
    return Step(Build(Builder(str(basedir), master)))


class RecordingConsumer:
    """A 0.8 log consumer that records every call, and can pause its producer."""

    def __init__(self) -> None:
        self.producer: Any = None
        self.streaming: bool | None = None
        self.chunks: list[tuple[int, str]] = []
        self.calls: list[str] = []

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        self.streaming = streaming
        self.calls.append("registerProducer")

    def unregisterProducer(self) -> None:
        self.calls.append("unregisterProducer")

    def writeChunk(self, chunk: tuple[int, str]) -> None:
        self.chunks.append(chunk)

    def finish(self) -> None:
        self.calls.append("finish")

    @property
    def finished(self) -> bool:
        return "finish" in self.calls


def merged(chunks: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Chunks with consecutive same-channel runs joined: what a log *is*."""
    runs: list[tuple[int, list[str]]] = []
    for channel, text in chunks:
        if not text:
            continue
        if runs and runs[-1][0] == channel:
            runs[-1][1].append(text)
        else:
            runs.append((channel, [text]))
    return [(channel, "".join(texts)) for channel, texts in runs]


def run_until_idle(clock: Clock) -> None:
    while clock.getDelayedCalls():
        clock.advance(0)


def run_one_call(clock: Clock) -> None:
    """Run just the earliest delayed call (Clock.advance also runs what it schedules)."""
    call = clock.getDelayedCalls()[0]
    clock.calls.remove(call)
    call.func(*call.args, **call.kw)


def python_step(name: str, script: str, **kwargs: Any) -> steps.ShellCommand:
    return steps.ShellCommand(name=name, command=[sys.executable, "-c", script], **kwargs)


def master_config(
    steps_of: dict[str, list[Any]], services: list[Any], **extra: Any
) -> dict[str, Any]:
    """
    A master config: one forceable builder per entry of C{steps_of}, on
    worker local1; C{extra} goes in as it is (C{builders} too).
    """
    config = {
        "builders": [
            util.BuilderConfig(
                name=name, workernames=["local1"], factory=util.BuildFactory(step_list)
            )
            for name, step_list in steps_of.items()
        ],
        "schedulers": [schedulers.ForceScheduler(name="force", builderNames=list(steps_of))],
        "services": services,
    }
    config.update(extra)
    return config


def readme_table(heading: str) -> dict[str, list[str]]:
    """
    The first table after C{heading} in the README: each row's first cell,
    and the names in backquotes of its second (a name's arguments dropped).
    """
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(heading) + len(heading) :]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or set(cells[0]) <= {"-", " "} or not cells[0].startswith("`"):
            continue
        rows[cells[0]] = re.findall(r"`([A-Za-z_][A-Za-z_0-9.]*)", cells[1])
    assert rows, f"no table after {heading!r} in the README"
    return rows
