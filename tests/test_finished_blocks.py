"""
A finished log's page bodies (_finished) against the straightforward
reading of the same records: iter_records, runs decoded and rendered.
"""

from __future__ import annotations

import gzip
import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

from buildbot_logfile import _finished
from buildbot_logfile._records import ChunkDecoder, LogFileFormatError, encode_record, iter_records
from buildbot_logfile._render import AnsiHTMLRenderer

# Text that takes every path: plain, to escape, colours, non-ASCII, a
# UTF-8 character split between records, bytes that are not UTF-8, empty.
PIECES = [
    b"abc",
    b"line\n",
    b"x" * 50,
    b"<b>",
    b"&amp;",
    b"\x1b[31m",
    b"\x1b[0m",
    "\u00e9".encode(),
    b"\xe2",
    b"\x82\xac",
    b"\xff",
    b"",
]
RECORDS = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 0, 1, 2]),
        st.lists(st.sampled_from(PIECES), max_size=5).map(b"".join),
    ),
    max_size=40,
)


def reference(records: list[tuple[int, bytes]], span_bytes: int) -> tuple[bytes, bytes]:
    """The text page and the HTML spans, read the plain way."""
    text = b"".join(data for channel, data in records if channel in (0, 1))
    renderer, decoder, out = AnsiHTMLRenderer(), ChunkDecoder(), []
    run: list[bytes] = []
    run_channel = run_size = 0

    def end_run() -> None:
        for channel, chunk in decoder.decode(run_channel, b"".join(run)):
            out.append(renderer.render(channel, chunk).encode())

    for channel, data in records:
        if run and (channel != run_channel or run_size >= span_bytes):
            end_run()
            run, run_size = [], 0
        run.append(data)
        run_channel = channel
        run_size += len(data)
    if run:
        end_run()
    for channel, chunk in decoder.flush():
        out.append(renderer.render(channel, chunk).encode())
    return text, b"".join(out)


def page(path: str, body: _finished.TextBody | _finished.HTMLBody) -> bytes:
    blocks = _finished.SpoolBlocks(path)
    out = []
    while (block := blocks.read()) is not None:
        out.append(body.block(*block))
    blocks.close()
    return b"".join(out) + body.end()


@settings(max_examples=300, deadline=None)
@given(
    records=RECORDS,
    block=st.sampled_from([14, 20, 40, 64, 4096]),
    span=st.sampled_from([1, 10, 1000]),
    compressed=st.booleans(),
)
def test_pages_read_the_records_as_they_are(
    records: list[tuple[int, bytes]], block: int, span: int, compressed: bool
) -> None:
    raw = b"".join(encode_record(channel, data) for channel, data in records)
    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        patch.setattr(_finished, "BLOCK", block)
        patch.setattr(_finished, "SPAN_BYTES", span)
        path = os.path.join(directory, "1-log-s-stdio")
        with open(path + (".gz" if compressed else ""), "wb") as f:
            f.write(gzip.compress(raw) if compressed else raw)
        text, html = reference(records, span)
        assert page(path, _finished.TextBody()) == text
        assert page(path, _finished.HTMLBody()) == html


def test_records_before_damage_come_first(tmp_path: str) -> None:
    """As 0.8's reader (and iter_records) gave them, then the error."""
    path = os.path.join(tmp_path, "log")
    good = encode_record(0, b"one\n") + encode_record(1, b"two\n")
    with open(path, "wb") as f:
        f.write(good + b"7:0three\n;")
    with open(path, "rb") as f:
        records = iter_records(f, 0, None, 4096, path)
        expected = [bytes(next(records)[1]), bytes(next(records)[1])]
        with pytest.raises(LogFileFormatError):
            next(records)
    assert expected == [b"one\n", b"two\n"]
    blocks = _finished.SpoolBlocks(path)
    block = blocks.read()
    assert block is not None
    view, records = block
    assert [bytes(view[start:stop]) for _, start, stop in records] == expected
    with pytest.raises(LogFileFormatError, match="not terminated"):
        blocks.read()
    blocks.close()


def test_a_damaged_length_meets_the_end_of_the_file(tmp_path: str) -> None:
    """A length that promises 99 GB: the buffer grows by doubling, not to that."""
    path = os.path.join(tmp_path, "log")
    with open(path, "wb") as f:
        f.write(b"99999999999:0abc,")
    blocks = _finished.SpoolBlocks(path)
    assert blocks.read() == (memoryview(b""), [])  # the record is cut: read on
    with pytest.raises(LogFileFormatError, match="runs past the end"):
        blocks.read()
    assert len(blocks._buffer) == 2 * _finished.BLOCK
    blocks.close()


@pytest.mark.parametrize(
    ("peer", "here"),
    [
        (IPv4Address("TCP", "127.0.0.1", 5000), True),
        (IPv4Address("TCP", "127.3.2.1", 5000), True),
        (IPv6Address("TCP", "::1", 5000), True),
        (IPv6Address("TCP", "::ffff:127.0.0.1", 5000), True),
        (UNIXAddress(b"/run/master.sock"), True),
        (IPv4Address("TCP", "192.0.2.7", 5000), False),
        (IPv6Address("TCP", "2001:db8::1", 5000), False),
        (IPv6Address("TCP", "fe80::1%eth0", 5000), False),
        (IPv4Address("TCP", "not an address", 5000), False),
    ],
)
def test_which_clients_get_a_block_a_send(peer: object, here: bool) -> None:
    """Only a client on the master's machine: elsewhere a large send limit costs copies."""
    assert _finished._on_this_machine(peer) is here
