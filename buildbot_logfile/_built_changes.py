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
build's own.

This reads Buildbot's tables as Buildbot 4.1 to 4.3 lay them out, in a
database thread, for both the builds the bridge follows and those read
from history.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from buildbot_logfile._changes import LegacyChange

# The most changes one source stamp of a build lists (the newest): a
# builder that built a branch long ago and builds it again would otherwise
# list every change since.
MOST_CHANGES = 200


def built_changes(
    conn: Any, model: Any, build: tuple[int, int, int], ssid: int
) -> list[LegacyChange]:
    """
    The changes a build (builder id, number, buildset id) built on source
    stamp C{ssid}, oldest first: its own, and those on their chain after
    the newest change an earlier build of the builder built; for a
    builder's first build of the chain, after the newest change of any
    earlier buildset, if any.
    """
    builderid, number, buildsetid = build
    c = model.changes
    own = conn.execute(sa.select(c).where(c.c.sourcestampid == ssid).order_by(c.c.changeid)).all()
    if not own:
        return []
    last = own[-1]
    chain = sa.and_(
        _is(c.c.branch, last.branch),
        _is(c.c.repository, last.repository),
        _is(c.c.codebase, last.codebase),
        _is(c.c.project, last.project),
        c.c.changeid < own[0].changeid,
    )
    b, br, bss = model.builds, model.buildrequests, model.buildset_sourcestamps
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
    since = conn.execute(
        sa.select(c)
        .where(chain, c.c.changeid > (-1 if built_before is None else built_before))
        .order_by(c.c.changeid.desc())
        .limit(MOST_CHANGES)
    ).all()
    rows = {row.changeid: row for row in [*since, *own]}
    newest = sorted(rows)[-MOST_CHANGES:]
    return [_change(conn, model, rows[changeid]) for changeid in newest]


def _is(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _change(conn: Any, model: Any, row: Any) -> LegacyChange:
    cf, cp = model.change_files, model.change_properties
    files = [
        r.filename
        for r in conn.execute(sa.select(cf.c.filename).where(cf.c.changeid == row.changeid))
    ]
    properties = {}
    for r in conn.execute(sa.select(cp).where(cp.c.changeid == row.changeid)):
        value = json.loads(r.property_value)
        properties[r.property_name] = (
            tuple(value) if isinstance(value, list) and len(value) == 2 else (value, "Change")
        )
    return LegacyChange.from_data({
        "changeid": row.changeid, "author": row.author, "committer": row.committer,
        "comments": row.comments, "revision": row.revision, "branch": row.branch,
        "category": row.category, "revlink": row.revlink, "repository": row.repository,
        "codebase": row.codebase, "project": row.project,
        "when_timestamp": row.when_timestamp, "files": files, "properties": properties,
    })  # fmt: skip
