"""
C{buildbot-logfile import-08}, run as the console script against real 0.8
master directories (and ones written by 0.8's rules), into a master made
by C{buildbot create-master}; then that master is started on the same
SQLite file and asked through its data API and the legacy log pages.
"""

from __future__ import annotations

import bz2
import contextlib
import decimal
import gzip
import os
import pickle
import re
import shutil
import signal
import subprocess
import tempfile
import zlib
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
import treq
from twisted.internet import defer

from buildbot_logfile import _import08_pickles as p08
from tests import history08 as h
from tests.databases import MariaDBTestCase, PostgresTestCase
from tests.masters import MasterTestCase, python_step
from tests.support import cannot_run

# The fixtures' builds: (number, started_at, complete_at, results, state_string, reason)
# and their steps: (name, started_at, complete_at, results, state_string, [(log, file)]).
REASON_FORCED = "The web-page 'force build' button was pressed by '': \n"
FORCED_BY_ABCDEF = "The web-page 'force build' button was pressed by 'abcdef': force build\n"


def _v083_steps(n: int, t0: int, t1: int) -> list[tuple[Any, ...]]:
    return [
        ("git", t0, t0, 0, "update", [("stdio", f"{n}-log-git-stdio.bz2")]),
        ("shell", t0, t1, 0, "'sleep 10'", [("stdio", f"{n}-log-shell-stdio.bz2")]),
        ("shell_1", t1, t1, 0, "echoed", [("stdio", f"{n}-log-shell_1-stdio.bz2")]),
    ]


OK = "build successful"
V083 = {
    0: (1310326850, 1310326860, 0, OK, "scheduler", _v083_steps(0, 1310326850, 1310326860)),
    1: (1310326862, 1310326872, 0, OK, REASON_FORCED, _v083_steps(1, 1310326862, 1310326872)),
    2: (1310326872, 1310326882, 0, OK, REASON_FORCED, _v083_steps(2, 1310326872, 1310326882)),
    3: (1310326895, 1310326898, 4, "exception", REASON_FORCED, [
        ("git", 1310326895, 1310326895, 0, "update", [("stdio", "3-log-git-stdio.bz2")]),
        ("shell", 1310326895, 1310326898, 4, "'sleep 10' interrupted",
         [("stdio", "3-log-shell-stdio"), ("interrupt", "3-log-shell-interrupt")]),
        ("shell_1", None, None, None, "", []),
    ]),
    4: (1310326900, 1310326910, 0, OK, REASON_FORCED, _v083_steps(4, 1310326900, 1310326910)),
}  # fmt: skip

V086P1 = {
    0: (1338229046, 1338229051, 4, "exception", FORCED_BY_ABCDEF, [
        ("git", 1338229046, 1338229047, 0, "update", [("stdio", "0-log-git-stdio.bz2")]),
        ("shell", 1338229047, 1338229051, 4, "'sleep 10' interrupted",
         [("stdio", "0-log-shell-stdio.bz2"), ("interrupt", "0-log-shell-interrupt")]),
        ("shell_1", None, None, None, "", []),
    ]),
}  # fmt: skip


def _v083_properties(n: int) -> dict[str, tuple[Any, str]]:
    common = {
        "slprop": ("val", "BuildSlave"),
        "buildername": ("builder", "Builder"),
        "got_revision": ("62f2d97cd93c682a24753c117f2cbcf9124295c1", "Source"),
        "buildnumber": (n, "Build"),
        "slavename": ("example-slave", "BuildSlave"),
    }
    if n == 0:
        return {
            **common,
            "project": ("foo", "Build"),
            "scheduler": ("all", "Scheduler"),
            "repository": ("/home/dustin/code/buildbot/t/testrepo/", "Build"),
            "branch": ("master", "Build"),
            "revision": ("62f2d97cd93c682a24753c117f2cbcf9124295c1", "Build"),
        }
    return {
        **common,
        "project": ("", "Build"),
        "repository": ("", "Build"),
        "branch": (None, "Build"),
        "revision": ("None", "Source"),
    }


V086P1_PROPERTIES = {
    "slprop": ("val", "BuildSlave"),
    "project": ("", "Build"),
    "owners": (["abcdef"], FORCED_BY_ABCDEF),
    "workdir": ("/A/bbrun/builder", "slave"),
    "scheduler": ("force", "Scheduler"),
    "repository": ("", "Build"),
    "buildername": ("builder", "Builder"),
    "got_revision": ("cce84ee67f25b8e181f8fc44098131d794532a34", "Source"),
    "buildnumber": (0, "Build"),
    "slavename": ("example-slave", "BuildSlave"),
    "reason": ("force build", "Force Build Form"),
    "branch": ("", "Build"),
    "owner": ("abcdef", "Force Build Form"),
    "revision": ("", "Build"),
}  # fmt: skip


def summary(builders: str, imported: int, skipped: int, refused: int, unreadable: int,
            logs: int, text: int, problems: int) -> str:  # fmt: skip
    return (
        "import-08 summary\n"
        f"  builders: {builders}\n"
        f"  builds: {imported} imported, {skipped} skipped (already imported), "
        f"{refused} refused, {unreadable} unreadable\n"
        f"  logs: {logs} imported, {text} bytes of log text\n"
        f"  problems: {problems}\n"
    )


def table_counts(master_dir: str) -> dict[str, int]:
    engine = sa.create_engine(h.db_url(master_dir))
    names = [
        "builds",
        "steps",
        "logs",
        "logchunks",
        "build_properties",
        "buildsets",
        "buildrequests",
        "changes",
        "sourcestamps",
        "workers",
        "builders",
        "masters",
    ]
    with engine.connect() as conn:
        counts = {n: conn.execute(sa.text(f"select count(*) from {n}")).scalar_one() for n in names}
    engine.dispose()
    return counts


def build_numbers(master_dir: str) -> list[int]:
    engine = sa.create_engine(h.db_url(master_dir))
    with engine.connect() as conn:
        numbers = [r[0] for r in conn.execute(sa.text("select number from builds order by id"))]
    engine.dispose()
    return numbers


def text_bytes(folder: str, files: list[str]) -> int:
    return sum(len(data) for f in files for _, data in h.read_records(os.path.join(folder, f)))


class ImportTestCase(MasterTestCase):
    timeout = 120

    def dirs(self, fixture: str | None = None, compression: str = "bz2") -> tuple[str, str]:
        """The old master (a fixture, or an empty directory) and a new master's directory."""
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        if fixture is None:
            old = os.path.join(base, "old")
            os.makedirs(old)
        else:
            old = h.extract_fixture(fixture, base)
        return old, h.create_master_dir(os.path.join(base, "master"), compression)

    def start(self, master_dir: str, **extra: Any) -> defer.Deferred[Any]:
        return self.start_master(
            {"builder": [python_step("hello", "print('hello')")]},
            http=True,
            db_url=h.db_url(master_dir),
            **extra,
        )

    @defer.inlineCallbacks
    def page(self, path: str) -> Any:
        response = yield treq.get(self.pages + path, persistent=False)
        body = yield treq.content(response)
        return response.code, body

    @defer.inlineCallbacks
    def assert_builds(
        self, old_folder: str, expected: dict[int, tuple[Any, ...]], properties: Any
    ) -> Any:
        """Every build, step and log of C{expected} as the master and the pages serve them."""
        builderid = yield self.master.data.updates.findBuilderId("builder")
        builds = yield self.master.data.get(("builders", builderid, "builds"))
        imported = sorted((b for b in builds if b["number"] in expected), key=lambda b: b["number"])
        self.assertEqual([b["number"] for b in imported], sorted(expected))
        for build in imported:
            number = build["number"]
            started, finished, results, state, reason, steps = expected[number]
            self.assertEqual(
                (build["started_at"].timestamp(), build["complete_at"].timestamp()),
                (started, finished),
            )
            self.assertEqual(
                (build["results"], build["state_string"], build["complete"]), (results, state, True)
            )
            worker = yield self.master.data.get(("workers", build["workerid"]))
            self.assertEqual(worker["name"], "example-slave")
            request = yield self.master.data.get(("buildrequests", build["buildrequestid"]))
            buildset = yield self.master.data.get(("buildsets", request["buildsetid"]))
            self.assertEqual(buildset["reason"], reason)
            props = yield self.master.data.get(("builds", build["buildid"], "properties"))
            self.assertEqual(props, properties(number))
            got_steps = yield self.master.data.get(("builds", build["buildid"], "steps"))
            self.assertEqual(
                [
                    (
                        s["name"],
                        s["started_at"] and s["started_at"].timestamp(),
                        s["complete_at"] and s["complete_at"].timestamp(),
                        s["results"],
                        s["state_string"],
                        s["number"],
                        s["urls"],
                        s["hidden"],
                    )
                    for s in got_steps
                ],
                [(*s[:5], i, [], False) for i, s in enumerate(steps)],
            )
            for step_data, (name, *_, logs) in zip(got_steps, steps):
                got_logs = yield self.master.data.get(("steps", step_data["stepid"], "logs"))
                self.assertEqual(
                    [(lg["name"], lg["slug"], lg["type"], lg["complete"]) for lg in got_logs],
                    [(log, log, "s", True) for log, _ in logs],
                )
                for log_name, filename in logs:
                    yield self.assert_log(old_folder, number, name, log_name, filename)

    @defer.inlineCallbacks
    def assert_log(
        self, folder: str, number: int, step: str, log: str, filename: str, builder: Any = "builder"
    ) -> Any:
        """C{builder}: its name, or its id where the name is no identifier."""
        records = h.read_records(os.path.join(folder, filename))
        log_data, content = yield self.db_log(builder, number, step, log)
        self.assertEqual(content, h.stream_content(records))
        self.assertEqual(log_data["num_lines"], content.count("\n"))
        name = builder
        if isinstance(builder, int):
            name = (yield self.master.data.get(("builders", builder)))["name"]
        code, body = yield self.page(
            f"/builders/{quote(name, safe='')}/builds/{number}/steps/{quote(step, safe='')}"
            f"/logs/{quote(log, safe='')}/text"
        )
        self.assertEqual(code, 200)
        text = "".join(line[1:] for line in content.splitlines(True) if line[0] in "oe")
        self.assertEqual(body.decode("utf-8"), text)
        old_text = h.stdout_stderr(records)
        if not any(b"\r" in data for _, data in records) and all(
            len(line) <= 4096 for line in old_text.split("\n")
        ):
            # No carriage returns for Buildbot to turn into newlines, nor
            # lines so long that it cuts them: the page is the 0.8 file's
            # stdout and stderr, byte for byte, but for the newline that
            # ends a Buildbot log's last line.
            if old_text and not old_text.endswith("\n"):
                old_text += "\n"
            self.assertEqual(body.decode("utf-8"), old_text)


class FixtureTests(ImportTestCase):
    @defer.inlineCallbacks
    def test_v083_history(self) -> Any:
        old, master_dir = self.dirs("v083")
        folder = os.path.join(old, "builder")
        files = [f for f in os.listdir(folder) if "-log-" in f]
        result = h.run_import(old, master_dir)
        self.assertEqual(
            (result.returncode, result.stdout, result.stderr),
            (0, summary("1", 5, 0, 0, 0, 15, text_bytes(folder, files), 0), ""),
        )
        counts = table_counts(master_dir)
        self.assertEqual(
            {k: counts[k] for k in ("builds", "steps", "logs", "changes", "masters")},
            {"builds": 5, "steps": 15, "logs": 15, "changes": 1, "masters": 1},
        )

        rerun = h.run_import(old, master_dir)
        self.assertEqual(
            (rerun.returncode, rerun.stdout),
            (
                0,
                summary("1", 0, 5, 0, 0, 0, 0, 0)
                + "  nothing imported: every build found is already in the database\n",
            ),
        )
        self.assertEqual(table_counts(master_dir), counts)

        yield self.start(master_dir)
        yield self.assert_builds(folder, V083, _v083_properties)
        build0 = yield self.master.data.get(("builders", "builder", "builds", 0))
        changes = yield self.master.data.get(("builds", build0["buildid"], "changes"))
        self.assertEqual(
            [
                (c["author"], c["comments"], c["files"], c["revision"], c["branch"],
                 c["repository"], c["project"], c["when_timestamp"])
                for c in changes
            ],
            [("dustin@zmanda.com", "changed", ["README.txt"],
              "62f2d97cd93c682a24753c117f2cbcf9124295c1", "master",
              "/home/dustin/code/buildbot/t/testrepo/", "foo", 1310326840)],
        )  # fmt: skip
        request = yield self.master.data.get(("buildrequests", build0["buildrequestid"]))
        buildset = yield self.master.data.get(("buildsets", request["buildsetid"]))
        stamps = buildset["sourcestamps"]
        self.assertEqual(
            [(s["branch"], s["revision"], s["repository"], s["project"], s["codebase"])
             for s in stamps],
            [("master", "62f2d97cd93c682a24753c117f2cbcf9124295c1",
              "/home/dustin/code/buildbot/t/testrepo/", "foo", "")],
        )  # fmt: skip

        # The next build of the builder continues after the imported ones.
        yield self.force("builder")
        yield self.recorder.wait_for_builds(1)
        builds = yield self.master.data.get(("builders", "builder", "builds"))
        self.assertEqual(sorted(b["number"] for b in builds), [0, 1, 2, 3, 4, 5])

    @defer.inlineCallbacks
    def test_v086p1_history_and_a_collision(self) -> Any:
        old, master_dir = self.dirs("v086p1")
        folder = os.path.join(old, "builder")
        files = ["0-log-git-stdio.bz2", "0-log-shell-stdio.bz2", "0-log-shell-interrupt"]
        result = h.run_import(old, master_dir)
        self.assertEqual(
            (result.returncode, result.stdout),
            (0, summary("1", 1, 0, 0, 0, 3, text_bytes(folder, files), 0)),
        )
        # Another 0.8 master's builder of the same name: its build 0 is not
        # the one imported, so the builder is refused, whole.
        other = h.extract_fixture("v083", os.path.dirname(old))
        refused = h.run_import(other, master_dir)
        self.assertEqual(
            (refused.returncode, refused.stdout),
            (
                1,
                f"problem: {other}/builder: builder 'builder' refused: build number 0 is "
                "already held by builds imported from another 0.8 history (one builder's "
                "numbers hold one history: import only one 0.8 master's builder of that "
                "name)\n" + summary("1 (builder refused)", 0, 0, 5, 0, 0, 0, 1),
            ),
        )
        self.assertEqual(build_numbers(master_dir), [0])
        yield self.start(master_dir)
        yield self.assert_builds(folder, V086P1, lambda n: V086P1_PROPERTIES)

    def test_a_failure_of_the_import_itself_is_printed_whole(self) -> None:
        # Twisted's log, where a failure would otherwise go, is observed by
        # nothing (it would print Buildbot's own of a database that fails).
        old, master_dir = self.dirs("v083")
        broken = h.run_import(old, master_dir, python=IMPORTER_BREAKS)
        self.assertEqual((broken.returncode, broken.stdout), (2, ""))
        self.assertTrue(broken.stderr.startswith("Traceback (most recent call last):\n"))
        self.assertTrue(broken.stderr.endswith("\nRuntimeError: the importer broke\n"))

    @defer.inlineCallbacks
    def test_a_run_killed_midway_completes_on_rerun(self) -> Any:
        old, master_dir = self.dirs("v083")
        killed = h.run_import(old, master_dir, python=KILLED_IN_THIRD_BUILD)
        self.assertEqual(killed.returncode, -9)
        # The third build's transaction never committed: whole builds only.
        self.assertEqual(build_numbers(master_dir), [0, 1])
        self.assertEqual(table_counts(master_dir)["steps"], 6)
        rerun = h.run_import(old, master_dir)
        self.assertEqual(rerun.returncode, 0)
        self.assertIn("  builds: 3 imported, 2 skipped (already imported), 0 refused", rerun.stdout)
        self.assertEqual(build_numbers(master_dir), [0, 1, 2, 3, 4])
        counts = table_counts(master_dir)
        self.assertEqual((counts["steps"], counts["logs"]), (15, 15))
        yield self.start(master_dir)
        yield self.assert_builds(os.path.join(old, "builder"), V083, _v083_properties)

    @defer.inlineCallbacks
    def test_a_builder_the_master_already_ran_is_refused(self) -> Any:
        old, master_dir = self.dirs("v083")
        yield self.start(master_dir)
        yield self.force("builder")
        yield self.recorder.wait_for_builds(1)
        yield self.tested_master.shutdown()
        result = h.run_import(old, master_dir)
        self.assertEqual(result.stderr, "")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stdout.splitlines()[0],
            f"problem: {old}/builder: builder 'builder' refused: build number 1 is already "
            "held by other builds in the database (import before the master runs its first "
            "build of this builder)",
        )
        self.assertEqual(build_numbers(master_dir), [1])


# tests/fixtures/v0814.tgz: builders (name, folder), and its HTML logs' html.
V0814_BUILDERS = {
    "Linux \u00fcn\u00ef build": "Linux_\u00fcn\u00ef_build",
    "plain build": "plain_build",
}
V0814_HTML = {
    "report.html": (
        "<html><body><h1>R\u00e9sum\u00e9 \u2713</h1><p>a &amp; b <b>bold</b></p></body></html>"
    ),
    "ascii.html": "<pre>plain ascii html</pre>",
}
# Pickled while they ran, as 0.8.9 and later pickled them: a finish time, no results.
V0814_UNFINISHED = {("Linux_\u00fcn\u00ef_build", 7), ("plain_build", 10)}
V0814_STOPPED_AT = 1796017522


def _v08_file(folder: str, number: int, step: str, log: str) -> str:
    """An 0.8 log's file, as 0.8 named it: by the build, step and log."""
    base = "-".join([str(number), "log", *(re.sub(r"[^\w.-]", "_", name) for name in (step, log))])
    (found,) = [
        base + s for s in ("", ".bz2", ".gz") if os.path.exists(os.path.join(folder, base + s))
    ]
    return found


class V0814Tests(ImportTestCase):
    """History a real Buildbot 0.8.14 master wrote (tests/fixtures/v0814-README.txt)."""

    @defer.inlineCallbacks
    def test_v0814_history(self) -> Any:
        old, master_dir = self.dirs("v0814")
        result = h.run_import(old, master_dir)
        self.assertEqual((result.returncode, result.stderr), (1, ""))
        self.assertEqual(
            result.stdout.splitlines()[:2],
            [
                f"problem: {os.path.join(old, folder, str(number))}: the build never finished;"
                f" imported as finished at {V0814_STOPPED_AT} with results 4"
                for folder, number in sorted(V0814_UNFINISHED)
            ],
        )
        self.assertIn("  builds: 18 imported, 0 skipped", result.stdout)
        yield self.start_master(
            {name: [python_step("hello", "print(1)")] for name in V0814_BUILDERS},
            http=True,
            db_url=h.db_url(master_dir),
        )
        html_logs = 0
        for name, folder in V0814_BUILDERS.items():
            builderid = yield self.master.data.updates.findBuilderId(name)
            builds = yield self.master.data.get(("builders", builderid, "builds"))
            for build in builds:
                number = build["number"]
                unfinished = (folder, number) in V0814_UNFINISHED
                self.assertTrue(build["complete"])
                if unfinished:
                    self.assertEqual(
                        (build["results"], build["complete_at"].timestamp()), (4, V0814_STOPPED_AT)
                    )
                steps = yield self.master.data.get(("builds", build["buildid"], "steps"))
                for step in steps:
                    # No step looks as if it still ran.
                    self.assertEqual(step["started_at"] is None, step["complete_at"] is None)
                    self.assertEqual(step["started_at"] is None, step["results"] is None)
                    if unfinished and step["name"] == "sleep":
                        self.assertEqual(
                            (step["results"], step["complete_at"]), (4, build["complete_at"])
                        )
                    logs = yield self.master.data.get(("steps", step["stepid"], "logs"))
                    for log in logs:
                        if log["type"] == "h":
                            # 0.8.9 and later kept the html in the log's file.
                            _, content = yield self.db_log(
                                builderid, number, step["name"], log["name"]
                            )
                            self.assertEqual(content, V0814_HTML[log["name"]] + "\n")
                            html_logs += 1
                        else:
                            filename = _v08_file(
                                os.path.join(old, folder), number, step["name"], log["name"]
                            )
                            yield self.assert_log(
                                os.path.join(old, folder),
                                number,
                                step["name"],
                                log["name"],
                                filename,
                                builderid,
                            )
        self.assertEqual(html_logs, 36)
        # The HTML log's page is its html.
        path = "/builders/plain%20build/builds/0/steps/html%20report/logs/report.html"
        code, body = yield self.page(path)
        self.assertEqual((code, body.decode()), (200, V0814_HTML["report.html"] + "\n"))


IMPORTER_BREAKS = """
from buildbot_logfile import _import08, cli

def run(*args):
    raise RuntimeError("the importer broke")

_import08.Importer.run = run
cli.main()
"""


KILLED_IN_THIRD_BUILD = """
import os, signal
from buildbot_logfile import _import08_db, cli

add_build = _import08_db.Database.add_build
started = []

def add_build_then_die(self, conn, build, *args):
    buildid = add_build(self, conn, build, *args)
    started.append(build.number)
    if len(started) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return buildid

_import08_db.Database.add_build = add_build_then_die
cli.main()
"""


HOSTILE = {
    "os.system": b"cos\nsystem\n(S'touch %(marker)s'\ntR.",
    "__builtin__.eval": b'c__builtin__\neval\n(S\'open("%(marker)s", "w")\'\ntR.',
    "subprocess.Popen": b"csubprocess\nPopen\n((S'touch'\nS'%(marker)s'\nltR.",
    # an allowed helper asked to build something that is not an 0.8 class
    "copy_reg._reconstructor(set, object)": (
        b"ccopy_reg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nobject\nNtR."
    ),
}


class HostileInputTests(ImportTestCase):
    @defer.inlineCallbacks
    def test_hostile_pickles_are_refused_and_run_nothing(self) -> Any:
        old, master_dir = self.dirs()
        folder = os.path.join(old, "builder")
        h.write_builder(folder, "builder")
        marker = os.path.join(old, "pwned")
        for number, pickled in enumerate(HOSTILE.values()):
            with open(os.path.join(folder, str(number)), "wb") as f:
                f.write(pickled % {b"marker": marker.encode()})
        h.write_log(os.path.join(folder, "4-log-hello-stdio"), [(0, "fine\n")])
        log = h.LogFile(name="stdio", filename="4-log-hello-stdio")
        h.write_build(folder, h.build(4, [h.step("hello", [log], 1400000000.0)], 1400000000.0))

        result = h.run_import(old, master_dir)
        self.assertFalse(os.path.exists(marker))
        refusals = [
            f"problem: {folder}/{n}: not loaded, it names what an 0.8 status pickle never "
            + (
                f"does (refusing to load {what}); build skipped"
                if "(" not in what
                else f"does (refusing {what}); build skipped"
            )
            for n, what in enumerate(HOSTILE)
        ]
        self.assertEqual(
            (result.returncode, result.stdout),
            (1, "\n".join(refusals) + "\n" + summary("1", 1, 0, 0, 4, 1, 5, 4)),
        )
        yield self.start(master_dir)
        code, body = yield self.page("/builders/builder/builds/4/steps/hello/logs/stdio/text")
        self.assertEqual((code, body), (200, b"fine\n"))


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_unpickler_refuses(name: str, tmp_path: Any) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(p08.UnsafePickleError):
        p08.loads(HOSTILE[name] % {b"marker": str(marker).encode()})
    assert not marker.exists()


def test_the_unpickler_refuses_pickles_of_python3_objects() -> None:
    for obj in (os.path.join, shutil.rmtree, ValueError("x"), bytearray(b"x")):
        with pytest.raises(p08.UnsafePickleError):
            p08.loads(pickle.dumps(obj, 2))


def shared_tuple(levels: int) -> bytes:
    """
    Pickle opcodes that push a tuple holding one tuple twice, C{levels}
    deep (a few bytes a level; Python would hash it for ever).  Its memo
    starts at 10000, out of the way of a pickle it is put in.
    """

    def put(n: int) -> bytes:
        return b"r" + (10000 + n).to_bytes(4, "little") + b"0"

    def get(n: int) -> bytes:
        return b"j" + (10000 + n).to_bytes(4, "little")

    ops = b"X\x04\x00\x00\x00name\x85" + put(0)
    for level in range(1, levels + 1):
        ops += get(level - 1) + get(level - 1) + b"\x86" + put(level)
    return ops + get(levels)


def test_keys_that_would_hash_for_ever_are_refused() -> None:
    key = shared_tuple(40)
    pickles = {
        "SETITEM": b"\x80\x02}" + key + b"K\x01s.",
        "SETITEMS": b"\x80\x02}(" + key + b"K\x01u.",
        "DICT": b"\x80\x02(" + key + b"K\x01d.",
        "ADDITEMS": b"\x80\x04\x8f(" + key + b"\x90.",
        "FROZENSET": b"\x80\x04(" + key + b"\x91.",
        "set()": b"\x80\x02c__builtin__\nset\n](" + key + b"e\x85R.",
        "frozenset()": b"\x80\x02c__builtin__\nfrozenset\n](" + key + b"e\x85R.",
        "frozenset(*list)": b"\x80\x02c__builtin__\nfrozenset\n]](" + key + b"eaR.",
        "INST": b"((" + key + b"li__builtin__\nfrozenset\n.",
        "OBJ": b"(c__builtin__\nfrozenset\n(" + key + b"lo.",
    }
    refused = {}
    for how, data in pickles.items():
        with pytest.raises(pickle.UnpicklingError) as caught:
            p08.loads(data)
        refused[how] = str(caught.value)
    key_error = "a key of more than 1,000 parts, where 0.8's keys were names"
    assert refused == dict.fromkeys(pickles, key_error)
    # Nine levels (1,023 parts) are refused too; eight are not, nor are
    # many keys that are names or tuples of names.
    with pytest.raises(pickle.UnpicklingError, match=key_error):
        p08.loads(b"\x80\x02}" + shared_tuple(9) + b"K\x01s.")
    eight = p08.loads(b"\x80\x02}" + shared_tuple(8) + b"K\x01s.")
    assert list(eight.values()) == [1]
    names = {(f"test{i}", "case"): i for i in range(5000)}
    assert p08.loads(pickle.dumps(names, 2)) == names
    assert p08.loads(pickle.dumps(set(names), 4)) == set(names)
    # No set or frozenset made otherwise (as no 0.8 pickle made one).
    with pytest.raises(TypeError):
        p08.loads(b"\x80\x02c__builtin__\nfrozenset\n](" + key + b"e\x85\x81.")
    # An 0.8 object's attributes are named by text, in a dict.
    event = b"\x80\x02cbuildbot.status.builder\nEvent\n)\x81"
    with pytest.raises(pickle.UnpicklingError, match=r"^an attribute named by a tuple$"):
        p08.loads(event + pickle.dumps({("a", "b"): 1}, 2)[2:-1] + b"b.")
    with pytest.raises(pickle.UnpicklingError, match=r"^a state of what is no dict$"):
        p08.loads(event + b"]" + key + b"K\x01\x86aN\x86b.")


def test_what_would_read_out_past_memory_is_refused() -> None:
    def shared(levels: int) -> list[Any]:
        value: list[Any] = ["x"]
        for _ in range(levels):
            value = [value, value]
        return value

    values = r"^more than 1,000,000 values, counting a value held in several places in each$"
    assert p08.loads(pickle.dumps(shared(18), 2)) == shared(18)  # 786,431 values read out
    with pytest.raises(pickle.UnpicklingError, match=values):
        p08.loads(pickle.dumps(shared(19), 2))
    text = "x" * 2**20
    assert p08.loads(pickle.dumps([text] * 64, 2)) == [text] * 64
    with pytest.raises(pickle.UnpicklingError, match=r"^more than 64 MiB of text, counting a"):
        p08.loads(pickle.dumps([text] * 65, 2))
    # What the import never reads (an 0.8 event, a test's result) is not counted.
    state = b"}X\x01\x00\x00\x00a" + pickle.dumps(shared(19), 2)[2:-1] + b"sb."
    event = p08.loads(b"\x80\x02cbuildbot.status.builder\nEvent\n)\x81" + state)
    assert isinstance(event, p08.Ignored)
    assert p08.plain(event) is None  # nor read out as a property's value
    with pytest.raises(pickle.UnpicklingError, match=values):
        p08.loads(b"\x80\x02cbuildbot.status.builder\nBuildStatus\n)\x81" + state)


class WrittenHistoryTests(ImportTestCase):
    maxDiff = None

    @defer.inlineCallbacks
    def test_07_paths_html_logs_and_buildbot_line_rules(self) -> Any:
        old, master_dir = self.dirs(compression="gz")
        folder = os.path.join(old, "builder")
        h.write_builder(folder, "builder", h.PATHS_07)
        entries = [
            (2, "command: make\n"),
            (0, "a" * 9999 + "\u00e9 split across records\n"),  # a character cut by a record
            (1, "warning: dos line\r\n"),
            (0, "x" * 12000 + "\n"),  # records of 10000 and 2000: split by Buildbot's rule
            (0, "no newline at the end"),
        ]
        h.write_log(os.path.join(folder, "7-log-compile-stdio.gz"), entries)
        logs = [
            h.LogFile(name="stdio", filename="7-log-compile-stdio"),
            h.HTMLLogFile(name="report.html", html="<b>hi</b>\n<i>there</i>"),
        ]
        steps = [
            h.step("compile", logs, 1200000001.5, urls={"doc": "http://example.org/doc"}),
            h.step("hidden step", [], 1200000003.5, hidden=True, results=(1, ["warn"])),
        ]
        h.write_build(folder, h.build(7, steps, 1200000000.5), h.PATHS_07, protocol=0)

        dry = h.run_import("--dry-run", old, master_dir)
        self.assertIn("  builds: 1 would be imported, 0 skipped", dry.stdout)
        self.assertEqual(table_counts(master_dir)["builds"], 0)

        result = h.run_import(old, master_dir)
        log_bytes = sum(len(t.encode()) for _, t in entries) + len("<b>hi</b>\n<i>there</i>")
        self.assertEqual(
            (result.returncode, result.stdout), (0, summary("1", 1, 0, 0, 0, 2, log_bytes, 0))
        )
        yield self.start(master_dir)
        build = yield self.master.data.get(("builders", "builder", "builds", 7))
        self.assertEqual(
            (build["started_at"].timestamp(), build["complete_at"].timestamp(), build["results"]),
            (1200000000, 1200000010, 0),
        )
        got = yield self.master.data.get(("builds", build["buildid"], "steps"))
        self.assertEqual(
            [(s["name"], s["results"], s["urls"], s["hidden"]) for s in got],
            [
                ("compile", 0, [{"name": "doc", "url": "http://example.org/doc"}], False),
                ("hidden step", 1, [], True),
            ],
        )
        _, content = yield self.db_log("builder", 7, "compile", "stdio")
        self.assertEqual(
            content,
            # A line over 4096 characters is cut every 4096 (Buildbot's
            # rule), wherever 0.8's records cut it.
            "hcommand: make\n"
            + "".join("o" + "a" * n + "\n" for n in (4096, 4096))
            + "o" + "a" * 1807 + "\u00e9 split across records\n"
            + "ewarning: dos line\n"
            + "".join("o" + "x" * n + "\n" for n in (4096, 4096, 3808))
            + "ono newline at the end\n",
        )  # fmt: skip
        self.assertEqual(
            content,
            h.stream_content(h.read_records(os.path.join(folder, "7-log-compile-stdio.gz"))),
        )
        log_data, html = yield self.db_log("builder", 7, "compile", "report.html")
        self.assertEqual((log_data["type"], html), ("h", "<b>hi</b>\n<i>there</i>\n"))
        engine = sa.create_engine(h.db_url(master_dir))
        with engine.connect() as conn:
            methods = conn.execute(sa.text("select distinct compressed from logchunks")).all()
        engine.dispose()
        self.assertEqual(sorted(r[0] for r in methods), [0, 1])  # gz where it is smaller

    @defer.inlineCallbacks
    def test_the_lines_after_a_long_one_are_kept_whole(self) -> Any:
        # A line over 4096 characters that a record cuts: Buildbot's own
        # line finder would cut every line of the records after it too.
        old, master_dir = self.dirs()
        folder = os.path.join(old, "builder")
        h.write_builder(folder, "builder")
        short = ["line %05d of the build\n" % i for i in range(3000)]
        text = "".join(short[:300]) + "L" * 6000 + "\r\n" + "".join(short[300:])
        h.write_log(os.path.join(folder, "1-log-compile-stdio.bz2"), [(0, text)])
        logs = [h.LogFile(name="stdio", filename="1-log-compile-stdio")]
        h.write_build(folder, h.build(1, [h.step("compile", logs, 1200000001.5)], 1200000000.5))
        result = h.run_import(old, master_dir)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        yield self.start(master_dir)
        _, content = yield self.db_log("builder", 1, "compile", "stdio")
        lines = ["o" + line for line in short]
        lines[300:300] = ["o" + "L" * 4096 + "\n", "o" + "L" * 1904 + "\n"]
        self.assertEqual(content, "".join(lines))

    def test_a_builder_is_named_from_what_can_be_read(self) -> None:
        # A builder pickle that is a FIFO would wait for ever to be read;
        # a build whose properties would not fit in memory names nothing.
        old, master_dir = self.dirs()
        fifo, bomb = os.path.join(old, "b1dir"), os.path.join(old, "b2dir")
        os.makedirs(fifo)
        os.mkfifo(os.path.join(fifo, "builder"))
        properties = h.Properties(properties={"buildername": ("b1", "Builder")}, runtime=set())
        h.write_build(fifo, h.build(0, [], 1300000000.0, properties=properties))
        os.makedirs(bomb)
        shared: list[Any] = [1]
        for _ in range(40):
            shared = [shared, shared]
        properties = h.Properties(properties={"buildername": ("b2", "Builder"), "x": (shared, "")})
        h.write_build(bomb, h.build(0, [], 1300000000.0, properties=properties))
        result = h.run_import(old, master_dir)
        self.assertEqual((result.returncode, result.stderr), (1, ""))
        self.assertEqual(
            [line for line in result.stdout.splitlines() if line.startswith("problem")],
            [
                f"problem: {fifo}/builder: not a file; named 'b1' after its builds' buildername",
                f"problem: {bomb}/builder: no builder pickle; named 'b2dir' after its folder",
                f"problem: {bomb}/0: unreadable pickle (more than 1,000,000 values, counting a"
                " value held in several places in each); build skipped",
            ],
        )
        self.assertIn("  builds: 1 imported, 0 skipped (already imported)", result.stdout)

    @defer.inlineCallbacks
    def test_broken_input_is_reported_and_the_rest_imported(self) -> Any:
        old, master_dir = self.dirs()
        folder = os.path.join(old, "builder")
        h.write_builder(folder, "builder")
        good = [(2, "header\n"), (0, "one\n"), (1, "two\n"), (0, "three\n")]

        def add(number: int, files: dict[str, bytes | None], **log_state: Any) -> None:
            for name, data in files.items():
                if data is None:
                    h.write_log(os.path.join(folder, name), good)
                else:
                    with open(os.path.join(folder, name), "wb") as f:
                        f.write(data)
            log = h.LogFile(name="stdio", filename=f"{number}-log-s-stdio", **log_state)
            status = h.build(number, [h.step("s", [log], 1300000000.0 + number)], 1300000000.0)
            h.write_build(folder, status)

        add(0, {"0-log-s-stdio": None})
        add(1, {"1-log-s-stdio": None})
        with open(os.path.join(folder, "1"), "r+b") as f:
            f.truncate(200)  # a pickle cut short
        add(2, {})  # its log file is missing
        add(3, {"3-log-s-stdio": b"4:0one,4:1two,xx"})  # garbage after two records
        add(4, {"4-log-s-stdio": b"4:0one,9:0cut sh"})  # the last record cut short
        add(5, {"5-log-s-stdio": None, "5-log-s-stdio.bz2.tmp": b"BZh91AY&SY"})
        add(6, {"6-log-s-stdio.bz2.tmp": bz2_whole(good)})  # a whole .bz2.tmp and nothing else
        add(7, {"7-log-s-stdio.bz2": bz2_prefix(good, 30)})  # a compressed stream cut short
        # 0.8 counted the text it wrote (length): emptied, cut at a record's end, whole
        add(8, {"8-log-s-stdio": b""}, length=20)
        add(9, {"9-log-s-stdio": records(good[:2])}, length=20)
        add(10, {"10-log-s-stdio": None}, length=20)
        # a step name longer than Buildbot's
        h.write_log(os.path.join(folder, "11-log-s-stdio"), good)
        log = h.LogFile(name="stdio", filename="11-log-s-stdio")
        h.write_build(folder, h.build(11, [h.step("s" * 60, [log], 1300000011.0)], 1300000000.0))
        # a .gz cut short: what is whole before the cut goes in, to its last whole record
        many = [(0, f"line {i:06d}\n") for i in range(30000)]
        whole = gzip.compress(records(many))
        add(12, {"12-log-s-stdio.gz": whole[: len(whole) * 2 // 3]})
        readable = zlib.decompressobj(31).decompress(whole[: len(whole) * 2 // 3])
        salvaged = readable[: readable.rindex(b",") + 1]
        # pickles of what 0.8 never wrote: steps as a number, a time that
        # is none, a memo index that asks the C unpickler for gigabytes
        crafted = h.build(13, [], 1300000000.0)
        crafted.steps = 5
        h.write_build(folder, crafted)
        h.write_build(folder, h.build(14, [], float("nan")))
        with open(os.path.join(folder, "15"), "wb") as f:
            f.write(b"\x80\x02Nr\xff\xff\xff\x7f.")
        # a reason longer than Buildbot's column, a property named in UTF-8
        # bytes (a Python 2 str, from a master.cfg without u'')
        properties = h.Properties(properties={"PLACEHOLDER": (1, "SetProperty")})
        pickled = h.dumps(h.build(16, [], 1300000016.0, reason="r" * 300, properties=properties))
        with open(os.path.join(folder, "16"), "wb") as f:
            f.write(pickled.replace(b"X\x0b\x00\x00\x00PLACEHOLDER", b"U\x05pr\xc3\xbcf"))
        os.mkfifo(os.path.join(folder, "17"))  # no pickle: not read (it would wait for ever)
        # steps of what is no list, a property value of 2**40 parts in 0.6 KB
        crafted = h.build(18, [], 1300000018.0)
        crafted.steps = {"s": 1}
        h.write_build(folder, crafted)
        # in 20 properties of 2**18 parts each; a reason that is a list
        shared: list[Any] = [1]
        for _ in range(17):
            shared = [shared, shared]
        properties = h.Properties(properties={f"p{i}": (shared, "SetProperty") for i in range(20)})
        h.write_build(folder, h.build(19, [], 1300000019.0, properties=properties))
        h.write_build(folder, h.build(20, [], 1300000020.0, reason=shared))
        # a property's dict keyed by a tuple of 2**40 parts; 65 MiB of text in 1 MiB
        properties = h.Properties(properties={"p": ({"PLACEHOLDER": 1}, "SetProperty")})
        pickled = h.dumps(h.build(21, [], 1300000021.0, properties=properties))
        with open(os.path.join(folder, "21"), "wb") as f:
            f.write(pickled.replace(b"X\x0b\x00\x00\x00PLACEHOLDER", shared_tuple(40)))
        properties = h.Properties(properties={"p": (["x" * 2**20] * 65, "SetProperty")})
        h.write_build(folder, h.build(22, [], 1300000022.0, properties=properties))
        for number in (19, 20, 21):
            self.assertLess(os.path.getsize(os.path.join(folder, str(number))), 2000)
        # a log file linked to a file outside the builder's folder, one to a file in it
        secret = os.path.join(os.path.abspath(self.mktemp()), "secret")
        os.makedirs(os.path.dirname(secret))
        h.write_log(secret, [(0, "not for the pages\n")])
        add(23, {})
        os.symlink(secret, os.path.join(folder, "23-log-s-stdio"))
        add(24, {})
        os.symlink("0-log-s-stdio", os.path.join(folder, "24-log-s-stdio"))
        # a build whose pickle gives another number than its file's
        shutil.copy(os.path.join(folder, "0"), os.path.join(folder, "25"))
        # a build number no database column holds
        shutil.copy(os.path.join(folder, "0"), os.path.join(folder, "99999999999999999999"))

        result = h.run_import(old, master_dir)
        f = folder
        self.assertEqual(result.returncode, 1)
        problems = [line for line in result.stdout.splitlines() if line.startswith("problem")]
        self.assertEqual(
            problems[:2],
            [
                f"problem: {f}/1: unreadable pickle (pickle data was truncated); build skipped",
                f"problem: {f}/2-log-s-stdio: log file missing; log skipped",
            ],
        )
        self.assertEqual(
            problems[2:5],
            [
                f"problem: {f}/3-log-s-stdio: no length prefix at byte 14; "
                "log imported as far as it reads",
                f"problem: {f}/4-log-s-stdio: record runs past the end at byte 7; "
                "log imported as far as it reads",
                # 5: a leftover beside the whole file holds nothing more: no problem
                f"problem: {f}/6-log-s-stdio.bz2.tmp: a compression cut short; "
                "read as far as it goes",
            ],
        )
        self.assertTrue(problems[5].startswith(f"problem: {f}/7-log-s-stdio.bz2: "), problems[5])
        self.assertTrue(problems[5].endswith("; log imported as far as it reads"), problems[5])
        self.assertEqual(
            problems[6:],
            [
                f"problem: {f}/8-log-s-stdio: holds 0 bytes of text where 0.8 wrote 20"
                " (emptied or cut after the build?); log imported as it is",
                f"problem: {f}/9-log-s-stdio: holds 11 bytes of text where 0.8 wrote 20"
                " (emptied or cut after the build?); log imported as it is",
                f"problem: {f}/11: step {'s' * 60!r} stored as {'s' * 50!r} (Buildbot's names"
                " are unique and of 50 characters at most): old links by its name now answer 404",
                f"problem: {f}/12-log-s-stdio.gz: EOFError: compressed stream cut short;"
                " log imported as far as it reads",
                f"problem: {f}/13: a build 0.8 did not write (TypeError: its steps are no"
                " list but int); build skipped",
                f"problem: {f}/14: a build 0.8 did not write (ValueError: nan is no time);"
                " build skipped",
                f"problem: {f}/15: not an 0.8 BuildStatus but NoneType; build skipped",
                f"problem: {f}/16: the reason of 300 characters cut to 256, as much as"
                " Buildbot's column holds",
                f"problem: {f}/18: a build 0.8 did not write (TypeError: its steps are no"
                " list but dict); build skipped",
                f"problem: {f}/19: unreadable pickle (more than 1,000,000 values, counting a"
                " value held in several places in each); build skipped",
                f"problem: {f}/20: a build 0.8 did not write (TypeError: a text that is a"
                " list); build skipped",
                f"problem: {f}/21: unreadable pickle (a key of more than 1,000 parts, where"
                " 0.8's keys were names); build skipped",
                f"problem: {f}/22: unreadable pickle (more than 64 MiB of text, counting a"
                " text held in several places in each); build skipped",
                f"problem: {f}/23-log-s-stdio: a link to {os.path.realpath(secret)}, outside"
                " the builder's folder; not read, log skipped",
                f"problem: {f}/25: the pickle calls itself build #0; imported as #25, its"
                " file's number, by which 0.8 found it",
                f"problem: {f}/99999999999999999999: a build number over 2147483647, the"
                " most Buildbot's database holds; build skipped",
            ],
        )
        self.assertIn(
            "  builds: 16 imported, 0 skipped (already imported), 0 refused, 10 unreadable",
            result.stdout,
        )
        yield self.start(master_dir)
        texts = {}
        for number in (0, 2, 3, 4, 5, 6, 9, 10, 12, 23, 24, 25):
            path = f"/builders/builder/builds/{number}/steps/s/logs/stdio/text"
            texts[number] = yield self.page(path)
        self.assertEqual(
            texts,
            {
                0: (200, b"one\ntwo\nthree\n"),
                2: (404, texts[2][1]),
                3: (200, b"one\ntwo\n"),
                4: (200, b"one\n"),
                5: (200, b"one\ntwo\nthree\n"),
                6: (200, b"one\ntwo\nthree\n"),
                9: (200, b"one\n"),
                10: (200, b"one\ntwo\nthree\n"),
                12: (200, "".join(t for _, t in many[: salvaged.count(b",")]).encode()),
                23: (404, texts[23][1]),
                24: (200, b"one\ntwo\nthree\n"),
                25: (200, b"one\ntwo\nthree\n"),
            },
        )
        self.assertGreater(len(texts[12][1]), 200 * 1024)
        build = yield self.master.data.get(("builders", "builder", "builds", 16))
        properties = yield self.master.data.get(("builds", build["buildid"], "properties"))
        self.assertEqual(
            {name: tuple(entry) for name, entry in properties.items()},
            {"pr\u00fcf": (1, "SetProperty")},
        )


NOBODY = 65534


def as_nobody(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The console script run as an operator who is not root (user and group nobody)."""
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", h.COMMAND]
    return subprocess.run(
        [*command, "import-08", *args], capture_output=True, text=True, env=env, timeout=300
    )


class OperatorTests(ImportTestCase):
    maxDiff = None

    def history(self, base: str, builds: int, log: list[tuple[int, str]]) -> str:
        """An old basedir under C{base} with C{builds} builds of one step whose log is C{log}."""
        folder = os.path.join(base, "old", "builder")
        h.write_builder(folder, "builder")
        for number in range(builds):
            h.write_log(os.path.join(folder, f"{number}-log-s-stdio"), log)
            log_state = h.LogFile(name="stdio", filename=f"{number}-log-s-stdio")
            step = h.step("s", [log_state], 1300000000.0 + number)
            h.write_build(folder, h.build(number, [step], 1300000000.0 + number))
        return os.path.dirname(folder)

    def test_what_an_operator_who_is_not_root_cannot_read_or_write(self) -> None:
        if os.geteuid() != 0:
            cannot_run(self, "changing to another user needs root (CI runs as root)")
        base = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, base)
        old = self.history(base, 2, [(0, "one\n")])
        master_dir = h.create_master_dir(os.path.join(base, "master"))
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", base], check=True)
        # A folder nobody may list (a mount point's lost+found), a log nobody may read.
        os.mkdir(os.path.join(old, "lost+found"), 0o700)
        log = os.path.join(old, "builder", "1-log-s-stdio")
        os.chmod(log, 0)
        env = {**os.environ, "HOME": base, "PYTHONWARNINGS": "ignore"}
        result = as_nobody(old, master_dir, env=env)
        self.assertEqual(
            (result.returncode, result.stderr, result.stdout),
            (1, "", f"note: {old}/lost+found: cannot be listed (Permission denied);"
             " not looked into\n"
             f"problem: {log}: cannot be opened (Permission denied); build skipped"
             " (a later run imports it)\n" + summary("1", 1, 0, 0, 1, 1, 4, 1)),
        )  # fmt: skip
        # Readable now, the build goes in whole.
        os.chmod(log, 0o644)
        result = as_nobody(old, master_dir, env=env)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn("  builds: 1 imported, 1 skipped (already imported)", result.stdout)
        url = h.db_url(master_dir)
        engine = sa.create_engine(url)
        self.addCleanup(engine.dispose)
        with engine.connect() as conn:
            lines = conn.execute(sa.text("SELECT num_lines FROM logs ORDER BY id")).scalars().all()
        self.assertEqual(lines, [1, 1])
        # A database nobody may write stops the run at its first build, in one line.
        os.chmod(log, 0)
        h.write_build(os.path.join(old, "builder"), h.build(2, [], 1300000002.0))
        os.chown(os.path.join(old, "builder", "2"), NOBODY, NOBODY)
        os.chown(os.path.join(master_dir, "state.sqlite"), 0, 0)
        result = as_nobody(old, master_dir, env=env)
        self.assertEqual(result.returncode, 1)
        self.assertIn(
            f"  stopped: the database failed (OperationalError: attempt to write a"
            f" readonly database) at {old}/builder/2; the builds imported stay, and a later"
            " run imports the rest",
            result.stdout,
        )
        self.assertNotIn("INSERT", result.stdout)
        # A master's directory nobody may write: SQLite cannot open the
        # database at all, which is no schema to upgrade.
        os.chown(os.path.join(master_dir, "state.sqlite"), NOBODY, NOBODY)
        os.chown(master_dir, 0, 0)
        for leftover in ("state.sqlite-wal", "state.sqlite-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(master_dir, leftover))
        result = as_nobody(old, master_dir, env=env)
        self.assertEqual((result.returncode, result.stdout), (2, ""))
        self.assertRegex(
            result.stderr,
            rf"^buildbot-logfile: the database of {re.escape(master_dir)} cannot be opened"
            r" \(OperationalError: (unable to open database file|attempt to write a readonly"
            r" database)\)\n\Z",
        )
        # A twistd.log nobody may write: the master's buildbot.tac, which
        # opens it, cannot be run to find master.cfg.
        twistd_log = os.path.join(master_dir, "twistd.log")
        os.chown(twistd_log, 0, 0)
        os.chmod(twistd_log, 0o644)
        result = as_nobody(old, master_dir, env=env)
        self.assertEqual(
            (result.returncode, result.stdout, result.stderr),
            (2, "", f"buildbot-logfile: {master_dir}/buildbot.tac cannot be run (PermissionError:"
                    f" [Errno 13] Permission denied: '{twistd_log}')\n"),
        )  # fmt: skip

    def test_ctrl_c_stops_the_run_once_its_build_is_in(self) -> None:
        base = os.path.abspath(self.mktemp())
        old = self.history(base, 20, [(0, "x" * 99 + "\n")] * 20000)
        master_dir = h.create_master_dir(os.path.join(base, "master"))
        os.unlink(os.path.join(old, "builder", "0-log-s-stdio"))  # says so as build 0 goes in
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        run = subprocess.Popen(
            [h.COMMAND, "import-08", old, master_dir], stdout=subprocess.PIPE, text=True, env=env
        )
        assert run.stdout is not None
        first = run.stdout.readline()
        self.assertIn("0-log-s-stdio: log file missing", first)
        run.send_signal(signal.SIGINT)
        rest = run.stdout.read()
        self.assertEqual(run.wait(timeout=120), 1)
        imported = int(re.search(r"builds: (\d+) imported", rest).group(1))
        self.assertLess(imported, 20)
        self.assertIn(
            "  stopped: SIGINT received; the builds imported stay, and a later run imports"
            " the rest",
            rest,
        )
        result = h.run_import(old, master_dir)
        self.assertIn(f"  builds: {20 - imported} imported, {imported} skipped", result.stdout)


class LayoutTests(ImportTestCase):
    maxDiff = None

    @defer.inlineCallbacks
    def test_builder_folders_as_0_8_laid_them_out(self) -> Any:
        old, master_dir = self.dirs()
        outside = os.path.abspath(self.mktemp())

        def builder(folder: str, name: str | None, log: bytes, **properties: Any) -> None:
            os.makedirs(folder)
            if name is not None:
                h.write_builder(folder, name)
            with open(os.path.join(folder, "0-log-s-stdio"), "wb") as f:
                f.write(log)
            status = h.build(
                0,
                [h.step("s", [h.LogFile(name="stdio", filename="0-log-s-stdio")], 1300000000.0)],
                1300000000.0,
                properties=h.Properties(
                    properties={"buildnumber": (0, "Build"), **properties}, runtime=set()
                ),
            )
            h.write_build(folder, status)

        # builddir='group/nested'; a builder moved to another disk, linked
        builder(os.path.join(old, "group", "nested"), "nested", records([(0, "nested\n")]))
        builder(os.path.join(outside, "linked"), "linked", records([(0, "linked\n")]))
        os.symlink(os.path.join(outside, "linked"), os.path.join(old, "linked"))
        os.symlink(old, os.path.join(old, "group", "loop"))  # looked into once
        os.makedirs(os.path.join(old, "public_html"))
        # A builddir in Latin-1 whose builder pickle is gone: the builds know
        # the name.  A character of stdout cut by a record of stderr; a
        # Decimal property.
        latin = os.path.join(os.fsencode(old), b"caf\xe9_build").decode(errors="surrogateescape")
        builder(
            latin, None, b"5:0caf\xc3,5:1err\n,3:0\xa9\n,",
            buildername=("caf\u00e9", "Builder"), price=(decimal.Decimal("1.10"), "SetProperty"),
        )  # fmt: skip
        # Compressed and plain both there (a compression that renamed its
        # result but was stopped before it removed the plain file): 0.8
        # read the compressed one.
        with bz2.open(os.path.join(old, "group", "nested", "0-log-s-stdio.bz2"), "wb") as f:
            f.write(records([(0, "nested, compressed\n")]))

        result = h.run_import(old, master_dir)
        self.assertEqual(
            (result.returncode, result.stdout, result.stderr),
            (
                1,
                f"problem: {old}/caf\\xe9_build/builder: no builder pickle; named 'caf\u00e9'"
                " after its builds' buildername\n"
                + summary(
                    "3", 3, 0, 0, 0, 3, len("cafe\nerr\nnested, compressed\nlinked\n") + 1, 1
                ),
                "",
            ),
        )
        yield self.start(master_dir)
        texts = {}
        for name in ("caf\u00e9", "nested", "linked"):
            builderid = yield self.master.data.updates.findBuilderId(name)
            build = yield self.master.data.get(("builders", builderid, "builds", 0))
            self.assertEqual(build["number"], 0, name)
            texts[name] = yield self.page(
                f"/builders/{quote(name)}/builds/0/steps/s/logs/stdio/text"
            )
        self.assertEqual(
            texts,
            {
                "caf\u00e9": (200, "err\ncaf\u00e9\n".encode()),
                "nested": (200, b"nested, compressed\n"),
                "linked": (200, b"linked\n"),
            },
        )
        builderid = yield self.master.data.updates.findBuilderId("caf\u00e9")
        build = yield self.master.data.get(("builders", builderid, "builds", 0))
        properties = yield self.master.data.get(("builds", build["buildid"], "properties"))
        self.assertEqual(properties["price"], ("1.10", "SetProperty"))

    def test_a_folder_with_no_builder_history_is_refused(self) -> None:
        old, master_dir = self.dirs()
        h.write_builder(os.path.join(old, "b"), "b")
        for given, hint in (
            (
                os.path.join(old, "b"),
                "it is one builder's folder: give the master's basedir, its parent",
            ),
            (master_dir, "is it the 0.8 master's basedir?"),
        ):
            result = h.run_import(given, master_dir)
            self.assertEqual(
                (result.returncode, result.stdout, result.stderr),
                (
                    2,
                    "",
                    f"buildbot-logfile: {given}: no 0.8 builder's history in it (a folder with a"
                    f" 'builder' pickle or build pickles); {hint}\n",
                ),
            )
        # A master whose database is gone is refused, and none is left behind.
        database = os.path.join(master_dir, "state.sqlite")
        os.unlink(database)
        result = h.run_import(old, master_dir)
        self.assertEqual(
            (result.returncode, result.stdout, result.stderr),
            (2, "", f"buildbot-logfile: the database of {master_dir} ({database}) does not exist;"
             f" run 'buildbot upgrade-master {master_dir}' first\n"),
        )  # fmt: skip
        self.assertFalse(os.path.exists(database))


def test_the_unpickler_reads_python2_decimals_and_datetimes() -> None:
    # As Python 2.7 pickled them, protocols 0 and 2.
    decimal_0 = b"cdecimal\nDecimal\np0\n(S'1.10'\np1\ntp2\nRp3\n."
    decimal_2 = b"\x80\x02cdecimal\nDecimal\nq\x00U\x041.10q\x01\x85q\x02Rq\x03."
    state = b"\x07\xdd\x05\x01\x0c\x00\x00\x00\x00\x00"
    datetime_0 = b"cdatetime\ndatetime\np0\n(S'%s'\np1\ntp2\nRp3\n." % (
        "".join(f"\\x{byte:02x}" for byte in state).encode()
    )
    datetime_2 = b"\x80\x02cdatetime\ndatetime\nq\x00U\n%sq\x01\x85q\x02Rq\x03." % state
    timedelta_2 = b"\x80\x02cdatetime\ntimedelta\nq\x00K\x01K\x02K\x03\x87q\x01Rq\x02."
    pickles = {
        decimal_0: "1.10",
        decimal_2: "1.10",
        datetime_0: "2013-05-01 12:00:00",
        datetime_2: "2013-05-01 12:00:00",
        timedelta_2: "1 day, 0:00:02.000003",
    }
    assert {data: p08.plain(p08.loads(data)) for data in pickles} == pickles
    with pytest.raises(p08.UnsafePickleError):
        p08.loads(b"cdecimal\nDecimal\n(I1\ntR.")


def records(entries: list[tuple[int, str]]) -> bytes:
    return b"".join(b"%d:%d%s," % (len(t.encode()) + 1, c, t.encode()) for c, t in entries)


def bz2_prefix(entries: list[tuple[int, str]], length: int) -> bytes:
    return bz2.compress(records(entries) * 200)[:length]


def bz2_whole(entries: list[tuple[int, str]]) -> bytes:
    return bz2.compress(records(entries))


@defer.inlineCallbacks
def check_v083_history_on_a_server(case: PostgresTestCase | MariaDBTestCase) -> Any:
    """The v083 fixture imported into a fresh database of C{case}'s server, twice, then served."""
    assert isinstance(case, ImportTestCase)
    url = case.fresh_database()
    base = os.path.abspath(case.mktemp())
    os.makedirs(base)
    old = h.extract_fixture("v083", base)
    master_dir = h.create_master_dir(os.path.join(base, "master"), db=url)
    result = h.run_import(old, master_dir)
    folder = os.path.join(old, "builder")
    files = [f for f in os.listdir(folder) if "-log-" in f]
    case.assertEqual(
        (result.returncode, result.stdout, result.stderr),
        (0, summary("1", 5, 0, 0, 0, 15, text_bytes(folder, files), 0), ""),
    )
    rerun = h.run_import(old, master_dir)
    case.assertEqual(rerun.returncode, 0, rerun.stderr)
    case.assertIn("nothing imported", rerun.stdout)
    yield case.start_master(
        {"builder": [python_step("hello", "print('hello')")]}, http=True, db_url=url
    )
    yield case.assert_builds(folder, V083, _v083_properties)


class PostgresTests(PostgresTestCase, ImportTestCase):
    """The importer on PostgreSQL, a throwaway server of the multi-master tests' kind."""

    def test_v083_history_on_postgresql(self) -> Any:
        return check_v083_history_on_a_server(self)

    @defer.inlineCallbacks
    def test_what_postgresql_refuses_is_fitted_not_the_build_lost(self) -> Any:
        # PostgreSQL's text holds no NUL, and refuses a value longer than
        # its column; 0.8 kept whatever a step said, and names of any length.
        url = self.fresh_database()
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        folder = os.path.join(base, "old", "builder")
        master_dir = h.create_master_dir(os.path.join(base, "master"), db=url)
        h.write_builder(folder, "builder")
        h.write_log(os.path.join(folder, "1-log-compile-stdio"), [(0, "a\x00b\n")])
        logs = [h.LogFile(name="stdio", filename="1-log-compile-stdio")]
        steps = [h.step("compile", logs, 1200000001.5, text=["compile", "bad\x00byte"])]
        h.write_build(folder, h.build(1, steps, 1200000000.5))
        source = h.SourceStamp(
            branch="b" * 300, revision=None, repository="", project="", patch=None, changes=()
        )
        h.write_build(folder, h.build(2, [], 1200000100.5, slavename="w" * 71, source=source))
        result = h.run_import(os.path.join(base, "old"), master_dir)
        self.assertEqual(
            (result.returncode, result.stdout),
            (
                1,
                f"problem: {os.path.join(folder, '1')}: 1 NUL characters stored as U+FFFD:"
                " PostgreSQL's text holds none\n"
                f"problem: {os.path.join(folder, '2')}: the worker's name of 71 characters cut"
                " to 50, a source stamp's branch of 300 characters cut to 256, as much as"
                " Buildbot's column holds\n" + summary("1", 2, 0, 0, 0, 1, 4, 2),
            ),
        )
        yield self.start_master(
            {"builder": [python_step("hello", "print('hello')")]}, http=True, db_url=url
        )
        build = yield self.master.data.get(("builders", "builder", "builds", 1))
        (step,) = yield self.master.data.get(("builds", build["buildid"], "steps"))
        self.assertEqual(step["state_string"], "compile bad\ufffdbyte")
        # Log text is stored as bytes, and keeps it.
        _, content = yield self.db_log("builder", 1, "compile", "stdio")
        self.assertEqual(content, "oa\x00b\n")
        second = yield self.master.data.get(("builders", "builder", "builds", 2))
        worker = yield self.master.data.get(("workers", second["workerid"]))
        request = yield self.master.data.get(("buildrequests", second["buildrequestid"]))
        buildset = yield self.master.data.get(("buildsets", request["buildsetid"]))
        self.assertEqual(
            (worker["name"], buildset["sourcestamps"][0]["branch"]), ("w" * 50, "b" * 256)
        )


class MariaDBTests(MariaDBTestCase, ImportTestCase):
    """The importer on MariaDB (Buildbot's C{mysql} dialect)."""

    def test_v083_history_on_mariadb(self) -> Any:
        return check_v083_history_on_a_server(self)

    @defer.inlineCallbacks
    def test_characters_beyond_three_bytes_are_replaced_not_the_build_refused(self) -> Any:
        # Buildbot's tables there are utf8mb3: the server refuses a
        # character beyond U+FFFF.  Log text is stored as bytes and keeps it.
        url = self.fresh_database()
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        old = os.path.join(base, "old")
        folder = os.path.join(old, "builder")
        master_dir = h.create_master_dir(os.path.join(base, "master"), db=url)
        h.write_builder(folder, "builder")
        entries = [(0, "built \U0001f680 fine\n")]
        h.write_log(os.path.join(folder, "1-log-compile-stdio"), entries)
        logs = [h.LogFile(name="stdio", filename="1-log-compile-stdio")]
        change = h.Change(
            number=1, who="dev \u00e9", comments="fix \U0001f41b and \U0001f600", files=["a"],
            revision="abc", when=1199999999, branch=None, category=None, revlink=None,
            repository="", project="", codebase="", properties=None,
        )  # fmt: skip
        steps = [h.step("compile \U0001f527", logs, 1200000001.5)]
        properties = h.Properties(
            properties={"buildnumber": (1, "Build"), "mood": ("\U0001f600", "Force")},
            runtime=set(),
        )
        h.write_build(
            folder,
            h.build(
                1, steps, 1200000000.5,
                reason="forced \U0001f680", changes=(change,), properties=properties,
            ),
        )  # fmt: skip
        h.write_build(folder, h.build(2, [], 1200000100.5))

        result = h.run_import(old, master_dir)
        self.assertEqual(
            (result.returncode, result.stdout),
            (
                1,
                f"problem: {os.path.join(folder, '1')}: 5 characters beyond U+FFFF (emoji and"
                " the like) stored as U+FFFD: Buildbot's tables on MySQL and MariaDB hold three"
                " bytes a character\n"
                + summary("1", 2, 0, 0, 0, 1, len("built \U0001f680 fine\n".encode()), 1),
            ),
        )
        rerun = h.run_import(old, master_dir)
        self.assertEqual(rerun.returncode, 0, rerun.stderr)
        self.assertIn("nothing imported", rerun.stdout)
        yield self.start_master(
            {"builder": [python_step("hello", "print('hello')")]}, http=True, db_url=url
        )
        build = yield self.master.data.get(("builders", "builder", "builds", 1))
        request = yield self.master.data.get(("buildrequests", build["buildrequestid"]))
        buildset = yield self.master.data.get(("buildsets", request["buildsetid"]))
        self.assertEqual(buildset["reason"], "forced \ufffd")
        (step,) = yield self.master.data.get(("builds", build["buildid"], "steps"))
        # Its name, and its text, which 0.8 began with the name.
        self.assertEqual(
            (step["name"], step["state_string"]), ("compile \ufffd", "compile \ufffd done")
        )
        # Properties are stored as JSON, whose escapes keep every character.
        props = yield self.master.data.get(("builds", build["buildid"], "properties"))
        self.assertEqual(props["mood"], ("\U0001f600", "Force"))
        (imported_change,) = yield self.master.data.get(("changes",))
        self.assertEqual(
            (imported_change["author"], imported_change["comments"]),
            ("dev \u00e9", "fix \ufffd and \ufffd"),
        )
        code, body = yield self.page(
            "/builders/builder/builds/1/steps/compile%20%EF%BF%BD/logs/stdio/text"
        )
        self.assertEqual((code, body.decode("utf-8")), (200, "built \U0001f680 fine\n"))
