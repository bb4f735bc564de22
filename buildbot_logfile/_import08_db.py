"""
Writing imported 0.8 builds into a Buildbot 4 database.

Rows are written as Buildbot's own connectors write them (the same
tables, hashes, slugs and identifier rules) but through one connection and
one transaction per build, so a build is imported whole or not at all, and
its log chunks go in as batched inserts rather than one commit each.

Imported builds belong to a master row of their own, C{IMPORT_MASTER},
never active: that is how a later run recognises a build it imported
(same master, same start time) and tells it from a build a real master ran
under the same number.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from buildbot.util import identifiers
from buildbot.util.sautils import hash_columns

from buildbot_logfile._import08_history import Build08, Change08, Log08, SourceStamp08, Step08
from buildbot_logfile._import08_logs import Chunk

IMPORT_MASTER = "buildbot-logfile import-08"
CHUNK_BATCH = 32  # chunks per INSERT: a few MB at most
# What a utf8mb3 column cannot hold: characters that take four bytes.
_BEYOND_THREE_BYTES = re.compile("[\U00010000-\U0010ffff]")


def _new_id(conn: sa.engine.Connection, insert: Any) -> int:
    key = conn.execute(insert).inserted_primary_key
    assert key is not None
    return int(key[0])


def _eq(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


# What PostgreSQL's text cannot hold.
_NUL = re.compile("\x00")


def _narrowed(value: Any, refused: re.Pattern[str]) -> tuple[Any, int]:
    """
    C{value} (a statement's parameters) with U+FFFD for each character
    C{refused} matches in its text; their count.
    """
    if isinstance(value, str):
        return refused.subn("\ufffd", value)
    if isinstance(value, dict):
        pairs = [(key, *_narrowed(item, refused)) for key, item in value.items()]
        return {key: item for key, item, _ in pairs}, sum(count for *_, count in pairs)
    if isinstance(value, (list, tuple)):
        items = [_narrowed(item, refused) for item in value]
        return type(value)(item for item, _ in items), sum(count for _, count in items)
    return value, 0


class Database:
    """The master's database, as the import reads and writes it."""

    def __init__(self, engine: sa.engine.Engine, model: Any) -> None:
        self.engine = engine
        self.m = model
        self._workers: dict[str, int] = {}
        self._replaced = 0
        # Characters the server would refuse the whole build for go in as
        # U+FFFD, and the import says how many (take_replaced, replaced_what).
        # Buildbot creates its tables on MySQL and MariaDB in utf8mb3,
        # whatever the database's own character set: no character beyond
        # U+FFFF (an emoji in a commit message).  PostgreSQL's text holds no
        # NUL (0.8 kept what a step's text had).
        self._refused: re.Pattern[str] | None = None
        self.replaced_what = ""
        if engine.dialect.name == "mysql" and self._text_columns_hold_three_bytes():
            self._refused = _BEYOND_THREE_BYTES
            self.replaced_what = (
                "characters beyond U+FFFF (emoji and the like) stored as U+FFFD:"
                " Buildbot's tables on MySQL and MariaDB hold three bytes a character"
            )
        elif engine.dialect.name == "postgresql":
            self._refused = _NUL
            self.replaced_what = "NUL characters stored as U+FFFD: PostgreSQL's text holds none"
        if self._refused is not None:
            sa.event.listen(engine, "before_cursor_execute", self._replace_refused, retval=True)

    def _text_columns_hold_three_bytes(self) -> bool:
        query = sa.text(
            "SELECT character_set_name FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name = 'changes'"
            " AND column_name = 'comments'"
        )
        with self.engine.connect() as conn:
            charset = conn.execute(query).scalar()
        return charset in ("utf8", "utf8mb3")

    def _replace_refused(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any
    ) -> tuple[str, Any]:
        assert self._refused is not None
        narrowed, replaced = _narrowed(parameters, self._refused)
        # Only what is written counts: a lookup's values are narrowed alike
        # so that it finds what was stored, but store nothing.
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE"):
            self._replaced += replaced
        return statement, narrowed

    def take_replaced(self) -> int:
        """How many characters went in as U+FFFD since the last call (see __init__)."""
        replaced, self._replaced = self._replaced, 0
        return replaced

    @contextmanager
    def transaction(self) -> Iterator[sa.engine.Connection]:
        with self.engine.begin() as conn:
            yield conn

    def read(self, f: Callable[[sa.engine.Connection], Any]) -> Any:
        with self.engine.connect() as conn:
            return f(conn)

    # masters, builders, builds

    def import_masterid(self, conn: sa.engine.Connection, *, create: bool) -> int | None:
        t = self.m.masters
        name_hash = hash_columns(IMPORT_MASTER)
        row = conn.execute(sa.select(t.c.id).where(t.c.name_hash == name_hash)).first()
        if row is not None or not create:
            return row.id if row is not None else None
        values = {"name": IMPORT_MASTER, "name_hash": name_hash, "active": 0, "last_active": 0}
        return _new_id(conn, t.insert().values(values))

    def builderid(self, conn: sa.engine.Connection, name: str, *, create: bool) -> int | None:
        t = self.m.builders
        name_hash = hash_columns(name)
        row = conn.execute(sa.select(t.c.id).where(t.c.name_hash == name_hash)).first()
        if row is not None or not create:
            return row.id if row is not None else None
        return _new_id(conn, t.insert().values(name=name, name_hash=name_hash))

    def existing_builds(
        self, conn: sa.engine.Connection, builderid: int | None
    ) -> dict[int, tuple[int, int]]:
        """The builder's builds already in the database: number -> (masterid, started_at)."""
        if builderid is None:
            return {}
        t = self.m.builds
        rows = conn.execute(
            sa.select(t.c.number, t.c.masterid, t.c.started_at).where(t.c.builderid == builderid)
        )
        return {r.number: (r.masterid, r.started_at) for r in rows}

    def add_build(
        self,
        conn: sa.engine.Connection,
        build: Build08,
        builderid: int,
        masterid: int,
    ) -> int:
        """The build's own rows (request, buildset, stamps, properties); its id."""
        started = int(build.started or 0)
        complete_at = int(build.finished) if build.finished is not None else None
        buildsetid = _new_id(
            conn,
            self.m.buildsets.insert().values(
                external_idstring=None,
                reason=build.reason,
                submitted_at=started,
                complete=1,
                complete_at=complete_at if complete_at is not None else started,
                results=build.results,
            ),
        )
        for stamp in build.sourcestamps:
            ssid = self._sourcestamp(conn, stamp, started)
            conn.execute(
                self.m.buildset_sourcestamps.insert().values(
                    buildsetid=buildsetid, sourcestampid=ssid
                )
            )
        brid = _new_id(
            conn,
            self.m.buildrequests.insert().values(
                buildsetid=buildsetid,
                builderid=builderid,
                priority=0,
                complete=1,
                results=build.results,
                submitted_at=started,
                complete_at=complete_at if complete_at is not None else started,
                waited_for=0,
            ),
        )
        conn.execute(
            self.m.buildrequest_claims.insert().values(
                brid=brid, masterid=masterid, claimed_at=started
            )
        )
        buildid = _new_id(
            conn,
            self.m.builds.insert().values(
                number=build.number,
                builderid=builderid,
                buildrequestid=brid,
                workerid=self._workerid(conn, build.workername),
                masterid=masterid,
                started_at=started,
                complete_at=complete_at,
                locks_duration_s=0,
                state_string=" ".join(build.text),
                results=build.results,
            ),
        )
        if build.properties:
            conn.execute(
                self.m.build_properties.insert(),
                [
                    {
                        "buildid": buildid,
                        "name": name,
                        "value": json.dumps(value),
                        "source": source,
                    }
                    for name, (value, source) in build.properties.items()
                ],
            )
        return buildid

    def add_step(self, conn: sa.engine.Connection, buildid: int, number: int, step: Step08) -> int:
        return _new_id(
            conn,
            self.m.steps.insert().values(
                number=number,
                name=step.name,
                buildid=buildid,
                started_at=int(step.started) if step.started is not None else None,
                locks_acquired_at=int(step.started) if step.started is not None else None,
                complete_at=int(step.finished) if step.finished is not None else None,
                state_string=" ".join(step.text),
                results=step.results,
                urls_json=json.dumps(step.urls),
                hidden=1 if step.hidden else 0,
            ),
        )

    def add_log(
        self, conn: sa.engine.Connection, stepid: int, log: Log08, slug: str, logtype: str
    ) -> int:
        return _new_id(
            conn,
            self.m.logs.insert().values(
                name=log.name, slug=slug, stepid=stepid, complete=1, num_lines=0, type=logtype
            ),
        )

    def chunk_writer(self, conn: sa.engine.Connection, logid: int) -> ChunkWriter:
        return ChunkWriter(conn, self.m.logchunks, logid)

    def set_num_lines(self, conn: sa.engine.Connection, logid: int, num_lines: int) -> None:
        t = self.m.logs
        conn.execute(t.update().where(t.c.id == logid).values(num_lines=num_lines))

    # what builds refer to

    def _workerid(self, conn: sa.engine.Connection, name: str | None) -> int | None:
        if not name:
            return None
        if name in self._workers:
            return self._workers[name]
        t = self.m.workers
        row = conn.execute(sa.select(t.c.id).where(t.c.name == name)).first()
        # Not cached before the transaction commits: a rolled back id is gone.
        if row is not None:
            self._workers[name] = row.id
            return row.id
        return _new_id(conn, t.insert().values(name=name, info={}))

    def _sourcestamp(self, conn: sa.engine.Connection, ss: SourceStamp08, created: int) -> int:
        # Each change brings its own stamp, as Buildbot's addChange does; the
        # last one is usually the build's, which links the build to them.
        parent = None
        for change in ss.changes:
            parent = self._change(conn, change, parent, created)
        patchid = None
        if ss.patch is not None:
            patchid = _new_id(
                conn,
                self.m.patches.insert().values(
                    patchlevel=ss.patch.level,
                    patch_base64=base64.b64encode(ss.patch.body).decode("ascii"),
                    patch_author=ss.patch.author,
                    patch_comment=ss.patch.comment,
                    subdir=ss.patch.subdir,
                ),
            )
        return self._stamp(
            conn, ss.branch, ss.revision, ss.repository, ss.project, ss.codebase, patchid, created
        )

    def _stamp(
        self,
        conn: sa.engine.Connection,
        branch: str | None,
        revision: str | None,
        repository: str,
        project: str,
        codebase: str,
        patchid: int | None,
        created: int,
    ) -> int:
        t = self.m.sourcestamps
        ss_hash = hash_columns(branch, revision, repository, project, codebase, patchid)
        row = conn.execute(sa.select(t.c.id).where(t.c.ss_hash == ss_hash)).first()
        if row is not None:
            return row.id
        return _new_id(
            conn,
            t.insert().values(
                ss_hash=ss_hash,
                branch=branch,
                revision=revision,
                patchid=patchid,
                repository=repository,
                codebase=codebase,
                project=project,
                created_at=created,
            ),
        )

    def _change(
        self, conn: sa.engine.Connection, change: Change08, parent: int | None, created: int
    ) -> int:
        """The change's id: the one stored by an earlier build, or a new one."""
        t = self.m.changes
        row = conn.execute(
            sa.select(t.c.changeid).where(
                t.c.author == change.author,
                t.c.when_timestamp == change.when,
                _eq(t.c.revision, change.revision),
                _eq(t.c.branch, change.branch),
                t.c.repository == change.repository,
                t.c.project == change.project,
                t.c.codebase == change.codebase,
                t.c.comments == change.comments,
            )
        ).first()
        if row is not None:
            return row.changeid
        ssid = self._stamp(
            conn,
            change.branch,
            change.revision,
            change.repository,
            change.project,
            change.codebase,
            None,
            created,
        )
        changeid = _new_id(
            conn,
            t.insert().values(
                author=change.author,
                committer=None,
                comments=change.comments,
                branch=change.branch,
                revision=change.revision,
                revlink=change.revlink,
                when_timestamp=change.when,
                category=change.category,
                repository=change.repository,
                codebase=change.codebase,
                project=change.project,
                sourcestampid=ssid,
                parent_changeids=parent,
            ),
        )
        if change.files:
            conn.execute(
                self.m.change_files.insert(),
                [{"changeid": changeid, "filename": name} for name in change.files],
            )
        if change.properties:
            conn.execute(
                self.m.change_properties.insert(),
                [
                    {
                        "changeid": changeid,
                        "property_name": name,
                        "property_value": json.dumps([value, source]),
                    }
                    for name, (value, source) in change.properties.items()
                ],
            )
        return changeid


class ChunkWriter:
    """Log chunks of one log, inserted in batches."""

    def __init__(self, conn: sa.engine.Connection, table: Any, logid: int) -> None:
        self.conn = conn
        self.table = table
        self.logid = logid
        self.rows: list[dict[str, Any]] = []

    def __call__(self, chunk: Chunk) -> None:
        first, last, content, compressed = chunk
        self.rows.append(
            {
                "logid": self.logid,
                "first_line": first,
                "last_line": last,
                "content": content,
                "compressed": compressed,
            }
        )
        if len(self.rows) >= CHUNK_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.conn.execute(self.table.insert(), self.rows)
            self.rows = []


def fit_columns(build: Build08, model: Any) -> list[str]:
    """
    Cut what of C{build} is longer than its column in Buildbot's tables
    (PostgreSQL and MySQL refuse the whole build for it; SQLite keeps it):
    what was cut, said for the import.
    """
    cut: list[str] = []

    def fit(value: str | None, column: Any, what: str) -> Any:
        length = column.type.length
        if value is None or len(value) <= length:
            return value
        cut.append(f"{what} of {len(value)} characters cut to {length}")
        return value[:length]

    m = model
    build.reason = fit(build.reason, m.buildsets.c.reason, "the reason")
    build.workername = fit(build.workername, m.workers.c.name, "the worker's name")
    props = m.build_properties.c
    build.properties = {
        fit(name, props.name, f"property name {name[:40]!r}..."): (
            value,
            fit(source, props.source, f"the source of property {name[:40]!r}"),
        )
        for name, (value, source) in build.properties.items()
    }
    for ss in build.sourcestamps:
        for attr in ("branch", "revision", "repository", "project", "codebase"):
            value = getattr(ss, attr)
            setattr(ss, attr, fit(value, m.sourcestamps.c[attr], f"a source stamp's {attr}"))
        for change in ss.changes:
            for attr in _CHANGE_COLUMNS:
                value = getattr(change, attr)
                setattr(change, attr, fit(value, m.changes.c[attr], f"a change's {attr}"))
    return cut


# The text columns of a change that 0.8's changes fill.
_CHANGE_COLUMNS = (
    "author", "branch", "revision", "revlink", "category", "repository", "codebase", "project",
)  # fmt: skip


def unique_names(names: list[str], length: int = 50) -> list[str]:
    """
    Names unique within a build (steps) or a step (log slugs), as
    Buildbot makes them: cut to C{length}, then C{_1}, C{_2}... on a clash.
    """
    seen: set[str] = set()
    out = []
    for name in names:
        name = name[:length]
        while name in seen:
            name = identifiers.incrementIdentifier(length, name)
        seen.add(name)
        out.append(name)
    return out
