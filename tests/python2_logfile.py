# Python 2.7, Buildbot 0.8.14: run 0.8's own LogFile over each list of
# ruff: noqa: UP004  (Python 2: new-style classes name object)
# operations read as JSON from stdin, and print what it made as JSON: the
# spool file (base64), its length (at the end and where asked), and its
# chunks.  tests/test_logfile_08.py runs the same operations through ours.
import base64
import json
import shutil
import sys
import tempfile

from buildbot.status import logfile


class Config(object):
    logMaxSize = None
    logMaxTailSize = None


class Master(object):
    def __init__(self):
        self.config = Config()


class Builder(object):
    def __init__(self, basedir):
        self.basedir = basedir
        self.master = Master()


class Build(object):
    def __init__(self, builder):
        self.builder = builder


class Step(object):
    def __init__(self, build):
        self.build = build


def run(operations, basedir):
    step = Step(Build(Builder(basedir)))
    lf = logfile.LogFile(step, "stdio", "1-log-shell-stdio")
    lengths = []
    for operation in operations:
        kind = operation[0]
        if kind == "entry":
            lf.addEntry(operation[1], operation[2].encode("ascii"))
        elif kind == "limits":
            step.build.builder.master.config.logMaxSize = operation[1]
            step.build.builder.master.config.logMaxTailSize = operation[2]
        elif kind == "chunkSize":
            lf.chunkSize = operation[1]
        elif kind == "length":
            lengths.append(lf.length)
    lf.finish()
    with open(lf.getFilename(), "rb") as f:
        spool = f.read()
    return {
        "spool": base64.b64encode(spool).decode("ascii"),
        "length": lf.length,
        "lengths": lengths,
        "chunks": [[c, t.decode("ascii")] for c, t in lf.getChunks()],
    }


def main():
    results = []
    for operations in json.load(sys.stdin):
        basedir = tempfile.mkdtemp()
        try:
            results.append(run(operations, basedir))
        finally:
            shutil.rmtree(basedir)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
