"""
0.8's C{buildbot.status.web.base}, as far as WebStatus add-ons used it:
C{HtmlResource} and the C{path_to_*} helpers.  0.8 rendered pages through
its Jinja2 templates; those were site-specific and are not here, so an
C{HtmlResource} renders what its C{content()} returns (a subclass that
returns its own HTML works unchanged).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from buildbot.process.results import (
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
)
from twisted.internet import defer
from twisted.python import log
from twisted.web import resource, server
from twisted.web.iweb import IRequest

css_classes = {
    SUCCESS: "success",
    WARNINGS: "warnings",
    FAILURE: "failure",
    SKIPPED: "skipped",
    EXCEPTION: "exception",
    RETRY: "retry",
    None: "",
}


def path_to_root(request: IRequest) -> str:
    """The relative path from the page C{request} asks for to the root of the WebStatus."""
    segments = len(request.prepath) - 1 if request.prepath else 0
    return "../" * segments if segments else "./"


def path_to_authfail(request: IRequest) -> str:
    return path_to_root(request) + "authfail"


def path_to_builders(request: IRequest) -> str:
    return path_to_root(request) + "builders"


def path_to_builder(request: IRequest, builderstatus: Any) -> str:
    return path_to_builders(request) + "/" + quote(builderstatus.getName(), safe="")


def path_to_build(request: IRequest, buildstatus: Any) -> str:
    return path_to_builder(request, buildstatus.getBuilder()) + f"/builds/{buildstatus.getNumber()}"


def path_to_step(request: IRequest, stepstatus: Any) -> str:
    return (
        path_to_build(request, stepstatus.getBuild())
        + "/steps/"
        + quote(stepstatus.getName(), safe="")
    )


def path_to_slave(request: IRequest, slave: Any) -> str:
    return path_to_root(request) + "buildslaves/" + quote(slave.getName(), safe="")


def path_to_change(request: IRequest, change: Any) -> str:
    return path_to_root(request) + f"changes/{change.number}"


def plural(word: str, words: str, num: int) -> str:
    """C{"1 word"} or C{"n words"}."""
    return f"{num} {word if num == 1 else words}"


class HtmlResource(resource.Resource):
    """
    0.8's base of WebStatus pages: C{content(request, ctx)} gives the page
    (a string, or a Deferred firing with one); C{getStatus(request)} is the
    0.8 C{Status} of the WebStatus serving it.
    """

    contentType = "text/html; charset=utf-8"
    title = "Buildbot"
    addSlash = False  # 0.8: /page/ is /page too (0.8 no longer redirected /page to it)

    def getChild(self, path: bytes, request: IRequest) -> resource.Resource:
        if self.addSlash and path == b"" and len(request.postpath) == 0:
            return self
        return super().getChild(path, request)

    def getStatus(self, request: IRequest) -> Any:
        return request.site.buildbot_service.getStatus()  # type: ignore[attr-defined]

    def getTitle(self, request: IRequest) -> str:
        return self.title

    def getContext(self, request: IRequest) -> dict[str, Any]:
        """What 0.8 handed its templates: the title and where the root is."""
        return {
            "title": self.getTitle(request),
            "path_to_root": path_to_root(request),
            "authz": getattr(request.site.buildbot_service, "authz", None),  # type: ignore[attr-defined]
        }

    def content(self, request: IRequest, context: dict[str, Any]) -> Any:
        return ""

    def render(self, request: IRequest) -> Any:
        request.setHeader(b"content-type", self.contentType.encode())
        d = defer.maybeDeferred(self.content, request, self.getContext(request))
        closed: list[bool] = []
        request.notifyFinish().addBoth(closed.append)  # type: ignore[attr-defined]

        def done(page: Any) -> None:
            if not closed:
                if request.method != b"HEAD":
                    request.write(page.encode() if isinstance(page, str) else bytes(page or b""))
                request.finish()

        def failed(failure: Any) -> None:
            log.err(failure, f"{type(self).__name__}: while rendering {request.uri!r}")
            if not closed:
                request.setResponseCode(500)
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                request.write(b"This page failed; the master's log says why.\n")
                request.finish()

        d.addCallback(done).addErrback(failed)
        return server.NOT_DONE_YET
