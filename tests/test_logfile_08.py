"""
Our LogFile against 0.8.14's own, run by Python 2.7 (tests/python2_logfile.py,
beside the test venv where `make test` makes it): the same entries, chunk
sizes and limits give the same spool file, byte for byte, the same length
and the same chunks.  ASCII text only: 0.8 cut records anywhere in a
character, where ours cut between characters (see DESIGN.md).
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from buildbot_logfile.logfile import LogFile
from tests.support import make_step

PYTHON2 = Path(sys.prefix, "python2", "bin", "python")
DRIVER = Path(__file__).with_name("python2_logfile.py")
CASES = 200


def operations(rng: random.Random) -> list[list[Any]]:
    """One log's story: some settings, then entries of every size, lengths asked between."""
    ops: list[list[Any]] = []
    channels = [0, 0, 0, 1, 1, 2]
    if rng.random() < 0.3:
        ops.append(["chunkSize", rng.choice([1, 7, 64, 1000])])
    if rng.random() < 0.3:
        ops.append(["limits", rng.choice([50, 500, 20000]), rng.choice([None, 0, 40, 3000])])
        # 0.8 wrote the kept tail all under its first channel; ours keeps
        # each entry's (see DESIGN.md): one channel besides the headers.
        channels = [0, 0, 2]
    for _ in range(rng.randrange(1, 40)):
        size = rng.choice([0, 1, 5, 80, 3000, 6000, 12000])
        text = "".join(rng.choices("ab\n", k=size))
        ops.append(["entry", rng.choice(channels), text])
        if rng.random() < 0.2:
            ops.append(["length"])
        if rng.random() < 0.05:
            ops.append(["chunkSize", rng.choice([3, 100, 10000])])
    return ops


def ours(ops: list[list[Any]], basedir: Path) -> dict[str, Any]:
    step = make_step(str(basedir), logMaxSize=None, logMaxTailSize=None)
    lf = LogFile(step, "stdio", "1-log-shell-stdio")
    lengths = []
    for op in ops:
        if op[0] == "entry":
            lf.addEntry(op[1], op[2])
        elif op[0] == "limits":
            step.build.builder.master.config.logMaxSize = op[1]
            step.build.builder.master.config.logMaxTailSize = op[2]
        elif op[0] == "chunkSize":
            lf.chunkSize = op[1]
        elif op[0] == "length":
            lengths.append(lf.length)
    lf.finish()
    return {
        "spool": base64.b64encode(Path(lf.getFilename()).read_bytes()).decode("ascii"),
        "length": lf.length,
        "lengths": lengths,
        "chunks": [[c, t] for c, t in lf.getChunks()],
    }


def test_the_same_spool_length_and_chunks_as_0_8_14(tmp_path: Path) -> None:
    if not PYTHON2.exists():
        pytest.skip(f"needs {PYTHON2}: `make test` makes it where the machine has a Python 2.7")
    rng = random.Random(808)
    cases = [operations(rng) for _ in range(CASES)]
    made = subprocess.run(
        [str(PYTHON2), str(DRIVER)],
        input=json.dumps(cases).encode(),
        capture_output=True,
        check=True,
        timeout=600,
    )
    theirs = json.loads(made.stdout)
    assert len(theirs) == CASES
    for number, (ops, expected) in enumerate(zip(cases, theirs)):
        basedir = tmp_path / str(number)
        basedir.mkdir()
        assert ours(ops, basedir) == expected, f"case {number}: {ops!r:.300}"
