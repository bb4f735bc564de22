"""
The C{buildbot-logfile} command.

C{buildbot-logfile import-08 [--dry-run] [--builder NAME]... OLD_BASEDIR
MASTER_BASEDIR} imports an 0.7/0.8 master's build history into a
Buildbot 4 master's database.  The database is the one the master's
C{master.cfg} names, found as C{buildbot upgrade-master} finds it (the
C{.tac} file's config file, Buildbot's config loader and DB connector),
so URLs with secrets and every database Buildbot supports work alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer, task
from twisted.logger import globalLogBeginner

from buildbot_logfile._import08 import Importer, database_said, reporter_for
from buildbot_logfile._import08_db import Database
from buildbot_logfile._import08_history import builder_folders


class SetupError(Exception):
    """The master's directory, config or database cannot be used."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="buildbot-logfile")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    imp = commands.add_parser(
        "import-08",
        help="import an 0.7/0.8 master's build history into a Buildbot 4 master's database",
        description="Import the pickled builds and log files of an 0.7/0.8 master into the "
        "database of a Buildbot 4 master (best while that master is stopped).  Builds keep "
        "their numbers; builds imported before are skipped.",
    )
    imp.add_argument(
        "--dry-run", action="store_true", help="read everything, write nothing, print the summary"
    )
    imp.add_argument(
        "--builder",
        action="append",
        default=[],
        metavar="NAME",
        help="import only this builder (repeat for more)",
    )
    imp.add_argument("old_basedir", metavar="OLD_BASEDIR", help="the 0.7/0.8 master's directory")
    imp.add_argument(
        "master_basedir", metavar="MASTER_BASEDIR", help="the Buildbot 4 master's directory"
    )
    return parser


async def _open_database(basedir: str) -> tuple[Any, Any]:
    """The master's config and a set-up DB connector, as upgrade-master makes them."""
    from buildbot.config.errors import ConfigErrors
    from buildbot.config.master import FileLoader
    from buildbot.db.connector import DBConnector
    from buildbot.db.exceptions import DatabaseNotReadyError
    from buildbot.master import BuildMaster
    from buildbot.scripts import base
    from sqlalchemy.exc import SQLAlchemyError

    if not base.isBuildmasterDir(basedir):
        raise SetupError(f"{basedir} is not a Buildbot master's directory")
    cwd = os.getcwd()
    os.chdir(basedir)  # master.cfg may open files relative to its directory
    try:
        try:
            # Running the .tac opens the master's twistd.log, for one.
            config_file = base.getConfigFileFromTac(basedir, quiet=True)
        except Exception as e:
            tac = os.path.join(basedir, "buildbot.tac")
            raise SetupError(f"{tac} cannot be run ({type(e).__name__}: {e})") from e
        master_cfg = FileLoader(basedir, config_file).loadConfig()
    except ConfigErrors as e:
        errors = "".join(f"\n  {error}" for error in e.errors)
        raise SetupError(f"errors in {os.path.join(basedir, config_file)}:{errors}") from e
    finally:
        # Every path is absolute by now: a directory its user cannot go
        # back to (one left by sudo) is no reason to stop.
        with contextlib.suppress(OSError):
            os.chdir(cwd)
    # Buildbot 4.2 keeps a dict, 4.3 a DBConfig (whose URL may be rendered from secrets).
    db_config = master_cfg.db
    url = db_config["db_url"] if isinstance(db_config, dict) else db_config.db_url
    sqlite = _sqlite_file(basedir, url) if isinstance(url, str) else None
    if sqlite is not None and not os.path.exists(sqlite):
        # Opening it would leave an empty database behind.
        raise SetupError(
            f"the database of {basedir} ({sqlite}) does not exist;"
            f" run 'buildbot upgrade-master {basedir}' first"
        )
    master = BuildMaster(basedir)
    master.config = master_cfg
    db = DBConnector(basedir=basedir)
    await db.set_master(master)
    await master.secrets_manager.setup()
    try:
        await db.setup(check_version=True, verbose=False)
    except Exception as e:
        if db.pool is not None:
            await db.pool.stop()
        if isinstance(e, DatabaseNotReadyError):
            raise SetupError(
                f"the database of {basedir} is not ready (not at this Buildbot's schema); "
                f"run 'buildbot upgrade-master {basedir}' first"
            ) from e
        said = database_said(e) if isinstance(e, SQLAlchemyError) else f"{type(e).__name__}: {e}"
        # (An SQLite file in a directory the user may not write, say.)
        raise SetupError(f"the database of {basedir} cannot be opened ({said})") from e
    return master_cfg, db


def _sqlite_file(basedir: str, url: str) -> str | None:
    """The file of an SQLite database URL (relative to the master's basedir), if it is one."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    return os.path.join(basedir, path) if path else None


async def _import(args: argparse.Namespace) -> int:
    old = os.path.abspath(args.old_basedir)
    if not os.path.isdir(old):
        raise SetupError(f"{args.old_basedir}: no such directory")
    unlisted: list[tuple[str, str]] = []
    histories = builder_folders(old, unlisted)
    if not histories:
        hint = (
            "it is one builder's folder: give the master's basedir, its parent"
            if os.path.isfile(os.path.join(old, "builder"))
            else "is it the 0.8 master's basedir?"
        )
        raise SetupError(
            f"{args.old_basedir}: no 0.8 builder's history in it (a folder with a 'builder'"
            f" pickle or build pickles); {hint}"
        )
    master_cfg, db = await _open_database(os.path.abspath(args.master_basedir))
    try:
        importer = Importer(
            Database(db.pool.engine, db.model),
            master_cfg.logCompressionMethod,
            reporter_for(),
            dry_run=args.dry_run,
        )
        summary = importer.run(old, histories, args.builder, unlisted)
    finally:
        await db.pool.stop()
    return 1 if summary.problems or summary.stopped else 0


def main(argv: Sequence[str] | None = None) -> None:
    """
    The console script: exit 0 when all went in, 1 after problems or when
    stopped midway, 2 when it cannot start or fails.
    """
    args = _parser().parse_args(argv)
    # What Buildbot logs as the database is opened (a failure's traceback)
    # is said in one line by SetupError; the import reports the rest itself.
    globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)

    async def run(_: Any) -> None:
        try:
            code = await _import(args)
        except SetupError as e:
            print(f"buildbot-logfile: {e}", file=sys.stderr)
            code = 2
        except Exception:
            # Nothing observes Twisted's log (see above): a failure of the
            # import's own is printed here, whole.
            traceback.print_exc()
            code = 2
        if code:
            raise SystemExit(code)  # task.react exits with it

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
