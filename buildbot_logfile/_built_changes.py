"""
Which changes a build built, as 0.8 counted them.

0.8 gave a build the changes of every build request it took: all the
changes of a tree-stable period, and those of the requests it merged.
Buildbot 4 keeps only the last change of each: a buildset's source stamp
is its last change's, and collapsed requests are skipped.  What 0.8 would
have listed is found again from Buildbot's change chains (each change's
parent is the one before it on the same codebase, branch, repository and
project): the changes of the chain after the last one an earlier build of
the builder built (or, for its first, any earlier buildset), up to the
build's own, those the scheduler that asked for the build takes (its
C{change_filter}, as it took them).

A buildset's source stamps list the same changes, as 0.8's database
held them (a tree-stable period's, all of them): those of the chain since
any earlier buildset's (L{read_requested_changes}).

The rows are read in a database thread (L{read_built_changes}), for the
builds the bridge follows and for those read from history; the
scheduler's filter runs in the reactor (L{built_changes}), where
master.cfg's code runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from twisted.python import log

from buildbot_logfile._changes import LegacyChange

# The most changes before a source stamp's own that a build lists (the
# newest): a builder that built a branch long ago and builds it again
# would otherwise list every change since.
MOST_CHANGES = 200


@dataclass
class StampChanges:
    """A source stamp's own changes, and those before them on its chain since last built."""

    own: list[LegacyChange] = field(default_factory=list)
    before: list[LegacyChange] = field(default_factory=list)


def read_built_changes(
    conn: Any, model: Any, build: tuple[int, int, int], ssid: int
) -> StampChanges:
    """
    For a build (builder id, number, buildset id), source stamp C{ssid}'s
    own changes, and those on their chain after the newest change an
    earlier build of the builder built (for its first build of the chain,
    after the newest of any earlier buildset), oldest first.
    """
    builderid, number, buildsetid = build
    return _read_changes(conn, model, ssid, buildsetid, (builderid, number))


def read_requested_changes(conn: Any, model: Any, buildsetid: int, ssid: int) -> StampChanges:
    """
    For buildset C{buildsetid}, source stamp C{ssid}'s own changes, and
    those on their chain after the newest change of any earlier buildset,
    oldest first: what its scheduler gathered for it.
    """
    return _read_changes(conn, model, ssid, buildsetid, None)


def _read_changes(
    conn: Any, model: Any, ssid: int, buildsetid: int, build: tuple[int, int] | None
) -> StampChanges:
    """The changes of L{read_built_changes}, or of a buildset where C{build} is None."""
    c = model.changes
    own = conn.execute(sa.select(c).where(c.c.sourcestampid == ssid).order_by(c.c.changeid)).all()
    if not own:
        return StampChanges()
    last = own[-1]
    chain = sa.and_(
        _is(c.c.branch, last.branch),
        _is(c.c.repository, last.repository),
        _is(c.c.codebase, last.codebase),
        _is(c.c.project, last.project),
        c.c.changeid < own[0].changeid,
    )
    b, br, bss = model.builds, model.buildrequests, model.buildset_sourcestamps
    built_before = None
    if build is not None:
        builderid, number = build
        built_before = conn.execute(
            sa.select(sa.func.max(c.c.changeid))
            .select_from(
                b.join(br, b.c.buildrequestid == br.c.id)
                .join(bss, bss.c.buildsetid == br.c.buildsetid)
                .join(c, c.c.sourcestampid == bss.c.sourcestampid)
            )
            .where(b.c.builderid == builderid, b.c.number < number, chain)
        ).scalar()
    if built_before is None:
        built_before = conn.execute(
            sa.select(sa.func.max(c.c.changeid))
            .select_from(bss.join(c, c.c.sourcestampid == bss.c.sourcestampid))
            .where(bss.c.buildsetid < buildsetid, chain)
        ).scalar()
    before = conn.execute(
        sa.select(c)
        .where(chain, c.c.changeid > (-1 if built_before is None else built_before))
        .order_by(c.c.changeid.desc())
        .limit(MOST_CHANGES)
    ).all()
    changes = _changes(conn, model, [*reversed(before), *own])
    return StampChanges(own=changes[len(before) :], before=changes[: len(before)])


def built_changes(
    found: StampChanges, properties: Mapping[str, Any], config: Any
) -> list[LegacyChange]:
    """
    The changes a build built: C{found}'s own, and those before them that
    the scheduler named in the build's C{properties} takes (none if that
    scheduler is not in this master's C{config}).
    """
    if not found.before:
        return list(found.own)
    name = properties.get("scheduler")
    scheduler = (getattr(config, "schedulers", None) or {}).get(
        name[0] if isinstance(name, (tuple, list)) else name
    )
    change_filter = getattr(scheduler, "change_filter", None)
    if change_filter is None:
        return list(found.own)
    taken = []
    for change in found.before:
        try:
            if change_filter.filter_change(change):
                taken.append(change)
        except Exception:
            log.err(None, f"LegacyStatus: the change filter of scheduler {name!r}")
            return list(found.own)
    return [*taken, *found.own]


def _is(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _changes(conn: Any, model: Any, rows: list[Any]) -> list[LegacyChange]:
    """C{rows} of C{changes} as 0.8's changes, their files and properties read at once."""
    if not rows:
        return []
    ids = [row.changeid for row in rows]
    cf, cp = model.change_files, model.change_properties
    files: dict[int, list[str]] = {}
    for r in conn.execute(sa.select(cf.c.changeid, cf.c.filename).where(cf.c.changeid.in_(ids))):
        files.setdefault(r.changeid, []).append(r.filename)
    properties: dict[int, dict[str, tuple[Any, str]]] = {}
    for r in conn.execute(sa.select(cp).where(cp.c.changeid.in_(ids))):
        value = json.loads(r.property_value)
        properties.setdefault(r.changeid, {})[r.property_name] = (
            tuple(value) if isinstance(value, list) and len(value) == 2 else (value, "Change")
        )
    return [
        _change(row, files.get(row.changeid, []), properties.get(row.changeid, {})) for row in rows
    ]


def _change(row: Any, files: list[str], properties: dict[str, tuple[Any, str]]) -> LegacyChange:
    return LegacyChange.from_data({
        "changeid": row.changeid, "author": row.author, "committer": row.committer,
        "comments": row.comments, "revision": row.revision, "branch": row.branch,
        "category": row.category, "revlink": row.revlink, "repository": row.repository,
        "codebase": row.codebase, "project": row.project, "when_timestamp": row.when_timestamp,
        "files": files, "properties": properties,
    })  # fmt: skip
