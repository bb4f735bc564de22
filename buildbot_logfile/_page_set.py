"""
The old page set around the logs, plain HTML at 0.8's URLs: the builders,
a builder (its state, current and recent builds), a build (its steps with
results, text and logs, its source stamps and properties) and a step.
Every link is relative, so the pages work on their own port and under the
master's www alike; every piece of text from a build is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from buildbot.process.results import Results

from buildbot_logfile._render import link_name, log_link_name, quote
from buildbot_logfile._status_base import epoch, legacy_results
from buildbot_logfile.status import BuilderStatus, BuildStatus, BuildStepStatus

STYLE = """
body { font-family: sans-serif; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
.success { background: #8d4; } .warnings { background: #fa3; } .failure { background: #e88; }
.skipped { background: #aef; } .exception, .retry { background: #c6c; }
.cancelled { background: #ecc; } .running { background: #fd3; }
"""


def _page(title: str, body: Iterable[str]) -> bytes:
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    ).encode()


def _result_name(results: int | None, finished: bool, started: bool = True) -> str:
    if not started:
        return "not started"
    if not finished:
        return "running"
    if results is None or not 0 <= results < len(Results):
        return "unknown"
    return Results[results]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(text: str, css: str = "") -> str:
    attribute = f' class="{css}"' if css else ""
    return f"<td{attribute}>{text}</td>"


def _table(header: Sequence[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(rows) + "\n</table>"


def listing(title: str, items: Iterable[str]) -> bytes:
    """A page with a heading and a list of the given HTML items."""
    return _page(title, ["<ul>", *items, "</ul>"])


def builders_page(names: Sequence[str], prefix: str = "builders/") -> bytes:
    """
    C{/builders}: every builder of the cluster, linked through C{prefix}
    (empty for C{/builders/}).
    """
    items = (
        f'<li><a href="{prefix}{quote(link_name(n))}">{html.escape(n)}</a></li>' for n in names
    )
    return listing("Builders", items)


def builder_page(
    builder: BuilderStatus,
    current: Sequence[BuildStatus],
    recent: Sequence[Mapping[str, Any]],
    depth: int = 0,
) -> bytes:
    """
    C{/builders/B}: the builder's state, its running builds, and its last
    finished ones.  C{depth}: as for L{step_page}, of the builder's name.
    """
    link = "../" * depth + quote(link_name(builder.name))
    state, _ = builder.getState()
    body = [f"<p>State: {html.escape(state)}</p>", "<h2>Current builds</h2>"]
    if current:
        body.append("<ul>")
        body += [
            f'<li><a href="{link}/builds/{b.number}">#{b.number}</a>'
            f" {html.escape(' '.join(b.getText()))}</li>"
            for b in current
        ]
        body.append("</ul>")
    else:
        body.append("<p>None.</p>")
    body.append("<h2>Recent builds</h2>")
    rows = []
    for b in recent:
        result = _result_name(legacy_results(b.get("results")), bool(b.get("complete")))
        rows.append(
            "<tr>"
            + _cell(f'<a href="{link}/builds/{b["number"]}">#{b["number"]}</a>')
            + _cell(html.escape(result), result)
            + _cell(html.escape(b.get("state_string") or ""))
            + _cell(_when(epoch(b.get("started_at"))))
            + "</tr>"
        )
    body.append(_table(["Build", "Result", "Text", "Started"], rows) if rows else "<p>None.</p>")
    return _page(f"Builder {builder.name}", body)


def _log_links(prefix: str, logs: Sequence[Mapping[str, Any]]) -> str:
    """Links to each log's page and text page, C{prefix} leading to the step's C{logs/}."""
    return " ".join(
        f'<a href="{prefix}{_log_segment(entry)}">{html.escape(entry["name"])}</a>'
        f' (<a href="{prefix}{_log_segment(entry)}/text">text</a>)'
        for entry in logs
    )


def _log_segment(entry: Mapping[str, Any]) -> str:
    return quote(log_link_name(entry["name"], entry["slug"]))


def logs_page(title: str, logs: Sequence[Mapping[str, Any]]) -> bytes:
    """C{.../steps/S/logs/}: the step's logs."""
    return listing(title, (f"<li>{_log_links('', [entry])}</li>" for entry in logs))


def build_page(
    build: BuildStatus,
    logs_of: Mapping[int | None, Sequence[Mapping[str, Any]]],
    depth: int = 0,
) -> bytes:
    """
    C{/builders/B/builds/N}: the build's result, its steps with results,
    text and log links (C{logs_of} by step id, None for steps yet to
    start), source stamps and properties.  C{depth}: as for L{step_page},
    of the builder's name.
    """
    number = build.number
    result = _result_name(build.getResults(), build.isFinished())
    started, finished = build.getTimes()
    body = [
        f'<p><a href="{"../" * (2 + depth)}{quote(link_name(build.builder.name))}">'
        f"Builder {html.escape(build.builder.name)}</a></p>",
        f'<p class="{result}">Result: {html.escape(result)}'
        f" {html.escape(' '.join(build.getText()))}</p>",
        f"<p>Reason: {html.escape(build.getReason() or '')}</p>",
        f"<p>Worker: {html.escape(build.getSlavename() or '')}</p>",
        f"<p>Started: {_when(started)}; finished: {_when(finished)}</p>",
        "<h2>Steps</h2>",
    ]
    rows = []
    for step in build.getSteps():
        step_result = _result_name(step.getResults()[0], step.isFinished(), step.isStarted())
        segment = quote(link_name(step.name))
        prefix = f"{number}/steps/{segment}/logs/"
        rows.append(
            "<tr>"
            + _cell(f'<a href="{number}/steps/{segment}">{html.escape(step.name)}</a>')
            + _cell(html.escape(step_result), step_result)
            + _cell(html.escape(" ".join(step.getText())))
            + _cell(_log_links(prefix, logs_of.get(step.stepid, ())))
            + "</tr>"
        )
    body.append(_table(["Step", "Result", "Text", "Logs"], rows))
    body.append("<h2>Source stamps</h2>")
    stamps = [
        "<tr>"
        + "".join(
            _cell(html.escape(str(value or "")))
            for value in (ss.codebase, ss.repository, ss.branch, ss.revision)
        )
        + _cell("yes" if ss.patch else "")
        + "</tr>"
        for ss in build.getSourceStamps()
    ]
    body.append(_table(["Codebase", "Repository", "Branch", "Revision", "Patch"], stamps))
    body.append("<h2>Properties</h2>")
    properties = build.getProperties().asDict()
    body.append(
        _table(
            ["Name", "Value", "Source"],
            (
                "<tr>"
                + _cell(html.escape(name))
                + _cell(html.escape(repr(value) if not isinstance(value, str) else value))
                + _cell(html.escape(source))
                + "</tr>"
                for name, (value, source) in sorted(properties.items())
            ),
        )
    )
    return _page(f"Build {build.builder.name} #{number}", body)


def step_page(step: BuildStepStatus, logs: Sequence[Mapping[str, Any]], depth: int = 0) -> bytes:
    """
    C{/builders/B/builds/N/steps/S}: the step's result, text, times, URLs
    and logs.  C{depth}: how many segments more than one the URL gave the
    step's name (a name with a "/", reached with it as it is, not as
    C{%2F}): the relative links climb that much higher.
    """
    build = step.build
    up = "../" * depth
    result = _result_name(step.getResults()[0], step.isFinished())
    started, finished = step.getTimes()
    body = [
        f'<p><a href="{up}../../{build.number}">Build {html.escape(build.builder.name)}'
        f" #{build.number}</a></p>",
        f'<p class="{result}">Result: {html.escape(result)}'
        f" {html.escape(' '.join(step.getText()))}</p>",
        f"<p>Started: {_when(started)}; finished: {_when(finished)}</p>",
        "<h2>Logs</h2>",
        "<ul>",
        *(
            f"<li>{_log_links(f'{up}{quote(link_name(step.name))}/logs/', [entry])}</li>"
            for entry in logs
        ),
        "</ul>",
    ]
    urls = step.getURLs()
    if urls:
        body += ["<h2>URLs</h2>", "<ul>"]
        body += [
            f'<li><a href="{html.escape(url)}">{html.escape(name)}</a></li>'
            for name, url in urls.items()
            if url.startswith(("http://", "https://"))
        ]
        body.append("</ul>")
    return _page(f"Step {step.name} of build {build.builder.name} #{build.number}", body)
