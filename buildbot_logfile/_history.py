"""
Builds of the database read at once, as 0.8's status answered
(C{BuilderStatus.getBuild(-1)}, C{generateFinishedBuilds}...): 0.8 unpickled
old builds from disk in the reactor; this reads them from the database,
holding the reactor for the few queries one build takes.

The rows become the same values the data API gives (see L{_build_data}),
so a build from history answers as one the bridge followed.  This reads
Buildbot's tables as Buildbot 4.1 to 4.3 lay them out (C{buildbot.db.model}).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import sqlalchemy as sa

from buildbot_logfile import _spool
from buildbot_logfile._build_data import BuildData
from buildbot_logfile._build_status import BuildStatus
from buildbot_logfile._built_changes import StampChanges, built_changes, read_built_changes
from buildbot_logfile._changes import SourceStamp
from buildbot_logfile._mirror import database_entries
from buildbot_logfile._step_status import BuildStepStatus
from buildbot_logfile.logfile import HTMLLogFile, LogFile

if TYPE_CHECKING:
    from buildbot_logfile._builder_status import BuilderStatus
    from buildbot_logfile._logdb import LogReader
    from buildbot_logfile._lookup import Lookup
    from buildbot_logfile._mirror import MirrorRegistry


class History:
    """
    Finds any build of a builder, running or finished, by number (negative:
    from the newest), through the lookups' cache of builds, or else the
    database.
    """

    def __init__(self, reader: LogReader, lookup: Lookup) -> None:
        self.reader = reader
        self.lookup = lookup
        self.model = reader.master.db.model

    def build(self, builder: BuilderStatus, number: int) -> BuildStatus | None:
        """Build C{number} of C{builder} (C{-1} is the newest), or None."""
        if number < 0:
            newest = self.newest_number(builder.builderid)
            if newest is None:
                return None
            number = newest + 1 + number
            if number < 0:
                return None
        build = builder.running_build(number) or self.lookup.cached_build(builder.builderid, number)
        if build is not None:
            return build
        rows = self.reader.blocking(
            lambda conn: _read_build(conn, self.model, builder.builderid, number)
        )
        if rows is None:
            return None
        build = _build_from(builder, rows)
        if build.isFinished():
            self.lookup.remember(build)
        return build

    def newest_number(self, builderid: int, *, finished: bool = False) -> int | None:
        """The number of the builder's newest build (finished one, if so asked)."""
        builds = self.model.builds
        query = sa.select(sa.func.max(builds.c.number)).where(builds.c.builderid == builderid)
        if finished:
            query = query.where(builds.c.complete_at.is_not(None))
        return self.reader.blocking(lambda conn: conn.execute(query).scalar())

    def number_by_revision(self, builderid: int, rev: str) -> int | None:
        """
        The number of the builder's newest build whose C{got_revision} (of
        the unnamed codebase, for a build of several) is C{rev}: one query.
        """
        builds, bp = self.model.builds, self.model.build_properties
        query = (
            sa.select(builds.c.number, bp.c.value)
            .select_from(builds.join(bp, bp.c.buildid == builds.c.id))
            .where(
                builds.c.builderid == builderid,
                bp.c.name == "got_revision",
                bp.c.value.contains(json.dumps(rev), autoescape=True),
            )
            .order_by(builds.c.number.desc())
        )

        def newest(conn: Any) -> int | None:
            for row in conn.execute(query):
                got = json.loads(row.value)
                if (got.get("") if isinstance(got, dict) else got) == rev:
                    return int(row.number)
            return None

        return self.reader.blocking(newest)

    def numbers_down_from(self, builderid: int, first: int, count: int) -> list[int]:
        """Up to C{count} numbers of the builder's builds, from C{first} down."""
        builds = self.model.builds
        query = (
            sa.select(builds.c.number)
            .where(builds.c.builderid == builderid, builds.c.number <= first)
            .order_by(builds.c.number.desc())
            .limit(count)
        )
        return self.reader.blocking(lambda conn: [r.number for r in conn.execute(query)])

    def finished_builds(
        self, builder: BuilderStatus, first: int | None, search: int
    ) -> Iterator[BuildStatus]:
        """
        The builder's finished builds from number C{first} (the newest if
        None) down, among its newest C{search} numbers, as 0.8 searched.
        """
        newest = self.newest_number(builder.builderid)
        if newest is None:
            return
        lowest = newest - search + 1
        first = newest if first is None else min(first, newest)
        while first >= lowest:
            numbers = self.numbers_down_from(builder.builderid, first, min(first - lowest + 1, 50))
            for number in numbers:
                build = self.build(builder, number) if number >= lowest else None
                if build is not None and build.isFinished():
                    yield build
            if not numbers:
                return
            first = numbers[-1] - 1


def _read_build(conn: Any, model: Any, builderid: int, number: int) -> dict[str, Any] | None:
    """Everything of one build, as data-API-shaped dicts, in one database thread turn."""
    b = model.builds
    row = conn.execute(sa.select(b).where(b.c.builderid == builderid, b.c.number == number)).first()
    if row is None:
        return None
    build = {
        "buildid": row.id, "number": row.number, "builderid": row.builderid,
        "buildrequestid": row.buildrequestid, "workerid": row.workerid,
        "masterid": row.masterid, "started_at": row.started_at,
        "complete_at": row.complete_at, "complete": row.complete_at is not None,
        "state_string": row.state_string, "results": row.results,
    }  # fmt: skip
    bp = model.build_properties
    properties = {
        r.name: (json.loads(r.value), r.source)
        for r in conn.execute(sa.select(bp).where(bp.c.buildid == row.id))
    }
    w = model.workers
    worker = conn.execute(sa.select(w.c.name).where(w.c.id == row.workerid)).first()
    br, bs = model.buildrequests, model.buildsets
    request = conn.execute(
        sa.select(br.c.buildsetid, bs.c.reason)
        .select_from(br.join(bs, br.c.buildsetid == bs.c.id))
        .where(br.c.id == row.buildrequestid)
    ).first()
    sourcestamps = (
        _read_sourcestamps(
            conn, model, request.buildsetid, (row.builderid, row.number, request.buildsetid)
        )
        if request
        else []
    )
    s, lg = model.steps, model.logs
    steps = []
    for step in conn.execute(sa.select(s).where(s.c.buildid == row.id).order_by(s.c.number)):
        logs = [
            {"logid": r.id, "name": r.name, "slug": r.slug, "type": r.type,
             "num_lines": r.num_lines, "complete": bool(r.complete)}
            for r in conn.execute(sa.select(lg).where(lg.c.stepid == step.id).order_by(lg.c.id))
        ]  # fmt: skip
        steps.append({
            "stepid": step.id, "number": step.number, "name": step.name,
            "started_at": step.started_at, "complete_at": step.complete_at,
            "complete": step.complete_at is not None, "state_string": step.state_string,
            "results": step.results, "urls": json.loads(step.urls_json or "[]"),
            "hidden": bool(step.hidden), "logs": logs,
        })  # fmt: skip
    return {
        "build": build,
        "properties": properties,
        "workername": worker.name if worker else None,
        "reason": request.reason if request else "",
        "buildsetid": request.buildsetid if request else None,
        "sourcestamps": sourcestamps,
        "steps": steps,
    }


def _read_sourcestamps(
    conn: Any, model: Any, buildsetid: int, build: tuple[int, int, int]
) -> list[tuple[dict[str, Any], StampChanges]]:
    """The buildset's source stamps, each with the changes C{build} may have built."""
    bss, ss, p = model.buildset_sourcestamps, model.sourcestamps, model.patches
    rows = conn.execute(
        sa.select(
            ss, p.c.patchlevel, p.c.patch_base64, p.c.patch_author, p.c.patch_comment, p.c.subdir
        )
        .select_from(
            bss.join(ss, bss.c.sourcestampid == ss.c.id).outerjoin(p, ss.c.patchid == p.c.id)
        )
        .where(bss.c.buildsetid == buildsetid)
        .order_by(bss.c.id)
    ).all()
    stamps = []
    for r in rows:
        patch = None
        if r.patchid is not None:
            patch = {
                "level": r.patchlevel, "body": base64.b64decode(r.patch_base64),
                "author": r.patch_author, "comment": r.patch_comment, "subdir": r.subdir,
            }  # fmt: skip
        data = {
            "ssid": r.id, "branch": r.branch, "revision": r.revision, "project": r.project,
            "repository": r.repository, "codebase": r.codebase, "patch": patch,
        }  # fmt: skip
        stamps.append((data, read_built_changes(conn, model, build, r.id)))
    return stamps


def _build_from(builder: BuilderStatus, rows: dict[str, Any]) -> BuildStatus:
    build_row = rows["build"]
    build = BuildStatus(builder, build_row["number"], build_row["buildid"])
    config = builder.master.config
    sourcestamps = [
        SourceStamp.from_data(data, built_changes(found, rows["properties"], config))
        for data, found in rows["sourcestamps"]
    ]
    build.fill(
        BuildData(
            build=build_row, properties=rows["properties"], workername=rows["workername"],
            reason=rows["reason"], sourcestamps=sourcestamps, buildsetid=rows["buildsetid"],
        )
    )  # fmt: skip
    for step_row in rows["steps"]:
        step = BuildStepStatus.from_data(build, step_row)
        build.add_step(step)
        for log_row in step_row["logs"]:
            build.logfile_name_for(log_row["logid"], step.name, log_row["name"])
        step.history_logs = step_row["logs"]
    if build_row["complete"]:
        build.mark_finished()
    return build


class StoredLogFile(LogFile):
    """
    A finished log of a build from history: its spool file is used as it
    is, or, when there is none, written from the database the first time
    the log is read (0.8 read its old logs from disk as they were asked for).
    """

    _stored: tuple[dict[str, Any], LogReader]
    _written_now = False

    @classmethod
    def of(cls, step: BuildStepStatus, log: dict[str, Any], reader: LogReader) -> StoredLogFile:
        build = step.build
        self = cls.open_finished(
            step, log["name"], build.logfile_name_for(log["logid"], step.name, log["name"])
        )
        self._stored = (log, reader)
        self._written_now = False
        self.slug = log["slug"]
        self.entries_elsewhere = lambda: database_entries(
            reader, log["logid"], log["type"], log["num_lines"]
        )
        return self

    def _ensure(self) -> None:
        if self._written_now or (self.spooled and _spool.existing_spool(self.getFilename())):
            return
        log, reader = self._stored
        lf = LogFile(self.step, self.name, self.filename)
        lf.logMaxSize = lf.logMaxTailSize = None
        for channel, chunk in database_entries(reader, log["logid"], log["type"], log["num_lines"]):
            lf.addEntry(channel, chunk)
        lf.finish()
        self.spool_failure = lf.spool_failure
        self._written_now = True

    def getFile(self) -> IO[bytes]:
        self._ensure()
        return super().getFile()

    def hasContents(self) -> bool:
        self._ensure()
        return super().hasContents()

    def getChunks(
        self, channels: list[int] | tuple[int, ...] = (), onlyText: bool = False
    ) -> Iterator[Any]:
        self._ensure()  # a spool that cannot be written is read around
        return super().getChunks(channels, onlyText)


class StoredHTMLLogFile(StoredLogFile, HTMLLogFile):
    """An HTML log of a build from history: an C{HTMLLogFile}, as it was live."""


def history_logfiles(
    step: BuildStepStatus, reader: LogReader, mirrors: MirrorRegistry
) -> list[LogFile]:
    """The logs of a step of a build from history: the bridge's own where it has them."""
    logfiles: list[LogFile] = []
    for log in step.history_logs:
        mirror = mirrors.find(log["logid"])
        if mirror is not None and mirror.logfile is not None:
            logfiles.append(mirror.logfile)
        else:
            kind = StoredHTMLLogFile if log["type"] == "h" else StoredLogFile
            logfiles.append(kind.of(step, log, reader))
    return logfiles
