"""
The C{legacy_logs} Buildbot www plugin (of buildbot-logfile): the old log
pages under C{/plugins/legacy_logs/}, obeying the master's C{www['authz']}.

Buildbot imports every installed www plugin when the master starts,
configured or not.  So this lives outside the C{buildbot_logfile} package,
imports nothing beyond Twisted at import time, and loads the pages only
when a request reaches them: a master that does not use the plugin gets
none of C{buildbot_logfile}, not even its 0.8 import paths.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource

PLUGIN_SCRIPT = (
    b"/* buildbot-logfile: the old log pages are at plugins/legacy_logs/builders/... */\n"
)
PLUGIN_STYLE = b"/* buildbot-logfile */\n"


# On every answer, as on the pages': no guessing a type, no framing elsewhere.
_SAFETY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"SAMEORIGIN"))


class _StaticText(Resource):
    """One of the UI's two files: GET and HEAD only, and nothing below it."""

    isLeaf = True

    def __init__(self, body: bytes, content_type: bytes) -> None:
        super().__init__()
        self.body = body
        self.content_type = content_type

    def render(self, request: Any) -> bytes:
        for name, value in _SAFETY_HEADERS:
            request.setHeader(name, value)
        if request.postpath:
            return _answer(request, 404, b"No such page.\n")
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return _answer(request, 405, b"The pages only answer GET and HEAD.\n")
        request.setHeader(b"content-type", self.content_type)
        return self.body


def _answer(request: Any, code: int, text: bytes) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text


class _PagesResource(Resource):
    """
    The plugin's root: the UI's two files, and the log pages below.  The
    root itself (C{/plugins/legacy_logs}, with no C{/}) is the pages' too,
    which say it is none.
    """

    def __init__(self, plugin: LegacyLogsPlugin) -> None:
        super().__init__()
        self.plugin = plugin
        self.putChild(b"scripts.js", _StaticText(PLUGIN_SCRIPT, b"application/javascript"))
        self.putChild(b"styles.css", _StaticText(PLUGIN_STYLE, b"text/css"))

    def getChild(self, path: bytes, request: Any) -> Any:
        # Klein routes from here on: put the segment back for it.
        request.postpath.insert(0, path)
        request.prepath.pop()
        return self.plugin.pages()

    def render(self, request: Any) -> Any:
        return self.plugin.pages().render(request)


class LegacyLogsPlugin:
    """What Buildbot's www service expects of a plugin entry point."""

    description = "0.8-style log pages (buildbot-logfile)"
    ui = False

    def __init__(self) -> None:
        self.master: Any = None
        self.config: Any = None
        self._pages: Any = None
        self.resource = _PagesResource(self)

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return version("buildbot-logfile")

    def setMaster(self, master: Any) -> None:
        self.master = master
        self._pages = None

    def setConfiguration(self, config: Any) -> None:
        self.config = config

    def pages(self) -> Any:
        if self._pages is None:
            from buildbot_logfile.web import LegacyLogPages, WwwUserAuthorizer

            master = self.master

            def get_source() -> Any:
                status = master.service_manager.namedServices.get("LegacyStatus")
                return None if status is None else status.lookup

            self._pages = LegacyLogPages(get_source, WwwUserAuthorizer(master)).resource()
        return self._pages


ep = LegacyLogsPlugin()
