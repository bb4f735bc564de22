"""
The HTML of 0.8's log pages: the page around a log, chunks as coloured
spans (ANSI SGR codes become classes).
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote as url_quote

from buildbot_logfile.logfile import ChunkTypes

# The palette follows the channel rules with equal specificity, so a
# colour code wins over the channel's own colour.
STYLE = """
body.log { font-family: monospace; }
pre { white-space: pre-wrap; }
span.stdout { color: black; }
span.stderr { color: #c00; }
span.header { color: #00c; }
span.ansi1 { font-weight: bold; } span.ansi3 { font-style: italic; }
span.ansi4 { text-decoration: underline; }
span.ansi30 { color: black; } span.ansi31 { color: #c00; } span.ansi32 { color: #070; }
span.ansi33 { color: #a60; } span.ansi34 { color: #00c; } span.ansi35 { color: #a0a; }
span.ansi36 { color: #088; } span.ansi37 { color: #888; }
span.ansi90 { color: #555; } span.ansi91 { color: #f33; } span.ansi92 { color: #3c3; }
span.ansi93 { color: #cc3; } span.ansi94 { color: #66f; } span.ansi95 { color: #f6f; }
span.ansi96 { color: #3cc; } span.ansi97 { color: #ccc; }
span.ansi40 { background: black; } span.ansi41 { background: #fcc; }
span.ansi42 { background: #cfc; } span.ansi43 { background: #ffc; }
span.ansi44 { background: #ccf; } span.ansi45 { background: #fcf; }
span.ansi46 { background: #cff; } span.ansi47 { background: #eee; }
"""

# While a live log streams, keep the window at its end unless the reader
# scrolled up; the document's load event (the log finished) ends it.
FOLLOW_SCRIPT = """<script>
(function () {
  var follow = true;
  window.addEventListener("scroll", function () {
    follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  });
  var timer = setInterval(function () {
    if (follow) { window.scrollTo(0, document.body.scrollHeight); }
  }, 250);
  window.addEventListener("load", function () { clearInterval(timer); });
})();
</script>
"""


def page_header(text_url: str, live: bool) -> bytes:
    """0.8's page head; C{text_url} is relative, as 0.8's childLink made it."""
    return (
        '<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8">'
        "<title>Log File contents</title>\n"
        f"<style>{STYLE}</style>\n"
        f"{FOLLOW_SCRIPT if live else ''}"
        '</head>\n<body class="log">\n'
        f'<a href="{text_url}">(view as text)</a><br/>\n<pre>'
    ).encode()


PAGE_FOOTER = b"</pre>\n</body>\n</html>\n"


def escape_text(text: str) -> str:
    """
    Log text for an HTML text node.  Most log text holds no markup: three
    substring searches (memchr, unlike a regex character class) settle it,
    where html.escape would make five replacing passes.
    """
    if "&" in text or "<" in text or ">" in text:
        return html.escape(text, quote=False)
    return text


_ESCAPE = re.compile(r"\x1b\[([0-9;]*)m|\x1b\[[0-9;?]*[A-Za-z]")


class AnsiHTMLRenderer:
    """
    Renders chunks as 0.8 did, one C{<span class="stdout|stderr|header">}
    per run of text, with ANSI SGR codes as extra classes (C{ansi1},
    C{ansi32}...).  SGR state carries across the chunks of one channel;
    other escape sequences are dropped from the HTML.
    """

    def __init__(self) -> None:
        self._codes: dict[int, list[str]] = {}

    def open_tag(self, channel: int) -> bytes:
        """
        The C{<span>} that text of C{channel} with no escape sequence and
        nothing to escape goes in, in the colours in force: such text
        (most of a log) can be wrapped as the bytes it is.
        """
        kind = ChunkTypes[channel] if channel < len(ChunkTypes) else "stdout"
        return self._open_tag(kind, self._codes.setdefault(channel, [])).encode()

    def render(self, channel: int, text: str) -> str:
        kind = ChunkTypes[channel] if channel < len(ChunkTypes) else "stdout"
        codes = self._codes.setdefault(channel, [])
        if "\x1b" not in text:  # most chunks: no escape sequence to parse
            return self._span(kind, codes, text)
        out = []
        pos = 0
        for match in _ESCAPE.finditer(text):
            out.append(self._span(kind, codes, text[pos : match.start()]))
            if match.group(1) is not None:
                self._apply(codes, match.group(1))
            pos = match.end()
        out.append(self._span(kind, codes, text[pos:]))
        return "".join(out)

    @staticmethod
    def _open_tag(kind: str, codes: list[str]) -> str:
        classes = " ".join([kind] + [f"ansi{c}" for c in codes])
        return f'<span class="{classes}">'

    @classmethod
    def _span(cls, kind: str, codes: list[str], text: str) -> str:
        if not text:
            return ""
        return f"{cls._open_tag(kind, codes)}{escape_text(text)}</span>"

    @staticmethod
    def _apply(codes: list[str], params: str) -> None:
        parts = params.split(";") if params else ["0"]
        i = 0
        while i < len(parts):
            code = parts[i] or "0"
            if code in ("38", "48") and i + 1 < len(parts):
                # extended colours: 38;5;n or 38;2;r;g;b, one class each
                width = 3 if parts[i + 1] == "5" else 5
                code = "-".join(parts[i : i + width])
                i += width
            else:
                i += 1
            if not code.replace("-", "").isdigit():
                continue
            if code == "0":
                codes.clear()
            elif code not in codes:
                codes.append(code)


def quote(name: str) -> str:
    """A name as one URL path segment, for an HTML attribute."""
    return html.escape(url_quote(name, safe=""))


def link_name(name: str) -> str:
    """
    A builder's or step's name as links give it: as it is, as 0.8 linked
    it, but for a name of dots only, which a browser takes for a relative
    path (it resolves C{.} and C{..}, quoted or not, before it asks): as
    many C{_}, as Buildbot slugs a log of that name.  The pages read such
    a segment as that name where no builder or step has it as its own
    (see L{dotted_name}).
    """
    return "_" * len(name) if name and not name.strip(".") else name


def log_link_name(name: str, slug: str) -> str:
    """
    A log's name as links give it: by name, as 0.8 linked it, since the
    pages look a name up before a slug (and one log's slug may be another's
    name: "a/b" is "a_b", beside a log named "a_b"); but a name of dots only,
    as L{link_name} says, by its slug.
    """
    return slug if not name.strip(".") else name


def dotted_name(segment: str) -> str | None:
    """The name of dots only that C{segment} links (see L{link_name}), or None."""
    return "." * len(segment) if segment and not segment.strip("_") else None
