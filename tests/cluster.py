"""
A real Buildbot cluster for the multi-master tests: a throwaway PostgreSQL
cluster, a crossbar WAMP router, two masters (A and B) started with
C{buildbot start} in processes of their own, sharing the database and the
message queue, and one real worker, connected to master A only (and, for
the tests of builds on both masters, a second one on master B).

Both masters run C{reporters.LegacyStatus} with a L{JsonRecorder} (see
L{tests.cluster_receiver}), which writes every 0.8 event to
C{<basedir>/events.jsonl}, and serve the old pages on a port of their own
(unless the cluster is made with C{legacy_status=False}: the anchor of
benchmarks/bench_cluster.py).
Both configure the same builders; the worker is configured on both (a
builder needs its workers configured) but connects to A, so A runs every
build and B only hears of it.  The second worker, where there is one,
serves only L{BUILDER_ON_B}, whose builds B runs and A only hears of.

Every build runs three steps: C{prep} (prints a line), C{live} and
C{after} (prints a line).  C{live} follows a control file that the test
writes (L{Cluster.control}): each line the test adds becomes output of the
step at once, and the step ends when the test says so.  Builds are forced
through master A's REST API, and logs read back from the database.

Starting (L{Cluster.start}) and stopping (L{Cluster.stop}) block: they run
before and after the tests, when the reactor is not needed; a test that
restarts a master while it also talks to the cluster calls them through
C{threads.deferToThread}.  Whatever fails, L{Cluster.stop} stops every
process that was started, and an C{atexit} hook stops what a test run
that was cut short left.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

import buildbot_logfile  # noqa: F401  (0.8 import paths, which tests.masters uses)
from tests.masters import db_chunks, db_text
from tests.support import cannot_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(os.path.abspath(sys.executable))
WORKER_NAME = "w1"
BUILDERS = ("b1", "b2")
# A cluster made with a worker on B (C{worker_on_b=True}): its name, and
# the one builder it serves, which only B can run.
WORKER_B_NAME = "w2"
BUILDER_ON_B = "b3"
EVENTS = "events.jsonl"
# How long the harness waits for a process or an event before it fails.
START_TIMEOUT = 90.0
EVENT_TIMEOUT = 30.0

# The C{live} step: follows a control file of JSON lines, C{["o", text]}
# and C{["e", text]} written to stdout and stderr at once, then
# C{["end", rc]}.  It reads on as the test appends: a short poll of the
# file, not a delay that makes the output.
FOLLOW_CONTROL = textwrap.dedent(
    """
    import json, os, sys, time
    path = sys.argv[1]
    while not os.path.exists(path):
        time.sleep(0.01)
    streams = {"o": sys.stdout.buffer, "e": sys.stderr.buffer}
    pending = b""
    with open(path, "rb") as f:
        while True:
            data = f.readline()
            if not data:
                time.sleep(0.01)
                continue
            pending += data
            if not pending.endswith(b"\\n"):
                continue
            command, argument = json.loads(pending)
            pending = b""
            if command == "end":
                sys.exit(argument)
            streams[command].write(argument.encode("utf-8"))
            streams[command].flush()
    """
)

MASTER_CFG = """\
import sys

sys.path.insert(0, {repo!r})

from buildbot.plugins import reporters, schedulers, steps, util, worker

from tests.cluster_receiver import JsonRecorder

PYTHON = {python!r}
c = BuildmasterConfig = {{}}
c["title"] = "cluster master {name}"
c["multiMaster"] = True
c["db"] = {{"db_url": {db_url!r}}}
c["mq"] = {{"type": "wamp", "router_url": {router_url!r}, "realm": "realm1",
           "wamp_debug_level": "error"}}
c["workers"] = [worker.Worker(name, "pass") for name in {workers!r}]
c["protocols"] = {{"pb": {{"port": "tcp:{pb_port}:interface=127.0.0.1"}}}}
c["buildbotURL"] = "http://127.0.0.1:{www_port}/"
c["buildbotNetUsageData"] = None
{www}
factory = util.BuildFactory([
    steps.ShellCommand(name="prep", command=[PYTHON, "-c", "print('prep of the build')"]),
    steps.ShellCommand(
        name="live",
        command=[PYTHON, "-u", "-c", {follow!r},
                 util.Interpolate({control_dir!r} + "/%(prop:buildername)s-%(prop:buildnumber)s")],
    ),
    steps.ShellCommand(name="after", command=[PYTHON, "-c", "print('after the live step')"]),
])
c["builders"] = [
    util.BuilderConfig(name=name, workernames=[{builder_workers!r}[name]], factory=factory)
    for name in {builders!r}
]
c["schedulers"] = {schedulers}
c["services"] = {services}
"""

LEGACY_STATUS = """[
    reporters.LegacyStatus(
        receivers=[JsonRecorder({events!r}, text_head={text_head!r})],
        http_port="tcp:{legacy_port}:interface=127.0.0.1",
    )
]"""

CROSSBAR_CONFIG = {
    "version": 2,
    "controller": {},
    "workers": [
        {
            "type": "router",
            "realms": [
                {
                    "name": "realm1",
                    "roles": [
                        {
                            "name": "anonymous",
                            "permissions": [
                                {
                                    "uri": "",
                                    "match": "prefix",
                                    "allow": {
                                        "call": True,
                                        "register": True,
                                        "publish": True,
                                        "subscribe": True,
                                    },
                                    "disclose": {"caller": False, "publisher": False},
                                    "cache": True,
                                }
                            ],
                        }
                    ],
                }
            ],
            "transports": [
                {
                    "type": "web",
                    "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
                    # The websocket at /ws; the root serves an empty directory
                    # (a "nodeinfo" root would answer /ws itself).
                    "paths": {
                        "/": {"type": "static", "directory": "web"},
                        "ws": {"type": "websocket"},
                    },
                }
            ],
        }
    ],
}


# Finding what the cluster needs


def postgres_bindir() -> str | None:
    """Debian's PostgreSQL binaries (the newest version installed), or those on PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()],
    )
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def unavailable() -> str | None:
    """Why the cluster cannot run here, or None."""
    if postgres_bindir() is None:
        return "needs PostgreSQL's server binaries (apt-get install postgresql)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "needs runuser (util-linux) to run PostgreSQL as its own user"
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "needs the postgres user (apt-get install postgresql)"
    for module, package in (("psycopg2", "psycopg2-binary"), ("crossbar", "crossbar")):
        # Found, not imported: crossbar is for its own process.
        if importlib.util.find_spec(module) is None:
            return f"needs {package} (pip install -e '.[test]')"
    for program in ("crossbar", "buildbot", "buildbot-worker"):
        if not os.path.exists(os.path.join(BIN, program)):
            return f"needs {program} in {BIN}"
    return None


def free_ports(count: int) -> list[int]:
    """C{count} distinct TCP ports free on loopback now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for(check: Callable[[], Any], what: str, timeout: float = START_TIMEOUT) -> Any:
    """
    Blocking: ask C{check()} until it gives something true, and return it;
    fail when C{timeout} seconds ran out.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@defer.inlineCallbacks
def until(
    check: Callable[[], Any],
    what: str | Callable[[], str],
    timeout: float = EVENT_TIMEOUT,
    interval: float = 0.05,
) -> Any:
    """
    In the reactor: ask C{check()} (which may return a Deferred) until it
    gives something true, and return it; fail when it ran out.  C{what}
    may be a callable, to describe the state at the time of failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = yield defer.maybeDeferred(check)
        if result:
            return result
        if time.monotonic() > deadline:
            description = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {description}")
        yield task.deferLater(reactor, interval, lambda: None)


def process_alive(pid: int) -> bool:
    """Whether C{pid} runs (a zombie no longer does)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def process_gone(pid: int) -> bool:
    """Whether C{pid} is gone, reaped too: a zombie still holds its pid (and twistd's pidfile)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


def run(command: list[str], what: str, timeout: float = START_TIMEOUT, **kwargs: Any) -> str:
    """Run a command to its end; its output, or an error that shows it."""
    try:
        done = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            **kwargs,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{what}: no end after {timeout:.0f} s: {e.output!r}") from e
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode:
        raise AssertionError(f"{what} failed ({done.returncode}):\n{output}")
    return output


# The parts


class Postgres:
    """A throwaway PostgreSQL cluster on a free port, as the postgres user when run as root."""

    def __init__(self, basedir: str, port: int) -> None:
        self.basedir = basedir
        self.datadir = os.path.join(basedir, "data")
        self.logfile = os.path.join(basedir, "postgres.log")
        self.port = port
        self.bindir = postgres_bindir() or ""
        self.started = False
        self.database = "buildbot"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database, for Buildbot."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.database}"

    def _as_postgres(self, program: str, *args: str) -> list[str]:
        command = [os.path.join(self.bindir, program), *args]
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *command]
        return command

    def start(self) -> None:
        os.makedirs(self.basedir)
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.basedir, user.pw_uid, user.pw_gid)
        run(
            self._as_postgres(
                "initdb", "-D", self.datadir, "-U", "postgres", "--auth=trust",
                "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
            ),
            "initdb",
        )  # fmt: skip
        options = " ".join(
            (
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.basedir}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            )
        )
        self.started = True  # from here on, stop() has something to do
        run(
            self._as_postgres(
                "pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60",
                "-o", options, "start",
            ),
            "pg_ctl start",
        )  # fmt: skip
        with contextlib.closing(self.connect("postgres")) as conn:
            conn.autocommit = True
            conn.cursor().execute(f"CREATE DATABASE {self.database}")

    def connect(self, database: str | None = None) -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database or self.database
        )

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        try:
            run(
                self._as_postgres("pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop"),
                "pg_ctl stop",
                timeout=60,
            )
        except AssertionError:
            # Stopped some other way, or stuck: make sure it is gone.
            pid = self._postmaster_pid()
            if pid is not None and process_alive(pid):
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: process_gone(pid), "the postmaster to die", 30)

    def _postmaster_pid(self) -> int | None:
        try:
            with open(os.path.join(self.datadir, "postmaster.pid"), encoding="ascii") as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None


class PostgresTestCase(unittest.TestCase):
    """
    A test case whose tests share one throwaway PostgreSQL server
    (C{postgres}), started before the first of them.  L{setUp} fails
    without one under CI, and skips the test elsewhere.  (pytest calls
    C{setUpClass}; trial's own runner does not, and then there is none.)
    """

    postgres: Postgres | None = None
    _postgres_dir: str | None = None

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        if unavailable() is None:
            cls._postgres_dir = tempfile.mkdtemp()
            os.chmod(cls._postgres_dir, 0o755)  # for the postgres user, when run as root
            cls.postgres = Postgres(os.path.join(cls._postgres_dir, "pg"), free_ports(1)[0])
            try:
                cls.postgres.start()
            except BaseException:
                cls.tearDownClass()
                raise

    @classmethod
    def tearDownClass(cls) -> None:
        postgres, cls.postgres = cls.postgres, None
        if postgres is not None:
            postgres.stop()
        basedir, cls._postgres_dir = cls._postgres_dir, None
        if basedir is not None:
            shutil.rmtree(basedir, ignore_errors=True)
        super().tearDownClass()

    def setUp(self) -> Any:
        if self.postgres is None:
            cannot_run(self, f"PostgreSQL tests need {unavailable()}")
        return super().setUp()


class Crossbar:
    """A crossbar router with one realm, C{realm1}, open to anonymous clients, at C{/ws}."""

    def __init__(self, basedir: str, port: int) -> None:
        self.basedir = basedir
        self.port = port
        self.logfile = os.path.join(basedir, "crossbar.log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def router_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> None:
        os.makedirs(os.path.join(self.basedir, "web"))
        config = json.loads(json.dumps(CROSSBAR_CONFIG))
        config["workers"][0]["transports"][0]["endpoint"]["port"] = self.port
        with open(os.path.join(self.basedir, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        with open(self.logfile, "wb") as log:
            # A session of its own: the controller and its router worker
            # are stopped together, as a group.
            self.process = subprocess.Popen(
                [os.path.join(BIN, "crossbar"), "start", "--cbdir", self.basedir],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._accepts, f"crossbar to listen on port {self.port}")

    def _accepts(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"crossbar exited ({self.process.returncode}):\n{tail(self.logfile)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        # The router worker may outlive its controller: end the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)


class Daemon:
    """A twistd daemon (master or worker) that writes C{twistd.pid} in its basedir."""

    basedir: str

    def pid(self) -> int | None:
        try:
            with open(os.path.join(self.basedir, "twistd.pid"), encoding="ascii") as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    @property
    def running(self) -> bool:
        return self.pid() is not None

    def kill(self, sig: int = signal.SIGTERM, timeout: float = 60.0, strict: bool = True) -> None:
        """
        Send C{sig} and wait for the process to end.  After C{timeout} it
        gets a SIGKILL, and (if C{strict}) the caller an error.
        """
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        # Until it is reaped: twistd does not start while its pidfile
        # names a process that exists, even as a zombie.
        try:
            wait_for(lambda: process_gone(pid), f"{self} (pid {pid}) to end", timeout)
        except AssertionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_for(lambda: process_gone(pid), f"{self} (pid {pid}) to die", 30)
            if strict and sig != signal.SIGKILL:
                raise

    def stop(self) -> None:
        """At the end: SIGTERM, and SIGKILL if that is not enough soon."""
        self.kill(signal.SIGTERM, timeout=30, strict=False)


class Master(Daemon):
    """One master of the cluster, in a process of its own."""

    def __init__(self, cluster: Cluster, name: str, ports: list[int], www: bool) -> None:
        self.cluster = cluster
        self.name = name
        self.basedir = os.path.join(cluster.basedir, f"master-{name}")
        self.pb_port, self.www_port, self.legacy_port = ports
        self.www = www
        self.events_path = os.path.join(self.basedir, EVENTS)
        self.builders = list(BUILDERS)
        if cluster.worker_on_b:
            self.builders.append(BUILDER_ON_B)

    def __repr__(self) -> str:
        return f"<master {self.name}>"

    @property
    def pages(self) -> str:
        """The root URL of this master's LegacyStatus pages."""
        return f"http://127.0.0.1:{self.legacy_port}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.www_port}/api/v2"

    def create(self) -> None:
        # create-master also creates the schema in the shared database (it
        # runs what upgrade-master does; for the second master it is
        # current already, and nothing changes).
        run([os.path.join(BIN, "buildbot"), "create-master", "--quiet", "--db",
             self.cluster.postgres.url, self.basedir], "buildbot create-master")  # fmt: skip
        self.write_config()

    def write_config(self) -> None:
        """The master's master.cfg, for the builders of C{self.builders}."""
        www = ""
        if self.www:
            www = f'c["www"] = {{"port": "tcp:{self.www_port}:interface=127.0.0.1"}}'
        scheduler = 'schedulers.ForceScheduler(name="force", builderNames=list({!r}))'
        config = MASTER_CFG.format(
            repo=REPO,
            python=sys.executable,
            name=self.name,
            db_url=self.cluster.postgres.url,
            router_url=self.cluster.crossbar.router_url,
            workers=[WORKER_NAME, WORKER_B_NAME] if self.cluster.worker_on_b else [WORKER_NAME],
            builder_workers={
                name: WORKER_B_NAME if name == BUILDER_ON_B else WORKER_NAME
                for name in self.builders
            },
            pb_port=self.pb_port,
            www_port=self.www_port,
            www=www,
            follow=FOLLOW_CONTROL,
            control_dir=self.cluster.control_dir,
            builders=self.builders,
            # Schedulers run on one master: A's, which the tests force through.
            schedulers=f"[{scheduler.format(self.builders)}]" if self.www else "[]",
            services=(
                LEGACY_STATUS.format(
                    events=EVENTS,
                    legacy_port=self.legacy_port,
                    text_head=self.cluster.text_head,
                )
                if self.cluster.legacy_status
                else "[]"
            ),
        )
        with open(os.path.join(self.basedir, "master.cfg"), "w", encoding="utf-8") as f:
            f.write(config)

    def start(self) -> None:
        """C{buildbot start}, then wait until its receivers hear the message queue."""
        before = self.pid()
        assert before is None, f"{self} runs already (pid {before})"
        try:
            run(
                [os.path.join(BIN, "buildbot"), "start", self.basedir],
                f"buildbot start {self.name}",
                env={**os.environ, "START_TIMEOUT": str(START_TIMEOUT)},
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\ntwistd.log:\n{self.log_tail()}") from e
        pid = wait_for(self.pid, f"{self}'s twistd.pid")
        try:
            if self.cluster.legacy_status:
                wait_for(
                    lambda: any(
                        e["event"] == "mqReady" and e.get("pid") == pid for e in self.events()
                    ),
                    f"{self}'s receivers to be subscribed to the message queue",
                )
            else:
                wait_for(self.active, f"{self} to be active in the database")
        except AssertionError as e:
            raise AssertionError(f"{e}\ntwistd.log:\n{self.log_tail()}") from e

    def active(self) -> bool:
        """Whether the database lists this master as active (it has started)."""
        rows = self.cluster.query(
            "SELECT active FROM masters WHERE name LIKE %s", "%" + self.basedir
        )
        return bool(rows and rows[0][0])

    def reconfig(self, builders: list[str]) -> None:
        """Blocking: run C{builders} from now on (C{buildbot reconfig})."""
        self.builders = list(builders)
        self.write_config()
        run(
            [os.path.join(BIN, "buildbot"), "reconfig", self.basedir],
            f"buildbot reconfig {self.name}",
        )

    def log_tail(self, lines: int = 60) -> str:
        return tail(os.path.join(self.basedir, "twistd.log"), lines)

    def events_size(self) -> int:
        """Where the events file ends now: pass it to L{events} as C{since}."""
        try:
            return os.path.getsize(self.events_path)
        except OSError:
            return 0

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """The events this master's receiver wrote (from byte C{since} on), whole lines only."""
        try:
            with open(self.events_path, "rb") as f:
                f.seek(since)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        return [json.loads(line) for line in data[:end].splitlines()]


class Worker(Daemon):
    """A worker of the cluster, a real buildbot-worker process connected to one master."""

    def __init__(self, cluster: Cluster, master: Master, name: str, basedir: str) -> None:
        self.cluster = cluster
        self.master = master
        self.name = name
        self.basedir = os.path.join(cluster.basedir, basedir)

    def __repr__(self) -> str:
        return f"<worker {self.name}>"

    def create(self) -> None:
        run([os.path.join(BIN, "buildbot-worker"), "create-worker", "--quiet", self.basedir,
             f"127.0.0.1:{self.master.pb_port}", self.name, "pass"],
            "buildbot-worker create-worker")  # fmt: skip
        # The worker sends output once it has 64 KiB or after 5 s: send it
        # at once, so that a live log is live.
        with open(os.path.join(self.basedir, "buildbot.tac"), "a", encoding="utf-8") as f:
            f.write("\ns.bot.buffer_timeout = 0.01\n")

    def start(self) -> None:
        run([os.path.join(BIN, "buildbot-worker"), "start", "--quiet", self.basedir],
            "buildbot-worker start")  # fmt: skip
        wait_for(self.pid, f"{self}'s twistd.pid")


class ControlFile:
    """The test's end of a build's C{live} step (see L{FOLLOW_CONTROL})."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stdout = ""
        self.stderr = ""

    def _command(self, *command: Any) -> None:
        with open(self.path, "ab") as f:
            f.write(json.dumps(list(command)).encode() + b"\n")

    def write(self, stdout: str = "", stderr: str = "") -> None:
        """Have the step write C{stdout}, then C{stderr} (whole lines, please)."""
        if stdout:
            self._command("o", stdout)
            self.stdout += stdout
        if stderr:
            self._command("e", stderr)
            self.stderr += stderr

    def end(self, rc: int = 0) -> None:
        """Let the step end with exit code C{rc}."""
        self._command("end", rc)


class Build:
    """A build that the test forced: where it is in the database, and its control file."""

    def __init__(self, cluster: Cluster, builder: str, number: int, buildid: int) -> None:
        self.cluster = cluster
        self.builder = builder
        self.number = number
        self.buildid = buildid
        self.control = ControlFile(os.path.join(cluster.control_dir, f"{builder}-{number}"))

    def __repr__(self) -> str:
        return f"<build {self.builder} #{self.number}>"

    def path(self, step: str = "live", log: str = "stdio") -> str:
        """The path of a log's pages."""
        return f"/builders/{self.builder}/builds/{self.number}/steps/{step}/logs/{log}"


class Cluster:
    """
    PostgreSQL, crossbar, masters A and B, and a worker on A: see the
    module's docstring.  With C{worker_on_b}, a second worker, on B, runs
    the builds of L{BUILDER_ON_B}.
    """

    def __init__(
        self, legacy_status: bool = True, text_head: int | None = None, worker_on_b: bool = False
    ) -> None:
        # Without LegacyStatus (for the benchmark's anchor) the masters run
        # neither the bridge nor a receiver: nothing records events.
        self.legacy_status = legacy_status
        # The receivers record this much of each logChunk's text (all if None).
        self.text_head = text_head
        self.basedir = tempfile.mkdtemp(prefix="buildbot-cluster-")
        # The postgres user must reach its data directory.
        os.chmod(self.basedir, 0o711)
        self.control_dir = os.path.join(self.basedir, "control")
        self.worker_on_b = worker_on_b
        ports = free_ports(8)
        self.postgres = Postgres(os.path.join(self.basedir, "postgres"), ports[0])
        self.crossbar = Crossbar(os.path.join(self.basedir, "crossbar"), ports[1])
        self.a = Master(self, "A", ports[2:5], www=True)
        self.b = Master(self, "B", ports[5:8], www=False)
        self.worker = Worker(self, self.a, WORKER_NAME, "worker")
        self.workers = [self.worker]
        if worker_on_b:
            self.workers.append(Worker(self, self.b, WORKER_B_NAME, "worker-b"))
        self._db: Any = None
        self._stopped = False

    def start(self) -> None:
        """Start everything; on failure, stop what started and raise."""
        atexit.register(self.stop)
        try:
            os.makedirs(self.control_dir)
            self.postgres.start()
            self.crossbar.start()
            self.a.create()
            self.b.create()
            self.a.start()
            self.b.start()
            for worker in self.workers:
                worker.create()
                worker.start()
            for worker in self.workers:
                wait_for(
                    lambda worker=worker: self.worker_connected(worker),
                    f"{worker} to connect to {worker.master}",
                )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process started, then remove the files (unless KEEP_CLUSTER is set)."""
        if self._stopped:
            return
        self._stopped = True
        errors = []
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None
        # A before its worker: it interrupts its builds, which needs the worker.
        for part in (self.b, self.a, *self.workers, self.crossbar, self.postgres):
            try:
                part.stop()
            except Exception as e:
                errors.append(f"{part}: {e}")
        with contextlib.suppress(ValueError):
            atexit.unregister(self.stop)
        if os.environ.get("KEEP_CLUSTER"):
            print(f"cluster files kept in {self.basedir}", file=sys.stderr)
        else:
            shutil.rmtree(self.basedir, ignore_errors=True)
        if errors:
            raise AssertionError("stopping the cluster: " + "; ".join(errors))

    def check_running(self) -> None:
        """Fail, with their logs, if a part of the cluster died."""
        for master in (self.a, self.b):
            if not master.running:
                raise AssertionError(f"{master} is not running:\n{master.log_tail()}")
        for worker in self.workers:
            if not worker.running:
                raise AssertionError(f"{worker} is not running")
        process = self.crossbar.process
        if process is None or process.poll() is not None:
            raise AssertionError(f"crossbar is not running:\n{tail(self.crossbar.logfile)}")

    # The database

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a query against the cluster's database, each in a transaction of its own."""
        if self._db is None:
            self._db = self.postgres.connect()
            self._db.autocommit = True
        cursor = self._db.cursor()
        cursor.execute(sql, args)
        return cursor.fetchall()

    def worker_connected(self, worker: Worker | None = None) -> bool:
        """Whether C{worker} (A's, by default) is connected to its master."""
        worker = worker or self.worker
        return bool(
            self.query(
                "SELECT 1 FROM connected_workers cw JOIN workers w ON w.id = cw.workerid"
                " JOIN masters m ON m.id = cw.masterid WHERE w.name = %s AND m.name LIKE %s",
                worker.name,
                "%" + worker.master.basedir,
            )
        )

    def run_by(self, build: Build) -> tuple[Master, str]:
        """The master that ran C{build}, and its worker's name, as the database has them."""
        ((master, worker),) = self.query(
            "SELECT m.name, w.name FROM builds b JOIN masters m ON m.id = b.masterid"
            " JOIN workers w ON w.id = b.workerid WHERE b.id = %s",
            build.buildid,
        )
        # A master's name in the database is "<host>:<basedir>".
        (ran,) = [m for m in (self.a, self.b) if master.endswith(":" + m.basedir)]
        return ran, worker

    def log_row(self, build: Build, step: str, log: str) -> tuple[int, str, int, bool] | None:
        """C{(logid, type, num_lines, complete)} of a log, or None if it does not exist yet."""
        rows = self.query(
            "SELECT l.id, l.type, l.num_lines, l.complete FROM logs l"
            " JOIN steps s ON s.id = l.stepid WHERE s.buildid = %s AND s.name = %s"
            " AND l.name = %s",
            build.buildid,
            step,
            log,
        )
        if not rows:
            return None
        logid, logtype, num_lines, complete = rows[0]
        return logid, logtype, num_lines, bool(complete)

    def db_content(self, build: Build, step: str = "live", log: str = "stdio") -> str:
        """A log's lines as the database holds them (each with its stream letter, if any)."""
        from buildbot.db.logs import LogsConnectorComponent

        found = self.log_row(build, step, log)
        if found is None:
            return ""
        logid = found[0]
        rows = self.query(
            "SELECT first_line, last_line, content, compressed FROM logchunks"
            " WHERE logid = %s ORDER BY first_line",
            logid,
        )
        parts = []
        lines = 0
        for first_line, last_line, content, compressed in rows:
            assert first_line == lines, f"log {logid}: a chunk at line {first_line}, not {lines}"
            compressor = LogsConnectorComponent.COMPRESSION_BYID[compressed]
            parts.append(compressor.read(bytes(content)).decode("utf-8") + "\n")
            lines = last_line + 1
        return "".join(parts)

    def db_chunks(self, build: Build, step: str = "live", log: str = "stdio") -> list[Any]:
        """A log's merged C{(channel, text)} chunks, as the database holds them."""
        found = self.log_row(build, step, log)
        if found is None:
            return []
        return db_chunks(found[1], self.db_content(build, step, log))

    def db_text(self, build: Build, step: str = "live", log: str = "stdio") -> str:
        """A stream log's stdout and stderr, as the database holds them."""
        return db_text(self.db_content(build, step, log))

    def build_complete(self, build: Build) -> bool:
        rows = self.query("SELECT complete_at FROM builds WHERE id = %s", build.buildid)
        return bool(rows and rows[0][0])

    # Builds

    def force(self, builder: str) -> Build:
        """Force a build through master A's REST API; the build, once it exists."""
        (builderid,) = self.query("SELECT id FROM builders WHERE name = %s", builder)[0]
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "force",
                "id": 1,
                "params": {"builderid": str(builderid), "reason": f"cluster test {builder}"},
            }
        ).encode()
        request = urllib.request.Request(
            f"{self.a.api}/forceschedulers/force",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise AssertionError(f"forcing {builder}: {answer['error']}")
        _, brids = answer["result"]
        (brid,) = brids.values()

        def started() -> Any:
            rows = self.query(
                "SELECT number, id FROM builds WHERE buildrequestid = %s ORDER BY id", brid
            )
            return rows[0] if rows else None

        number, buildid = wait_for(started, f"the build of request {brid} to start", 60)
        return Build(self, builder, number, buildid)
