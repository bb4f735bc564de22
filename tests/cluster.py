"""
A real Buildbot cluster for the multi-master tests: a throwaway database
server (PostgreSQL, or MariaDB: see L{tests.databases}), a crossbar WAMP
router, two masters (A and B) started with C{buildbot start} in processes
of their own, sharing the database and the message queue, and one real
worker, connected to master A only (and, for the tests of builds on both
masters, a second one on master B).

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
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task

import buildbot_logfile  # noqa: F401  (0.8 import paths, which tests.masters uses)
from tests.databases import MariaDB, Postgres
from tests.masters import db_chunks, db_text
from tests.processes import (
    START_TIMEOUT,
    free_ports,
    process_alive,
    process_gone,
    run,
    tail,
    wait_for,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(os.path.abspath(sys.executable))
WORKER_NAME = "w1"
BUILDERS = ("b1", "b2")
# A cluster made with a worker on B (C{worker_on_b=True}): its name, and
# the one builder it serves, which only B can run.
WORKER_B_NAME = "w2"
BUILDER_ON_B = "b3"
EVENTS = "events.jsonl"
# How long the harness waits for an event before it fails.
EVENT_TIMEOUT = 30.0
# The databases a cluster can share, by the name Cluster takes.
DATABASES: dict[str, type[Postgres] | type[MariaDB]] = {
    "postgresql": Postgres,
    "mariadb": MariaDB,
}

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


def unavailable(database: str = "postgresql") -> str | None:
    """Why a cluster on C{database} (see L{DATABASES}) cannot run here, or None."""
    why = DATABASES[database].unavailable()
    if why is not None:
        return why
    if importlib.util.find_spec("crossbar") is None:  # for its own process
        return "needs crossbar (pip install -e '.[test]')"
    for program in ("crossbar", "buildbot", "buildbot-worker"):
        if not os.path.exists(os.path.join(BIN, program)):
            return f"needs {program} in {BIN}"
    return None


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


# The parts


def _client_ports(pid: int, server_port: int) -> set[int]:
    """The local ports of process C{pid}'s TCP connections to C{server_port} on 127.0.0.1."""
    inodes = set()
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        with contextlib.suppress(OSError):
            target = os.readlink(os.path.join(fds, fd))
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)  # the header
        for row in table:
            fields = row.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.split(":")[1], 16) == server_port:
                ports.add(int(local.split(":")[1], 16))
    return ports


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
        # Its name as a user of a MariaDB database (see cut_connections).
        self.db_user = f"master_{name.lower()}"
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
             self.cluster.database.url, self.basedir], "buildbot create-master")  # fmt: skip
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
            db_url=self.cluster.database.client_url(self.db_user),
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
    A database (C{database}, a key of L{DATABASES}), crossbar, masters A
    and B, and a worker on A: see the module's docstring.  With
    C{worker_on_b}, a second worker, on B, runs the builds of
    L{BUILDER_ON_B}.
    """

    def __init__(
        self,
        legacy_status: bool = True,
        text_head: int | None = None,
        worker_on_b: bool = False,
        database: str = "postgresql",
    ) -> None:
        # Without LegacyStatus (for the benchmark's anchor) the masters run
        # neither the bridge nor a receiver: nothing records events.
        self.legacy_status = legacy_status
        # The receivers record this much of each logChunk's text (all if None).
        self.text_head = text_head
        self.basedir = tempfile.mkdtemp(prefix="buildbot-cluster-")
        # The database's user must reach its data directory.
        os.chmod(self.basedir, 0o711)
        self.control_dir = os.path.join(self.basedir, "control")
        self.worker_on_b = worker_on_b
        ports = free_ports(8)
        self.database = DATABASES[database](os.path.join(self.basedir, "database"), ports[0])
        self.crossbar = Crossbar(os.path.join(self.basedir, "crossbar"), ports[1])
        self.a = Master(self, "A", ports[2:5], www=True)
        self.b = Master(self, "B", ports[5:8], www=False)
        self.worker = Worker(self, self.a, WORKER_NAME, "worker")
        self.workers = [self.worker]
        if worker_on_b:
            self.workers.append(Worker(self, self.b, WORKER_B_NAME, "worker-b"))
        self._db: Any = None
        self._db_lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Start everything; on failure, stop what started and raise."""
        atexit.register(self.stop)
        try:
            os.makedirs(self.control_dir)
            self.database.start()
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
        for part in (self.b, self.a, *self.workers, self.crossbar, self.database):
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
        # Asked from the reactor's thread and from others (deferToThread):
        # a PyMySQL connection serves one at a time.
        with self._db_lock:
            if self._db is None:
                self._db = self.database.connect()
            cursor = self._db.cursor()
            cursor.execute(sql, args)
            return list(cursor.fetchall())

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

    def cut_connections(self, master: Master) -> int:
        """
        End every connection C{master} has to the database server, on the
        server's side, as a restart of the server does: each fails its next
        statement.  How many were ended.
        """
        if isinstance(self.database, Postgres):
            pid = master.pid()
            assert pid is not None, f"{master} is not running"
            ports = sorted(_client_ports(pid, self.database.port))
            if not ports:
                return 0
            rows = self.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE client_port = ANY(%s)",
                ports,
            )
            return sum(1 for (ended,) in rows if ended)
        rows = self.query(
            "SELECT id FROM information_schema.PROCESSLIST WHERE USER = %s", master.db_user
        )
        for (connection,) in rows:
            # One that ended by itself since it was listed is as good as ended.
            with contextlib.suppress(Exception):
                self.query(f"KILL CONNECTION {int(connection)}")
        return len(rows)

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
