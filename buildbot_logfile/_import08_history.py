"""
An 0.7/0.8 master's build history on disk, read into plain records.

0.8 kept, per builder, a folder with the builder pickle C{builder}, the
build pickles C{0}, C{1}, ... and the log files they name.  The readers
here turn the pickles (see L{_import08_pickles}) into the dataclasses
below, with 0.8's quirks settled in one place: Python 2 strings, 0.7's
and 0.8's layouts (C{source} or C{sources}, C{Properties} or a plain dict,
results as a number or C{(number, text)}), missing fields.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from typing import Any

from buildbot_logfile import _import08_pickles as p08

# How deep under an 0.8 master's basedir a builder's folder is looked for.
BUILDDIR_DEPTH = 3
# How many of a builder's newest builds are asked its name when its pickle
# cannot tell it.
NAMING_BUILDS = 3


class HistoryError(Exception):
    """A pickle that cannot be read as what it should be."""


@dataclass
class Log08:
    name: str
    filename: str | None = None  # the log's file, next to the pickle
    html: str | None = None  # an HTML log's content, where the pickle holds it
    is_html: bool = False
    length: int | None = None  # the bytes of text 0.8 counted into its file


@dataclass
class Step08:
    name: str
    started: float | None
    finished: float | None
    results: int | None
    text: list[str]
    urls: list[dict[str, str]]
    hidden: bool
    logs: list[Log08]


@dataclass
class Patch08:
    level: int
    body: bytes
    subdir: str | None
    author: str
    comment: str


@dataclass
class Change08:
    number: int | None
    author: str
    comments: str
    files: list[str]
    revision: str | None
    when: int
    branch: str | None
    category: str | None
    revlink: str | None
    repository: str
    project: str
    codebase: str
    properties: dict[str, tuple[Any, str]]


@dataclass
class SourceStamp08:
    branch: str | None
    revision: str | None
    repository: str
    project: str
    codebase: str
    patch: Patch08 | None
    changes: list[Change08]


@dataclass
class Build08:
    builder: str
    number: int
    started: float | None
    finished: float | None
    results: int | None
    text: list[str]
    reason: str
    workername: str | None
    properties: dict[str, tuple[Any, str]]
    sourcestamps: list[SourceStamp08]
    steps: list[Step08] = field(default_factory=list)
    # The number the pickle gives itself, where it is a number.
    pickled_number: int | None = None


def load_pickle(path: str) -> Any:
    """Unpickle C{path} with the allow-list; any failure is a L{HistoryError}."""
    try:
        with open(path, "rb") as f:
            return p08.load(f)
    except p08.UnsafePickleError as e:
        raise HistoryError(
            f"not loaded, it names what an 0.8 status pickle never does ({e})"
        ) from e
    except (pickle.UnpicklingError, EOFError) as e:
        raise HistoryError(f"unreadable pickle ({str(e) or 'truncated'})") from e
    except OSError as e:
        raise HistoryError(f"unreadable ({e.strerror or e})") from e
    except Exception as e:  # a damaged pickle can raise almost anything
        raise HistoryError(f"unreadable pickle ({type(e).__name__}: {e})") from e


def builder_name(folder: str, numbers: list[int]) -> tuple[str, str | None]:
    """
    The builder's name and, if its C{builder} pickle could not give it,
    what went wrong and where the name came from instead: the builds'
    C{buildername} property (0.8 set it on every build), else the folder's
    name.  (A builder's folder is named after its C{builddir}, which need
    not be its name.)
    """
    path = os.path.join(folder, "builder")
    if not os.path.exists(path):
        trouble = "no builder pickle"
    elif not os.path.isfile(path):
        # A FIFO would wait for ever to be read.
        trouble = "not a file"
    else:
        try:
            status = load_pickle(path)
        except HistoryError as e:
            trouble = str(e)
        else:
            if isinstance(status, p08.BuilderStatus) and status.get("name"):
                return p08.text(status.get("name")), None
            trouble = "not an 0.8 BuilderStatus"
    for number in reversed(numbers[-NAMING_BUILDS:]):
        try:
            build = load_pickle(os.path.join(folder, str(number)))
        except HistoryError:
            continue
        if isinstance(build, p08.BuildStatus):
            try:
                properties = _properties(build.get("properties"))
            except Exception:  # what skips the build skips it as a name's source
                continue
            value, _ = properties.get("buildername", (None, None))
            if isinstance(value, str) and value:
                return value, f"{trouble}; named {value!r} after its builds' buildername"
    # A folder name that is not UTF-8 (a builddir in Latin-1) is shown as it reads.
    fallback = os.fsencode(os.path.basename(os.path.normpath(folder))).decode("utf-8", "replace")
    return fallback, f"{trouble}; named {fallback!r} after its folder"


def builder_folders(
    basedir: str, unlisted: list[tuple[str, str]] | None = None
) -> list[tuple[str, list[int]]]:
    """
    The folders under an 0.8 master's C{basedir} that hold a builder's
    history (its C{builder} pickle, or build pickles), in order, each with
    the numbers of its build pickles (a folder of a long history holds
    tens of thousands of files: listed once).  A
    builder's C{builddir} may be a path (C{'group/nested'}, looked for up
    to L{BUILDDIR_DEPTH} folders down) and a folder may be a link to
    another disk (followed, as 0.8 read through it; each folder once).
    Other folders (C{public_html}, C{templates}) are only looked into.
    A folder that cannot be listed (a mount point's C{lost+found}) is
    added to C{unlisted} with why, and left.
    """
    found: list[tuple[str, list[int]]] = []
    seen: set[str] = set()

    def look(folder: str, depth: int) -> None:
        try:
            entries = sorted(os.listdir(folder))
        except OSError:
            return
        for entry in entries:
            path = os.path.join(folder, entry)
            real = os.path.realpath(path)
            if not os.path.isdir(path) or real in seen:
                continue
            seen.add(real)
            try:
                numbers = build_numbers(path)
            except OSError as e:
                if unlisted is not None:
                    unlisted.append((path, e.strerror or str(e)))
                continue
            if numbers or os.path.isfile(os.path.join(path, "builder")):
                found.append((path, numbers))
            elif depth < BUILDDIR_DEPTH:
                look(path, depth + 1)

    seen.add(os.path.realpath(basedir))
    look(basedir, 1)
    return found


def build_numbers(folder: str) -> list[int]:
    """
    The numbers of the build pickles in a builder's folder, in order: its
    files named by a number as 0.8 wrote it (C{8}, not C{008}: 0.8 opened
    C{"%d"}), not a FIFO, whose reading would wait for ever.
    """
    return sorted(
        int(n)
        for n in os.listdir(folder)
        if n.isdigit()
        and n.isascii()
        and n == str(int(n))
        and os.path.isfile(os.path.join(folder, n))
    )


def read_build(path: str, builder: str, number: int) -> Build08:
    """One build pickle; L{HistoryError} when it is not one."""
    status = load_pickle(path)
    if not isinstance(status, p08.BuildStatus):
        raise HistoryError(f"not an 0.8 BuildStatus but {type(status).__name__}")
    try:
        return _build(status, builder, number)
    except Exception as e:  # fields of types 0.8 never wrote, nested past reason...
        raise HistoryError(f"a build 0.8 did not write ({type(e).__name__}: {e})") from e


def _build(status: p08.BuildStatus, builder: str, number: int) -> Build08:
    s = status.state
    stamps = s.get("sources")
    if stamps is None:
        stamps = [s["source"]] if s.get("source") is not None else []
    changes = [_change(c) for c in s.get("changes") or () if isinstance(c, p08.Change)]
    sourcestamps = [_sourcestamp(ss, changes) for ss in stamps if isinstance(ss, p08.SourceStamp)]
    return Build08(
        builder=builder,
        number=number,
        started=_time(s.get("started")),
        finished=_time(s.get("finished")),
        results=_results(s.get("results")),
        text=_words(s.get("text")),
        reason=p08.text(s.get("reason") or ""),
        workername=p08.opt_text(s.get("slavename")),
        properties=_properties(s.get("properties")),
        sourcestamps=sourcestamps,
        steps=_steps(s.get("steps")),
        pickled_number=_number(s.get("number")),
    )


def _steps(pickled: Any) -> list[Step08]:
    # 0.8 pickled every build with its list of steps: without it, the
    # build's logs would be left behind unsaid.
    if not isinstance(pickled, list):
        raise TypeError(f"its steps are no list but {type(pickled).__name__}")
    steps: list[Step08] = []
    for step in pickled:
        if not isinstance(step, p08.BuildStepStatus):
            raise TypeError(f"a step that is no BuildStepStatus but {type(step).__name__}")
        s = step.state
        urls = []
        for name, url in (s.get("urls") or {}).items():
            if isinstance(url, dict):  # 0.8.9 kept {'url': ..., 'target': ...}
                url = url.get(b"url") or url.get("url") or ""
            urls.append({"name": p08.text(name), "url": p08.text(url)})
        steps.append(
            Step08(
                name=p08.text(s.get("name") or f"step{len(steps)}"),
                started=_time(s.get("started")),
                finished=_time(s.get("finished")),
                results=_results(s.get("results")),
                text=_words(s.get("text")),
                urls=urls,
                hidden=bool(s.get("hidden", False)),
                logs=[log for log in map(_log, s.get("logs") or []) if log is not None],
            )
        )
    return steps


def _log(pickled: Any) -> Log08 | None:
    if isinstance(pickled, p08.HTMLLogFile):
        name = p08.text(pickled.get("name") or "log")
        html = pickled.get("html")
        if html is not None:  # up to 0.8.8, the pickle held the html
            return Log08(name, html=p08.text(html), is_html=True)
        # From 0.8.9 on, its file does, as a stream log's file holds its text.
        return Log08(name, filename=p08.opt_text(pickled.get("filename")), is_html=True)
    if isinstance(pickled, p08.LogFile):
        filename = pickled.get("filename")
        length = pickled.get("length")
        return Log08(
            p08.text(pickled.get("name") or "log"),
            filename=p08.opt_text(filename),
            length=_number(length),
        )
    return None


def _sourcestamp(ss: p08.SourceStamp, build_changes: list[Change08]) -> SourceStamp08:
    s = ss.state
    changes = [_change(c) for c in s.get("changes") or () if isinstance(c, p08.Change)]
    patch = None
    raw = s.get("patch")
    if isinstance(raw, (tuple, list)) and len(raw) >= 2:
        info = s.get("patch_info") or (None, None)
        body = raw[1] if isinstance(raw[1], bytes) else p08.text(raw[1]).encode("utf-8")
        patch = Patch08(
            level=int(raw[0]),
            body=body,
            subdir=p08.opt_text(raw[2]) if len(raw) > 2 else None,
            author=p08.text(info[0] or ""),
            comment=p08.text(info[1] or ""),
        )
    return SourceStamp08(
        branch=p08.opt_text(s.get("branch")),
        revision=p08.opt_text(s.get("revision")),
        repository=p08.text(s.get("repository") or ""),
        project=p08.text(s.get("project") or ""),
        codebase=p08.text(s.get("codebase") or ""),
        patch=patch,
        changes=changes or build_changes,
    )


def _change(change: p08.Change) -> Change08:
    s = change.state
    return Change08(
        number=_number(s.get("number")),
        author=p08.text(s.get("who") or s.get("author") or ""),
        comments=p08.text(s.get("comments") or ""),
        files=[p08.text(f) for f in s.get("files") or []],
        revision=p08.opt_text(s.get("revision")),
        when=_change_time(s.get("when")),
        branch=p08.opt_text(s.get("branch")),
        category=p08.opt_text(s.get("category")),
        revlink=p08.opt_text(s.get("revlink")),
        repository=p08.text(s.get("repository") or ""),
        project=p08.text(s.get("project") or ""),
        codebase=p08.text(s.get("codebase") or ""),
        properties=_properties(s.get("properties"), default_source="Change"),
    )


def _properties(pickled: Any, default_source: str = "Build") -> dict[str, tuple[Any, str]]:
    """0.8's C{Properties} (name -> (value, source)); 0.7.x's plain dict had no sources."""
    if isinstance(pickled, p08.Properties):
        pickled = pickled.get("properties") or {}
    if not isinstance(pickled, dict):
        return {}
    properties = {}
    for name, entry in pickled.items():
        if isinstance(entry, tuple) and len(entry) == 2:
            value, source = entry
        else:
            value, source = entry, default_source
        properties[p08.key_text(name)] = (p08.plain(value), p08.text(source))
    return properties


def _words(text: Any) -> list[str]:
    if isinstance(text, (list, tuple)):
        return [p08.text(word) for word in text]
    return [] if text is None else [p08.text(text)]


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _results(results: Any) -> int | None:
    if isinstance(results, (tuple, list)):  # 0.7's steps: (result, text2)
        results = results[0] if results else None
    return _number(results)


def _change_time(value: Any) -> int:
    """
    A change's time, as its change source gave it to 0.8, which kept it
    whatever it was (a commit from before 1970, milliseconds): 0 where it
    is no time Buildbot can store.
    """
    try:
        return int(_time(value) or 0)
    except ValueError:
        return 0


def _time(value: Any) -> float | None:
    """A time of 0.8's (seconds since the epoch), or None where it is none."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if not 0 <= value < _LATEST:
        raise ValueError(f"{value!r} is no time")
    return float(value)


# Times at or after this (the year 10000) are no times of a build.
_LATEST = 253402300800
