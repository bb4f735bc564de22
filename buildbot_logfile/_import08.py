"""
C{buildbot-logfile import-08}: an 0.8 master's build history into a
Buildbot 4 master's database.

L{Importer} walks the old master's builder folders, decides per builder
whether its builds may go in (numbers held by builds it did not import
refuse the builder), and imports each build in one transaction: the build,
its steps, and its logs streamed from the 0.8 files chunk by chunk.  Broken
input is reported and skipped, or imported as far as it reads; the run
goes on and ends with a L{Summary}.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

import sqlalchemy as sa
from buildbot.process.results import EXCEPTION
from buildbot.util import identifiers

from buildbot_logfile._import08_db import Database, fit_columns, unique_names
from buildbot_logfile._import08_history import (
    Build08,
    HistoryError,
    Log08,
    builder_name,
    read_build,
)
from buildbot_logfile._import08_logs import (
    STREAM_OF_CHANNEL,
    ChunkPacker,
    LogFileChunks,
    LogReadError,
    LogUnreadable,
    PlainLines,
    StreamLines,
    discard,
    find_log_file,
)
from buildbot_logfile.logfile import STDERR, STDOUT

# Buildbot's builds.number is an INTEGER: 32 bits on PostgreSQL and MySQL.
MAX_BUILD_NUMBER = 2**31 - 1


@dataclass
class Summary:
    builders: int = 0
    refused_builders: list[str] = field(default_factory=list)
    imported: int = 0
    skipped: int = 0
    refused: int = 0
    unreadable: int = 0
    logs: int = 0
    text_bytes: int = 0
    problems: int = 0
    # Why the run stopped before its end, if it did.
    stopped: str | None = None

    def lines(self, dry_run: bool) -> list[str]:
        verb = "would be imported" if dry_run else "imported"
        refused = f" ({', '.join(self.refused_builders)} refused)" if self.refused_builders else ""
        out = [
            "import-08 summary" + (" (dry run: nothing written)" if dry_run else ""),
            f"  builders: {self.builders}{refused}",
            f"  builds: {self.imported} {verb}, {self.skipped} skipped (already imported), "
            f"{self.refused} refused, {self.unreadable} unreadable",
            f"  logs: {self.logs} {verb}, {self.text_bytes} bytes of log text",
            f"  problems: {self.problems}",
        ]
        if self.stopped:
            out.append(
                f"  stopped: {self.stopped}; the builds imported stay, and a later run"
                " imports the rest"
            )
        elif (
            not (self.imported or self.refused or self.unreadable) and self.skipped and not dry_run
        ):
            out.append("  nothing imported: every build found is already in the database")
        return out


class Reporter:
    """Problems and the summary on C{out}; the progress bar on a terminal only."""

    def __init__(self, out: TextIO, bar: TextIO | None) -> None:
        self.out = out
        self.bar = bar
        self.total = 0
        self.done = 0
        self.text_bytes = 0
        self._shown = 0.0
        self._bar_drawn = False

    def say(self, line: str) -> None:
        self._clear()
        # A file name that is not UTF-8 (Python holds its bytes as lone
        # surrogates) is shown with those bytes escaped: "caf\\xe9_build".
        shown = line.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        print(shown, file=self.out, flush=True)

    def progress(self, *, done: int = 0, text_bytes: int = 0, force: bool = False) -> None:
        self.done += done
        self.text_bytes += text_bytes
        now = time.monotonic()
        if self.bar is None or (not force and now - self._shown < 0.1):
            return
        self._shown = now
        width = 30
        filled = width * self.done // self.total if self.total else width
        self.bar.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] builds {self.done}/{self.total}, "
            f"{self.text_bytes / 1e6:.1f} MB of log text "
        )
        self.bar.flush()
        self._bar_drawn = True

    def _clear(self) -> None:
        if self.bar is not None and self._bar_drawn:
            self.bar.write("\r\033[K")
            self.bar.flush()
            self._bar_drawn = False


class ImportStopped(Exception):
    """Why the run stops before its end: the builds imported so far stay."""


class DatabaseRefused(ImportStopped):
    """The database failed: it is read-only, full, locked or away."""


class Importer:
    """
    One run.  C{db} is the master's database; with C{dry_run} it is only
    read, and logs are read through to their end but not written.
    """

    def __init__(
        self, db: Database, compression: str, reporter: Reporter, *, dry_run: bool = False
    ) -> None:
        self.db = db
        self.compression = "raw" if dry_run else compression
        self.reporter = reporter
        self.dry_run = dry_run
        self.summary = Summary()
        self._stop_asked: str | None = None

    def problem(self, what: str, reason: str) -> None:
        self.summary.problems += 1
        self.reporter.say(f"problem: {what}: {reason}")

    def run(
        self,
        old_basedir: str,
        histories: list[tuple[str, list[int]]],
        only: list[str],
        unlisted: list[tuple[str, str]] | None = None,
    ) -> Summary:
        """
        Import C{histories}, the builder folders of C{old_basedir} with
        their build numbers (see L{builder_folders}); only the builders
        named in C{only}, if any.  C{unlisted}: folders that could not be
        looked into, and why.  SIGINT and SIGTERM stop the run once the
        build under way is in.
        """
        handled = (signal.SIGINT, signal.SIGTERM)
        # Only the main thread may set handlers (tests run it elsewhere).
        main = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.signal(sig, self._ask_stop) for sig in handled} if main else {}
        try:
            self._run(old_basedir, histories, only, unlisted or [])
        except ImportStopped as e:
            self.summary.stopped = str(e)
        finally:
            for sig, handler in previous.items():
                # None: a handler not set from Python, which cannot be put back.
                if handler is not None:
                    signal.signal(sig, handler)
        self.reporter.progress(force=True)
        for line in self.summary.lines(self.dry_run):
            self.reporter.say(line)
        return self.summary

    def _ask_stop(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self._stop_asked is None:
            self._stop_asked = f"{name} received"
            return
        # Asked again while a build goes in (a huge log, a locked
        # database): that build is given up, rolled back.
        raise ImportStopped(f"{name} received twice; the build under way was not kept")

    def _run(
        self,
        old_basedir: str,
        histories: list[tuple[str, list[int]]],
        only: list[str],
        unlisted: list[tuple[str, str]],
    ) -> None:
        for path, why in unlisted:
            if os.path.basename(path) == "lost+found":  # a mount point's, root's alone
                self.reporter.say(f"note: {path}: cannot be listed ({why}); not looked into")
            else:
                self.problem(path, f"cannot be listed ({why}); not looked into")
        folders = []
        for folder, numbers in histories:
            name, trouble = builder_name(folder, numbers)
            if trouble:
                self.problem(os.path.join(folder, "builder"), trouble)
            if only and name not in only:
                continue
            folders.append((folder, name, numbers))
        for name in sorted(set(only) - {name for _, name, _ in folders}):
            self.problem(old_basedir, f"no builder named {name!r}")
        self.reporter.total = sum(len(numbers) for _, _, numbers in folders)
        self.reporter.progress(force=True)
        for folder, name, numbers in folders:
            self.summary.builders += 1
            self._builder(folder, name, numbers)

    def _read(self, folder: str, name: str, number: int) -> Build08 | None:
        path = os.path.join(folder, str(number))
        try:
            return read_build(path, name, number)
        except HistoryError as e:
            self.summary.unreadable += 1
            self.problem(path, f"{e}; build skipped")
            return None

    def _builder(self, folder: str, name: str, numbers: list[int]) -> None:
        def state(conn: sa.engine.Connection) -> tuple[int | None, dict[int, tuple[int, int]]]:
            builderid = self.db.builderid(conn, name, create=False)
            return self.db.import_masterid(conn, create=False), self.db.existing_builds(
                conn, builderid
            )

        try:
            import_master, existing = self.db.read(state)
        except sa.exc.SQLAlchemyError as e:
            raise DatabaseRefused(f"the database failed ({database_said(e)}) at {folder}") from e
        builds: dict[int, Build08 | None] = {}
        taken = []
        for number in numbers:
            if number not in existing:
                continue
            build = builds[number] = self._read(folder, name, number)
            masterid, started_at = existing[number]
            # One this import made, whose pickle is unreadable now, is simply there.
            if masterid != import_master or (
                build is not None and started_at != int(build.started or 0)
            ):
                taken.append(number)
        if taken:
            self.summary.refused_builders.append(name)
            self.summary.refused += len(numbers)
            if import_master is not None and all(existing[n][0] == import_master for n in taken):
                held = (
                    "builds imported from another 0.8 history (one builder's numbers hold"
                    " one history: import only one 0.8 master's builder of that name)"
                )
            else:
                held = (
                    "other builds in the database (import before the master runs its first"
                    " build of this builder)"
                )
            self.problem(
                folder, f"builder {name!r} refused: {_numbers(taken)} already held by {held}"
            )
            self.reporter.progress(done=len(numbers))
            return
        for number in numbers:
            if self._stop_asked is not None:
                raise ImportStopped(self._stop_asked)
            if number in existing:
                self.summary.skipped += 1
                self.reporter.progress(done=1)
                continue
            if number > MAX_BUILD_NUMBER:
                self.summary.unreadable += 1
                self.problem(
                    os.path.join(folder, str(number)),
                    f"a build number over {MAX_BUILD_NUMBER}, the most Buildbot's database"
                    " holds; build skipped",
                )
                self.reporter.progress(done=1)
                continue
            build = self._read(folder, name, number)
            if build is not None:
                self._import(folder, build)
            self.reporter.progress(done=1)

    def _import(self, folder: str, build: Build08) -> None:
        where = os.path.join(folder, str(build.number))
        if build.pickled_number not in (None, build.number):
            self.problem(
                where,
                f"the pickle calls itself build #{build.pickled_number}; imported as"
                f" #{build.number}, its file's number, by which 0.8 found it",
            )
        if build.started is None:
            self.problem(where, "the pickle has no start time; imported as started at 0")
        if build.finished is None or build.results is None:
            # A build the master was running when it stopped: 0.8 showed it
            # as it stood (0.8.9 and later pickled it with the time it was
            # pickled as its end, but no results).  Imported unfinished it,
            # and its running step, would look running forever.
            if build.finished is None:
                times = [build.started or 0] + [
                    t
                    for step in build.steps
                    for t in (step.started, step.finished)
                    if t is not None
                ]
                build.finished = max(times)
            build.results = EXCEPTION
            for step in build.steps:
                if step.started is not None and step.finished is None:
                    step.finished = max(step.started, build.finished)
                    step.results = EXCEPTION
            self.problem(
                where,
                f"the build never finished; imported as finished at {int(build.finished)} "
                f"with results {build.results}",
            )
        cut = fit_columns(build, self.db.m)
        if cut:
            self.problem(where, f"{', '.join(cut)}, as much as Buildbot's column holds")
        self.db.take_replaced()
        try:
            if self.dry_run:
                logs, text_bytes = self._contents(None, folder, build, 0)
            else:
                with self.db.transaction() as conn:
                    masterid = self.db.import_masterid(conn, create=True)
                    builderid = self.db.builderid(conn, build.builder, create=True)
                    assert masterid is not None
                    assert builderid is not None
                    buildid = self.db.add_build(conn, build, builderid, masterid)
                    logs, text_bytes = self._contents(conn, folder, build, buildid)
        except LogUnreadable as e:
            # Not damage: nothing of the build is kept, so that a run once
            # the file can be read imports it whole.
            self.summary.unreadable += 1
            self.problem(e.path, f"{e.reason}; build skipped (a later run imports it)")
            return
        except sa.exc.SQLAlchemyError as e:
            if _database_failed(e):
                # So it would be for every build after this one.
                raise DatabaseRefused(f"the database failed ({database_said(e)}) at {where}") from e
            self.summary.unreadable += 1
            self.problem(where, f"the database refused the build ({database_said(e)})")
            return
        replaced = self.db.take_replaced()
        if replaced:
            self.problem(where, f"{replaced} {self.db.replaced_what}")
        self.summary.imported += 1
        self.summary.logs += logs
        self.summary.text_bytes += text_bytes

    def _contents(
        self, conn: sa.engine.Connection | None, folder: str, build: Build08, buildid: int
    ) -> tuple[int, int]:
        """The build's steps and logs (C{conn} None: a dry run); logs and bytes of text."""
        where = os.path.join(folder, str(build.number))
        logs = text_bytes = 0
        names = unique_names([step.name for step in build.steps])
        for number, (step, step_name) in enumerate(zip(build.steps, names)):
            if step_name != step.name:
                self.problem(
                    where,
                    f"step {step.name!r} stored as {step_name!r} (Buildbot's names are unique"
                    " and of 50 characters at most): old links by its name now answer 404",
                )
                step.name = step_name
            stepid = 0 if conn is None else self.db.add_step(conn, buildid, number, step)
            slugs = unique_names([identifiers.forceIdentifier(50, log.name) for log in step.logs])
            for log, slug in zip(step.logs, slugs):
                written = self._log(conn, folder, stepid, log, slug)
                if written is not None:
                    logs += 1
                    text_bytes += written
        return logs, text_bytes

    def _log(
        self, conn: sa.engine.Connection | None, folder: str, stepid: int, log: Log08, slug: str
    ) -> int | None:
        """Import one log; the bytes of text it held, or None when it is skipped."""
        source = None
        if log.html is None:
            source = self._log_file(folder, log)
            if source is None:
                return None
        logid = 0
        writer = None
        if conn is not None:
            logid = self.db.add_log(conn, stepid, log, slug, "h" if log.is_html else "s")
            writer = self.db.chunk_writer(conn, logid)
        packer = ChunkPacker(self.compression, discard if writer is None else writer)
        if log.is_html:
            plain = PlainLines(packer)
            if log.html is not None:
                plain.add(log.html)
            else:
                assert source is not None
                self._html_file(source, plain)
            plain.finish()
            text_bytes = plain.text_bytes
            self.reporter.progress(text_bytes=text_bytes)
        else:
            assert source is not None
            text_bytes = self._stream(source, StreamLines(packer), log.length)
        if conn is not None and writer is not None:
            writer.flush()
            self.db.set_num_lines(conn, logid, packer.num_lines)
        return text_bytes

    def _log_file(self, folder: str, log: Log08) -> str | None:
        where = f"{folder}: log {log.name!r}"
        name = log.filename
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            self.problem(where, f"log file name {name!r} is not a file of the builder; skipped")
            return None
        found = find_log_file(folder, name)
        for path, note in found.notes:
            self.problem(path, note)
        if found.path is None and not found.notes:
            self.problem(os.path.join(folder, name), "log file missing; log skipped")
        return found.path

    def _html_file(self, path: str, plain: PlainLines) -> None:
        """An HTML log's html from its file: its text, as 0.8's getText read it."""
        try:
            for channel, text in LogFileChunks(path):
                if channel in (STDOUT, STDERR):
                    plain.add(text)
        except LogReadError as e:
            self.problem(path, f"{e}; log imported as far as it reads")

    def _stream(self, path: str, lines: StreamLines, length: int | None) -> int:
        """
        A stream log from its file; C{length}, 0.8's count of the text it
        wrote there, tells a file that lost some (emptied, or cut at a
        record's end, to free space).
        """
        unknown = 0
        reported = 0
        chunks = LogFileChunks(path)
        try:
            for channel, text in chunks:
                if channel not in STREAM_OF_CHANNEL:
                    unknown += 1
                    continue
                lines.add(channel, text)
                if lines.text_bytes - reported >= 1 << 20:
                    self.reporter.progress(text_bytes=lines.text_bytes - reported)
                    reported = lines.text_bytes
        except LogReadError as e:
            self.problem(path, f"{e}; log imported as far as it reads")
        else:
            if length is not None and chunks.text_bytes < length:
                self.problem(
                    path,
                    f"holds {chunks.text_bytes} bytes of text where 0.8 wrote {length}"
                    " (emptied or cut after the build?); log imported as it is",
                )
        lines.finish()
        if unknown:
            self.problem(path, f"{unknown} entries on channels other than 0-2 left out")
        self.reporter.progress(text_bytes=lines.text_bytes - reported)
        return lines.text_bytes


def _database_failed(e: sa.exc.SQLAlchemyError) -> bool:
    """
    Whether the database, not the build, is why a statement failed: it is
    read-only (SQLite, MySQL; PostgreSQL's standby or read-only
    transactions: SQLSTATE 25006), full, locked or away.
    """
    if isinstance(e, sa.exc.OperationalError):
        return True
    return getattr(getattr(e, "orig", None), "pgcode", None) == "25006"


def database_said(e: sa.exc.SQLAlchemyError) -> str:
    """The database's own words, without SQLAlchemy's statement and parameters."""
    said = str(getattr(e, "orig", None) or e).strip().splitlines()
    return f"{type(e).__name__}: {said[0] if said else ''}"


def _numbers(numbers: list[int]) -> str:
    listed = ", ".join(map(str, numbers))
    return f"build number {listed} is" if len(numbers) == 1 else f"build numbers {listed} are"


def reporter_for(out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> Reporter:
    """A progress bar on C{err} when it is a terminal, none otherwise."""
    return Reporter(out, err if err.isatty() else None)
