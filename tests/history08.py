"""
0.8 master directories for the import tests and benchmark: the real ones
from the fixtures, and ones written here by 0.8's rules (pickles naming
0.7's or 0.8's classes, netstring log files), plus a Buildbot 4 master
directory to import into and an independent reading of 0.8 log files.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import os
import pickle
import subprocess
import sys
import tarfile
import textwrap
from typing import Any

from buildbot.util.lineboundaries import LineBoundaryFinder

FIXTURES = "/work/shared/fixtures/08-masters"
# Written for this project by a real 0.8 master: see their README files.
OWN_FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
COMMAND = os.path.join(os.path.dirname(sys.executable), "buildbot-logfile")


def extract_fixture(name: str, dest: str) -> str:
    """
    Unpack C{<name>.tgz} (a shared fixture, or this project's own) under
    C{dest}; the old master's basedir.
    """
    path = os.path.join(FIXTURES, name + ".tgz")
    if not os.path.exists(path):
        path = os.path.join(OWN_FIXTURES, name + ".tgz")
    with tarfile.open(path) as tar:
        tar.extractall(dest, filter="data")
    return os.path.join(dest, name)


def create_master_dir(path: str, compression: str = "bz2", db: str | None = None) -> str:
    """
    A Buildbot 4 master's directory made by C{buildbot create-master}, with
    its database C{db} (an SQLAlchemy URL; SQLite in the directory if None)
    created by C{buildbot upgrade-master}.
    """
    buildbot = os.path.join(os.path.dirname(sys.executable), "buildbot")
    subprocess.run([buildbot, "create-master", "-q", path], check=True)
    db = db or "sqlite:///state.sqlite"
    with open(os.path.join(path, "master.cfg"), "w") as f:
        f.write(
            textwrap.dedent(
                f"""\
                from buildbot.plugins import schedulers, util, worker
                c = BuildmasterConfig = {{}}
                c["workers"] = [worker.Worker("local1", "secret")]
                c["builders"] = [
                    util.BuilderConfig(
                        name="builder", workernames=["local1"], factory=util.BuildFactory()
                    )
                ]
                c["schedulers"] = [
                    schedulers.ForceScheduler(name="force", builderNames=["builder"])
                ]
                c["protocols"] = {{"pb": {{"port": "tcp:0:interface=127.0.0.1"}}}}
                c["db"] = {{"db_url": {db!r}}}
                c["logCompressionMethod"] = {compression!r}
                c["buildbotNetUsageData"] = None
                """
            )
        )
    if not db.startswith("sqlite:///state.sqlite"):
        subprocess.run([buildbot, "upgrade-master", "-q", path], check=True, capture_output=True)
    return path


def db_url(master_dir: str) -> str:
    return "sqlite:///" + os.path.abspath(os.path.join(master_dir, "state.sqlite"))


def run_import(*args: str, python: str | None = None) -> subprocess.CompletedProcess[str]:
    """The console script (or C{python -c <python>} standing in for it), run to its end."""
    command = [COMMAND] if python is None else [sys.executable, "-c", python]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [*command, "import-08", *args], capture_output=True, text=True, env=env, timeout=300
    )


# Reading 0.8 log files, independently of the importer.


def read_records(path: str) -> list[tuple[int, bytes]]:
    """The C{(channel, bytes)} records of an 0.8 log file, as 0.8 wrote them."""
    opener: Any = bz2.open if path.endswith(".bz2") else gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    records = []
    pos = 0
    while pos < len(data):
        colon = data.index(b":", pos)
        length = int(data[pos:colon])
        body = data[colon + 1 : colon + 1 + length]
        assert data[colon + 1 + length : colon + 2 + length] == b","
        records.append((body[0] - 48, body[1:]))
        pos = colon + 2 + length
    return records


def decoded(records: list[tuple[int, bytes]]) -> list[tuple[int, str]]:
    """Records as text: one UTF-8 stream per run of a channel."""
    out = []
    decoder = None
    channel = None
    for ch, data in records:
        if ch != channel:
            if decoder is not None and (rest := decoder.decode(b"", True)):
                out.append((channel, rest))
            decoder, channel = codecs.getincrementaldecoder("utf-8")("replace"), ch
        assert decoder is not None
        out.append((ch, decoder.decode(data)))
    if decoder is not None and (rest := decoder.decode(b"", True)):
        out.append((channel, rest))
    return [(ch, text) for ch, text in out if text and ch is not None]


def stdout_stderr(records: list[tuple[int, bytes]]) -> str:
    return "".join(text for ch, text in decoded(records) if ch in (0, 1))


def stream_content(records: list[tuple[int, bytes]]) -> str:
    """
    What the import stores for these records: each stream's text cut into
    lines by Buildbot's rules (C{\\r\\n}, a lone C{\\r}, cursor codes and
    backspaces end lines; a line over 4096 characters is cut every 4096),
    prefixed with the stream's letter; a stream's lines come out as a
    record completes them (and the whole pieces of a line that long), its
    last one at the end.
    """
    partial: dict[str, str] = {}
    out = []

    def lines(stream: str, text: str) -> None:
        for line in text.split("\n")[:-1]:
            pieces = [line[i : i + 4096] for i in range(0, len(line), 4096)] or [""]
            out.extend(stream + piece + "\n" for piece in pieces)

    for ch, text in decoded(records):
        stream = "oeh"[ch]
        text = LineBoundaryFinder.newline_re.sub("\n", partial.get(stream, "") + text)
        end = text.rfind("\n") + 1
        lines(stream, text[:end])
        rest = text[end:]
        while len(rest) > 4096:
            lines(stream, rest[:4096] + "\n")
            rest = rest[4096:]
        partial[stream] = rest
    for stream, rest in partial.items():
        if rest:
            lines(stream, LineBoundaryFinder.newline_re.sub("\n", rest + "\n"))
    return "".join(out)


# Writing 0.8 master directories by 0.8's rules.


class _State:
    """Pickled as 0.8's old-style classes were: their attributes, nothing else."""

    def __init__(self, **state: Any) -> None:
        self.__dict__.update(state)


class BuilderStatus(_State):
    pass


class BuildStatus(_State):
    pass


class BuildStepStatus(_State):
    pass


class LogFile(_State):
    pass


class HTMLLogFile(_State):
    pass


class SourceStamp(_State):
    pass


class Change(_State):
    pass


class Properties(_State):
    pass


PATHS_08 = {
    BuilderStatus: "buildbot.status.builder",
    BuildStatus: "buildbot.status.build",
    BuildStepStatus: "buildbot.status.buildstep",
    LogFile: "buildbot.status.logfile",
    HTMLLogFile: "buildbot.status.logfile",
    SourceStamp: "buildbot.sourcestamp",
    Change: "buildbot.changes.changes",
    Properties: "buildbot.process.properties",
}
# 0.7 kept every status class in buildbot.status.builder.
PATHS_07 = {
    **PATHS_08,
    **dict.fromkeys(
        (BuildStatus, BuildStepStatus, LogFile, HTMLLogFile), "buildbot.status.builder"
    ),
}


def dumps(obj: Any, paths: dict[type, str] = PATHS_08, protocol: int = 2) -> bytes:
    """
    C{obj} pickled as Python 2 pickled 0.x status objects: each class
    under its 0.x module path (GLOBAL opcodes, protocols 0 to 2).
    """
    data = pickle.dumps(obj, protocol)
    for cls, module in paths.items():
        data = data.replace(
            f"c{__name__}\n{cls.__name__}\n".encode(), f"c{module}\n{cls.__name__}\n".encode()
        )
    return data


def write_log(path: str, entries: list[tuple[int, str]], chunk: int = 10000) -> None:
    """An 0.8 log file: netstring records of at most C{chunk} bytes (by suffix: .bz2, .gz)."""
    opener: Any = bz2.open if path.endswith(".bz2") else gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        for channel, text in entries:
            data = text.encode("utf-8")
            for start in range(0, len(data), chunk):
                piece = data[start : start + chunk]
                f.write(b"%d:%d%s," % (len(piece) + 1, channel, piece))


def step(name: str, logs: list[Any], started: float, **extra: Any) -> BuildStepStatus:
    state = {
        "name": name,
        "text": [name, "done"],
        "text2": [],
        "results": 0,
        "started": started,
        "finished": started + 1.5,
        "urls": {},
        "hidden": False,
        "logs": logs,
        "statistics": {},
    }
    state.update(extra)
    return BuildStepStatus(**state)


def build(number: int, steps: list[BuildStepStatus], started: float, **extra: Any) -> BuildStatus:
    state = {
        "number": number,
        "started": started,
        "finished": started + 10.25,
        "results": 0,
        "text": ["build", "successful"],
        "reason": "forced",
        "slavename": "slave1",
        "properties": Properties(properties={"buildnumber": (number, "Build")}, runtime=set()),
        "source": SourceStamp(
            branch=None, revision=None, repository="", project="", patch=None, changes=()
        ),
        "changes": (),
        "steps": steps,
    }
    state.update(extra)
    return BuildStatus(**state)


def write_builder(folder: str, name: str, paths: dict[type, str] = PATHS_08) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "builder"), "wb") as f:
        f.write(dumps(BuilderStatus(name=name, category=None), paths))


def write_build(
    folder: str, status: BuildStatus, paths: dict[type, str] = PATHS_08, protocol: int = 2
) -> None:
    with open(os.path.join(folder, str(status.number)), "wb") as f:
        f.write(dumps(status, paths, protocol))
