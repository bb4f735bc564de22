"""0.8's changes and source stamps, from the data API."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from buildbot.changes.changes import Change
from buildbot.process.properties import Properties


class LegacyChange(Change):
    """
    A change as 0.8 plugins used it: Buildbot's own C{Change} (C{number},
    C{who}, C{comments}, C{files}, C{revision}, C{branch}, C{when},
    C{asText}, C{asDict}), with 0.8's C{author} and C{asHTML} too.
    """

    @classmethod
    def from_data(cls, change: Mapping[str, Any]) -> LegacyChange:
        """A change from a data-API change."""
        self = cls(None, None, None, _fromChdict=True)
        self.number = change["changeid"]
        self.who = change.get("author")
        self.committer = change.get("committer")
        self.comments = change.get("comments")
        self.revision = change.get("revision")
        self.branch = change.get("branch")
        self.category = change.get("category")
        self.revlink = change.get("revlink") or ""
        self.repository = change.get("repository") or ""
        self.codebase = change.get("codebase") or ""
        self.project = change.get("project") or ""
        self.when = change.get("when_timestamp")
        self.files = sorted(change.get("files") or [])
        self.properties = Properties()
        for name, (value, source) in (change.get("properties") or {}).items():
            self.properties.setProperty(name, value, source)
        return self

    @property
    def author(self) -> str | None:
        return self.who

    def asChDict(self) -> dict[str, Any]:
        """The change as Buildbot's renderables read it (C{Interpolate("%(prop:...)s")})."""
        return {
            "changeid": self.number, "author": self.who, "committer": self.committer,
            "comments": self.comments, "files": list(self.files), "revision": self.revision,
            "when_timestamp": self.when, "branch": self.branch, "category": self.category,
            "revlink": self.revlink, "properties": self.properties.asDict(),
            "repository": self.repository, "codebase": self.codebase, "project": self.project,
        }  # fmt: skip

    def asHTML(self) -> str:
        """The change as an HTML fragment, everything from it escaped."""

        def esc(value: Any) -> str:
            return html.escape("" if value is None else str(value))

        revision = esc(self.revision)
        if self.revlink:
            revision = f'<a href="{esc(self.revlink)}">{revision}</a>'
        files = "".join(f"<li>{esc(f)}</li>" for f in self.files)
        return (
            f"<p>Changed by: <b>{esc(self.who)}</b><br />\n"
            f"Changed at: <b>{esc(self.getTime())}</b><br />\n"
            + (f"Repository: <b>{esc(self.repository)}</b><br />\n" if self.repository else "")
            + (f"Branch: <b>{esc(self.branch)}</b><br />\n" if self.branch else "")
            + f"Revision: <b>{revision}</b><br />\n</p>\n"
            f"<p>Changed files:\n<ul>{files}</ul></p>\n"
            f"<p>Comments:\n<pre>{esc(self.comments)}</pre></p>\n"
        )


class SourceStamp:
    """
    0.8's C{SourceStamp} (C{buildbot.sourcestamp}): what a build was
    built from.  C{patch} is 0.8's C{(level, diff, subdir)}, the diff text
    (bytes if it is not UTF-8), C{patch_info} its C{(author, comment)}.
    """

    def __init__(
        self,
        branch: str | None = None,
        revision: str | None = None,
        patch: tuple[int, str | bytes, str | None] | None = None,
        changes: Sequence[Change] = (),
        project: str = "",
        repository: str = "",
        codebase: str = "",
        patch_info: tuple[str | None, str | None] | None = None,
        ssid: int | None = None,
    ) -> None:
        self.branch = branch
        self.revision = revision
        self.patch = patch
        self.patch_info = patch_info
        self.changes = tuple(changes)
        self.project = project
        self.repository = repository
        self.codebase = codebase
        self.ssid = ssid

    @classmethod
    def from_data(cls, ss: Mapping[str, Any], changes: Sequence[Change]) -> SourceStamp:
        """A source stamp from a data-API one and the changes made on it."""
        patch = ss.get("patch")
        body = patch.get("body") if patch else None
        if isinstance(body, bytes):
            # Text as Python 3 plugins read it; a patch that is not UTF-8
            # stays bytes, as 0.8 held every patch (its mail attaches it as is).
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return cls(
            branch=ss.get("branch"),
            revision=ss.get("revision"),
            patch=(patch["level"], body or "", patch.get("subdir")) if patch else None,
            patch_info=(patch.get("author"), patch.get("comment")) if patch else None,
            changes=changes,
            project=ss.get("project") or "",
            repository=ss.get("repository") or "",
            codebase=ss.get("codebase") or "",
            ssid=ss.get("ssid"),
        )

    def getAbsoluteSourceStamp(self, got_revision: str | None = None) -> SourceStamp:
        """This stamp at the revision the build got, if it says."""
        return SourceStamp(
            self.branch, got_revision or self.revision, self.patch, self.changes, self.project,
            self.repository, self.codebase, self.patch_info, self.ssid,
        )  # fmt: skip

    def asDict(self) -> dict[str, Any]:
        """As 0.8's JSON status gave it."""
        result: dict[str, Any] = {"revision": self.revision, "hasPatch": self.patch is not None}
        if self.patch:
            result["patch_level"], result["patch_body"], result["patch_subdir"] = self.patch
            if isinstance(result["patch_body"], bytes):  # JSON holds text only
                result["patch_body"] = result["patch_body"].decode("utf-8", "replace")
        if self.patch_info:
            result["patch_author"], result["patch_comment"] = self.patch_info
        result.update(
            branch=self.branch,
            changes=[c.asDict() for c in self.changes],
            project=self.project,
            repository=self.repository,
            codebase=self.codebase,
        )
        return result

    def __repr__(self) -> str:
        return f"<SourceStamp {self.codebase or ''}:{self.branch}@{self.revision}>"
