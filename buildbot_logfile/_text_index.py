"""
Paging through a log's text by byte offset, for the text page's
C{?start=N}: marks left along the spool file let a poll start near the text
it asks for, so polling a log costs the new text, not the whole log.  The
log leaves them as it writes its records, so even a first poll of a long
live log reads little; a spool opened from disk (finished before a restart)
gets them as it is first read.
"""

from __future__ import annotations

import bisect
import itertools
from typing import IO

from buildbot_logfile._records import char_boundary, iter_records

_TEXT_CHANNELS = (0, 1)  # stdout and stderr


class TextIndex:
    """Marks (text offset, file offset) at record ends of one spool file."""

    def __init__(self) -> None:
        self._marks: list[tuple[int, int]] = []

    def passed(self, text_pos: int, file_pos: int, spacing: int) -> None:
        """
        A record ending at C{file_pos} brings the text to C{text_pos}: mark
        it if that is C{spacing} bytes of text past the last mark.  Marks
        stay in order whoever leaves them (the writer or a reader), since
        both only go past the last one.
        """
        if text_pos >= (self._marks[-1][0] if self._marks else 0) + spacing:
            self._marks.append((text_pos, file_pos))

    def text_bytes(
        self,
        f: IO[bytes],
        end: int | None,
        run: tuple[int, bytes] | None,
        start: int,
        limit: int,
        *,
        spacing: int,
        buffersize: int,
        filename: str,
    ) -> tuple[bytes, int, bool]:
        """
        Up to C{limit} bytes of stdout and stderr text from text offset
        C{start}, read from C{f} (records up to C{end}, then the pending
        C{run}); see C{LogFile.text_bytes}.  Leaves a mark every C{spacing}
        bytes of text it passes.
        """
        i = bisect.bisect_right(self._marks, (start, float("inf"))) - 1
        text_pos, file_pos = self._marks[i] if i >= 0 else (0, 0)
        next_mark = (self._marks[-1][0] if self._marks else 0) + spacing
        wanted = bytearray()
        leftover: list[tuple[int, bytes | memoryview, int | None]] = [(*run, None)] if run else []
        # A damaged file raises: a shortened text must not pass for the log.
        records = iter_records(f, file_pos, end, buffersize, filename)
        for channel, data, next_offset in itertools.chain(records, leftover):
            if channel in _TEXT_CHANNELS:
                if text_pos + len(data) > start:
                    wanted += data[max(0, start - text_pos) :]
                text_pos += len(data)
            if next_offset is not None and text_pos >= next_mark:
                self.passed(text_pos, next_offset, spacing)
                next_mark = self._marks[-1][0] + spacing
            if len(wanted) > limit + 3:
                break
        # A start inside a character begins at the next one.
        return page_of(wanted, start, text_pos, limit, unread=False)


def page_of(
    wanted: bytearray, start: int, text_end: int, limit: int, *, unread: bool
) -> tuple[bytes, int, bool]:
    """
    The answer to a request for C{limit} bytes from text offset C{start}:
    C{wanted} holds the text from C{start} as far as it was read (at most a
    few bytes past C{limit}), C{text_end} is the offset reading stopped
    at, C{unread} whether text was left unread beyond it.  A start inside a
    character begins at the next one, and a page ends before a character
    it would cut.
    """
    skipped = 0
    while skipped < len(wanted) and skipped < 3 and (wanted[skipped] & 0xC0) == 0x80:
        skipped += 1
    cut = len(wanted) - skipped > limit
    if cut:
        body = bytes(wanted[skipped : char_boundary(wanted, skipped + limit)])
    else:
        body = bytes(wanted[skipped:])
    more = cut or unread
    if start > text_end and not more:
        return b"", text_end, False
    return body, start + skipped + len(body), more
