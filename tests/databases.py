"""
Throwaway database servers of the kinds Buildbot's multi-master mode
shares: PostgreSQL (Debian's C{postgresql}) and MariaDB (Debian's
C{mariadb-server}, Buildbot's C{mysql} dialect).  Each runs on a free
loopback port with all its files under a directory of the test's, as its
own system user when the tests run as root, without authentication (as a
throwaway server on loopback may), and is stopped with everything in it.

Both offer the same surface: C{start}, C{stop}, C{url} (the SQLAlchemy URL
Buildbot is given), C{create_database} and C{connect} (a DB-API
connection in autocommit, whose queries see what is committed when they
run: MariaDB's default isolation would otherwise show a connection the
database as it was at its first read).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
from typing import Any, ClassVar

from twisted.trial import unittest

from tests.processes import free_ports, process_alive, process_gone, run, tail, wait_for
from tests.support import cannot_run


def _owned_by(path: str, user: str) -> None:
    """When run as root: C{path} made over to C{user}, whom the server runs as."""
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _missing_user(user: str, package: str) -> str | None:
    """Why a server that must run as C{user} when the tests run as root cannot, or None."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        return f"needs the {user} user (apt-get install {package})"
    return None


def _missing_module(module: str, package: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"needs {package} (pip install -e '.[test]')"
    return None


class Postgres:
    """A throwaway PostgreSQL cluster on a free port, as the postgres user when run as root."""

    kind = "PostgreSQL"
    user = "postgres"

    def __init__(self, basedir: str, port: int) -> None:
        self.basedir = basedir
        self.datadir = os.path.join(basedir, "data")
        self.logfile = os.path.join(basedir, "postgres.log")
        self.port = port
        self.bindir = self.binaries() or ""
        self.started = False
        self.database = "buildbot"

    @staticmethod
    def binaries() -> str | None:
        """Debian's PostgreSQL binaries (the newest version installed), or those on PATH."""
        found = sorted(
            glob.glob("/usr/lib/postgresql/*/bin/initdb"),
            key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()],
        )
        if found:
            return os.path.dirname(found[-1])
        initdb = shutil.which("initdb")
        return os.path.dirname(initdb) if initdb else None

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this server cannot run here, or None."""
        if cls.binaries() is None:
            return "needs PostgreSQL's server binaries (apt-get install postgresql)"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "needs runuser (util-linux) to run PostgreSQL as its own user"
        return _missing_user(cls.user, "postgresql") or _missing_module(
            "psycopg2", "psycopg2-binary"
        )

    def url_of(self, database: str) -> str:
        """The SQLAlchemy URL of C{database}, for Buildbot."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_of(self.database)

    def client_url(self, client: str) -> str:
        """
        The URL for a client of the cluster's database whose connections
        are to be told apart: here the same for all (C{pg_stat_activity}
        tells them apart by their ports).
        """
        return self.url

    def _as_postgres(self, program: str, *args: str) -> list[str]:
        command = [os.path.join(self.bindir, program), *args]
        if os.geteuid() == 0:
            return ["runuser", "-u", self.user, "--", *command]
        return command

    def start(self) -> None:
        os.makedirs(self.basedir)
        _owned_by(self.basedir, self.user)
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
        self.create_database(self.database)

    def create_database(self, name: str) -> None:
        with contextlib.closing(self.connect("postgres")) as conn:
            conn.cursor().execute(f"CREATE DATABASE {name}")

    def connect(self, database: str | None = None) -> Any:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database or self.database
        )
        conn.autocommit = True
        return conn

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
            pid = self.postmaster_pid()
            if pid is not None and process_alive(pid):
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: process_gone(pid), "the postmaster to die", 30)

    def postmaster_pid(self) -> int | None:
        """The server's process id while it runs (its backends are its children)."""
        try:
            with open(os.path.join(self.datadir, "postmaster.pid"), encoding="ascii") as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None


class MariaDB:
    """
    A throwaway MariaDB server on a free port, as the mysql user when run
    as root.  Buildbot reaches it through PyMySQL, with InnoDB tables (its
    own default is MyISAM, which has no transactions).
    """

    kind = "MariaDB"
    user = "mysql"

    def __init__(self, basedir: str, port: int) -> None:
        self.basedir = basedir
        self.datadir = os.path.join(basedir, "data")
        self.logfile = os.path.join(basedir, "mariadb.log")
        self.socket = os.path.join(basedir, "mariadb.sock")
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.database = "buildbot"

    @staticmethod
    def binaries() -> tuple[str, str] | None:
        """The server and its data directory's installer, or None."""
        server = shutil.which("mariadbd") or (
            "/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None
        )
        installer = shutil.which("mariadb-install-db")
        return (server, installer) if server and installer else None

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this server cannot run here, or None."""
        if cls.binaries() is None:
            return "needs MariaDB's server (apt-get install mariadb-server)"
        return _missing_user(cls.user, "mariadb-server") or _missing_module("pymysql", "pymysql")

    def url_of(self, database: str, user: str = "root") -> str:
        """The SQLAlchemy URL of C{database}, for Buildbot."""
        return f"mysql+pymysql://{user}@127.0.0.1:{self.port}/{database}?storage_engine=InnoDB"

    @property
    def url(self) -> str:
        return self.url_of(self.database)

    def client_url(self, client: str) -> str:
        """
        The URL for a client of the cluster's database whose connections
        are to be told apart: as a user of its own, C{client}, which the
        process list shows (with the grant tables skipped, any name goes
        in, and the list shows no client's host or port).
        """
        return self.url_of(self.database, user=client)

    def _as_user(self) -> list[str]:
        return [f"--user={self.user}"] if os.geteuid() == 0 else []

    def start(self) -> None:
        found = self.binaries()
        assert found is not None, self.unavailable()
        server, installer = found
        os.makedirs(self.basedir)
        _owned_by(self.basedir, self.user)
        run(
            [installer, "--no-defaults", f"--datadir={self.datadir}", "--skip-test-db",
             "--auth-root-authentication-method=normal", *self._as_user()],
            "mariadb-install-db",
        )  # fmt: skip
        with open(self.logfile, "wb") as log:
            self.process = subprocess.Popen(
                [
                    server, "--no-defaults", f"--datadir={self.datadir}", *self._as_user(),
                    f"--port={self.port}", "--bind-address=127.0.0.1",
                    f"--socket={self.socket}", f"--pid-file={self.basedir}/mariadb.pid",
                    f"--log-error={self.logfile}",
                    # No users to check: a throwaway server on loopback.
                    "--skip-grant-tables",
                    "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0",
                    "--innodb-doublewrite=0", "--character-set-server=utf8mb4",
                    "--max-connections=200",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_for(self._accepts, f"MariaDB to accept connections on port {self.port}")
        self.create_database(self.database)

    def _accepts(self) -> bool:
        import pymysql

        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"MariaDB exited ({self.process.returncode}):\n{tail(self.logfile)}"
            )
        try:
            self._connect(None, through_socket=True).close()
        except pymysql.err.OperationalError:
            return False
        return True

    def create_database(self, name: str) -> None:
        with contextlib.closing(self._connect(None, through_socket=True)) as conn:
            conn.cursor().execute(f"CREATE DATABASE {name}")

    def connect(self, database: str | None = None) -> Any:
        return self._connect(database or self.database)

    def _connect(self, database: str | None, through_socket: bool = False) -> Any:
        """
        In autocommit.  C{through_socket}: by the server's own socket file,
        which no other server can hold (its port was free when chosen, but
        another process may have taken it before the server bound it).
        """
        import pymysql

        where: dict[str, Any] = (
            {"unix_socket": self.socket}
            if through_socket
            else {"host": "127.0.0.1", "port": self.port}
        )
        return pymysql.connect(user="root", database=database, autocommit=True, **where)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)


class DatabaseTestCase(unittest.TestCase):
    """
    A test case whose tests share one throwaway server of C{server_class}
    (C{server}), started before the first of them; L{fresh_database}
    gives a test a database of its own.  L{setUp} fails without a server
    under CI, and skips the test elsewhere.  (pytest calls C{setUpClass};
    trial's own runner does not, and then there is none.)
    """

    server_class: ClassVar[type[Postgres] | type[MariaDB]]
    server: Postgres | MariaDB | None = None
    _server_dir: str | None = None
    _databases = 0

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        if cls.server_class.unavailable() is None:
            cls._server_dir = tempfile.mkdtemp()
            os.chmod(cls._server_dir, 0o755)  # for the server's user, when run as root
            cls.server = cls.server_class(os.path.join(cls._server_dir, "db"), free_ports(1)[0])
            try:
                cls.server.start()
            except BaseException:
                cls.tearDownClass()
                raise

    @classmethod
    def tearDownClass(cls) -> None:
        server, cls.server = cls.server, None
        if server is not None:
            server.stop()
        basedir, cls._server_dir = cls._server_dir, None
        if basedir is not None:
            shutil.rmtree(basedir, ignore_errors=True)
        super().tearDownClass()

    def setUp(self) -> Any:
        if self.server is None:
            cannot_run(
                self,
                f"{self.server_class.kind} tests need {self.server_class.unavailable()}",
            )
        return super().setUp()

    def fresh_database(self) -> str:
        """The URL of a new, empty database on the server, for this test alone."""
        assert self.server is not None
        type(self)._databases += 1
        name = f"test{type(self)._databases}"
        self.server.create_database(name)
        return self.server.url_of(name)


class PostgresTestCase(DatabaseTestCase):
    server_class = Postgres


class MariaDBTestCase(DatabaseTestCase):
    server_class = MariaDB
