"""
A stream log's lines, as the database holds them, into 0.8 chunks
(_mirror.stream_chunks): against a plain line-by-line reading.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildbot_logfile._mirror import stream_chunks
from buildbot_logfile.logfile import HEADER, STDERR, STDOUT

CHANNELS = {"o": STDOUT, "e": STDERR, "h": HEADER}

lines = st.lists(
    st.tuples(
        # A stream letter, or what no stream has (taken whole as stdout).
        st.sampled_from("oehx\u00e9"),
        st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=12),
    ),
    max_size=40,
)


def line_by_line(text: str) -> list[tuple[int, str]]:
    """Each line on its own: its stream's channel and its text, or stdout and all of it."""
    chunks = []
    for line in re.findall(r"[^\n]*\n|[^\n]+$", text):
        if line[0] in CHANNELS:
            chunks.append((CHANNELS[line[0]], line[1:]))
        else:
            chunks.append((STDOUT, line))
    return chunks


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines, st.booleans())
def test_chunks_are_the_lines_runs(given_lines: list[tuple[str, str]], last_newline: bool) -> None:
    text = "".join(prefix + body + "\n" for prefix, body in given_lines)
    if text and not last_newline:
        text = text[:-1]  # a last line cut short still counts
    chunks = list(stream_chunks(text))
    assert _runs(chunks) == _runs(line_by_line(text))
    assert all(t for _, t in chunks)
    if text.endswith("\n"):
        # Told how many lines there are, as for lines held or read.
        assert list(stream_chunks(text, text.count("\n"))) == chunks


def _runs(chunks: list[tuple[int, str]]) -> list[tuple[int, str]]:
    runs: list[tuple[int, str]] = []
    for channel, text in chunks:
        if not text:
            continue
        if runs and runs[-1][0] == channel:
            runs[-1] = (channel, runs[-1][1] + text)
        else:
            runs.append((channel, text))
    return runs


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from("oeh"), st.lists(st.sampled_from(["", "x", "\u00e9", "o", "e"]), min_size=1))
def test_lines_of_one_stream_told_their_number(prefix: str, bodies: list[str]) -> None:
    text = "".join(prefix + body + "\n" for body in bodies)
    assert list(stream_chunks(text, len(bodies))) == [
        (CHANNELS[prefix], "".join(b + "\n" for b in bodies))
    ]


def test_a_run_of_one_stream_is_one_chunk() -> None:
    text = "ohello\noworld\nea warning\nhheader\nhmore\nxno stream\no\n"
    assert list(stream_chunks(text)) == [
        (STDOUT, "hello\nworld\n"),
        (STDERR, "a warning\n"),
        (HEADER, "header\nmore\n"),
        (STDOUT, "xno stream\n"),
        (STDOUT, "\n"),
    ]
