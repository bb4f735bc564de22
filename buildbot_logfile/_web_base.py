"""
0.8's C{buildbot.status.web.base}, as far as WebStatus add-ons used it:
C{HtmlResource}, C{ActionResource}, the C{path_to_*} helpers, C{Box} and
its interfaces, C{BuildLineMixin} and the small helpers around them.
0.8 rendered pages through its Jinja2 templates; those were site-specific
and are not here, so an C{HtmlResource} renders what its C{content()}
returns (a subclass that returns its own HTML works unchanged), and one
that only has a C{body()} gets it in a plain page.
"""

from __future__ import annotations

import html
import time
from typing import Any
from urllib.parse import quote

import buildbot
from buildbot.process.properties import Properties
from buildbot.process.results import (
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
    Results,
)
from twisted.internet import defer
from twisted.python import log
from twisted.web import resource, server
from twisted.web.iweb import IRequest
from zope.interface import Interface

from buildbot_logfile._render import link_name

css_classes = {
    SUCCESS: "success",
    WARNINGS: "warnings",
    FAILURE: "failure",
    SKIPPED: "skipped",
    EXCEPTION: "exception",
    RETRY: "retry",
    None: "",
}


class ITopBox(Interface):
    """A box in the top row of 0.8's waterfall: the last build of a builder."""

    def getBox(request: IRequest) -> Box:
        """Return a Box instance, which can produce a <td> cell."""


class ICurrentBox(Interface):
    """The 'current activity' box, just above the builder name."""

    def getBox(status: Any) -> Box:
        """Return a Box instance, which can produce a <td> cell."""


class IBox(Interface):
    """A box in 0.8's waterfall display."""

    def getBox(request: IRequest) -> Box:
        """Return a Box instance, which wraps an Event and can produce a <td> cell."""


class IHTMLLog(Interface):
    pass


class Box:
    """0.8's C{Box}: an event's text and HTML C{<td>} parameters."""

    spacer = False

    def __init__(
        self,
        text: list[str] | None = None,
        class_: str | None = None,
        urlbase: str | None = None,
        **parms: Any,
    ) -> None:
        self.text = [] if text is None else text
        self.class_ = class_
        self.urlbase = urlbase
        self.show_idle = 1 if parms.pop("show_idle", None) is not None else 0
        self.parms = parms

    def td(self, **props: Any) -> dict[str, Any]:
        props.update(self.parms)
        text = self.text
        if not text and self.show_idle:
            text = ["[idle]"]
        props["class"] = self.class_
        props["text"] = text
        return props


def getAndCheckProperties(req: IRequest) -> Properties | None:
    """
    0.8's: the properties of a force form (C{property1name},
    C{property1value}...), checked against the master's C{validation};
    None, logged, if one fails.
    """
    validation = req.site.buildbot_service.master.config.validation  # type: ignore[attr-defined]
    properties = Properties()
    i = 1
    while True:
        pname = _arg(req, f"property{i}name")
        pvalue = _arg(req, f"property{i}value")
        if not pname:
            break
        if not validation["property_name"].match(pname) or not validation["property_value"].match(
            pvalue
        ):
            log.msg(f"bad property name='{pname}', value='{pvalue}'")
            return None
        properties.setProperty(pname, pvalue, "Force Build Form")
        i += 1
    return properties


def _arg(req: IRequest, name: str) -> str:
    values = req.args.get(name.encode()) or [b""]
    return values[0].decode("utf-8", "replace")


def build_get_class(b: Any) -> str:
    """The CSS class of a build or step by its result (C{running} until it has one)."""
    from buildbot_logfile.status import BuildStatus, BuildStepStatus

    if isinstance(b, BuildStatus):
        result = b.getResults()
    elif isinstance(b, BuildStepStatus):
        result = b.getResults()[0]
        if isinstance(result, tuple):
            result = result[0]
    else:
        raise TypeError(f"{b!r} is not a BuildStatus or BuildStepStatus")
    if result is None:
        return "running"
    return Results[result]


def map_branches(branches: list[Any]) -> list[Any]:
    """0.8's: C{trunk} also as C{None}, the default branch."""
    if "trunk" in branches:
        return [*branches, None]
    return branches


def path_to_root(request: IRequest) -> str:
    """The relative path from the page C{request} asks for to the root of the WebStatus."""
    segments = len(request.prepath) - 1 if request.prepath else 0
    return "../" * segments if segments else "./"


def path_to_authfail(request: IRequest) -> str:
    return path_to_root(request) + "authfail"


def path_to_authzfail(request: IRequest) -> str:
    return path_to_root(request) + "authzfail"


def path_always_viewable(request: IRequest) -> bool:
    """0.8's: the root and the login page were viewable whatever authz said."""
    return request.path in (b"/", b"/login")


def path_to_builders(request: IRequest) -> str:
    return path_to_root(request) + "builders"


def path_to_builder(request: IRequest, builderstatus: Any) -> str:
    # A name of dots only as the pages link it (a browser would resolve it).
    return path_to_builders(request) + "/" + quote(link_name(builderstatus.getName()), safe="")


def path_to_build(request: IRequest, buildstatus: Any) -> str:
    return path_to_builder(request, buildstatus.getBuilder()) + f"/builds/{buildstatus.getNumber()}"


def path_to_step(request: IRequest, stepstatus: Any) -> str:
    return (
        path_to_build(request, stepstatus.getBuild())
        + "/steps/"
        + quote(link_name(stepstatus.getName()), safe="")
    )


def path_to_slave(request: IRequest, slave: Any) -> str:
    return path_to_root(request) + "buildslaves/" + quote(slave.getName(), safe="")


def path_to_change(request: IRequest, change: Any) -> str:
    return path_to_root(request) + f"changes/{change.number}"


def plural(word: str, words: str, num: float) -> str:
    """C{"1 word"} or C{"n words"}."""
    return f"{int(num)} {word if int(num) == 1 else words}"


MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY


def abbreviate_age(age: float) -> str:
    """0.8's: C{"5 seconds ago"}, C{"about 3 hours ago"}... C{"a long time ago"}."""
    if age <= 90:
        return f"{plural('second', 'seconds', age)} ago"
    for limit, unit, one, many in (
        (90 * MINUTE, MINUTE, "minute", "minutes"),
        (DAY, HOUR, "hour", "hours"),
        (2 * WEEK, DAY, "day", "days"),
        (2 * MONTH, WEEK, "week", "weeks"),
    ):
        if age < limit:
            return f"about {plural(one, many, age // unit)} ago"
    return "a long time ago"


class BuildLineMixin:
    """0.8's: what one line of a list of builds shows."""

    LINE_TIME_FORMAT = "%b %d %H:%M"

    def get_rev_list(self, build: Any) -> list[dict[str, Any]]:
        ss_list = build.getSourceStamps()
        all_got_revision = build.getAllGotRevisions() or {}
        unknown = {"repo": "unknown, no information in build", "codebase": ""}
        if not ss_list:
            return [{**unknown, "rev": "unknown"}]
        if len(ss_list) == 1:
            ss = ss_list[0]
            return [
                {
                    "repo": ss.repository,
                    "codebase": ss.codebase,
                    "rev": all_got_revision.get(ss.codebase, "??"),
                }
            ]
        rev_list = []
        for ss in ss_list:
            if not ss.branch and not ss.revision and not ss.patch and not ss.changes:
                continue
            if ss.branch:
                rev = ss.branch
            elif ss.codebase in all_got_revision:
                rev = all_got_revision[ss.codebase]
            else:
                rev = ss.revision or "??"
            rev_list.append({"repo": ss.repository, "codebase": ss.codebase, "rev": rev})
        return rev_list or [{**unknown, "rev": "most recent"}]

    def get_line_values(
        self, req: IRequest, build: Any, include_builder: bool = True
    ) -> dict[str, Any]:
        css_class = css_classes.get(build.getResults(), "")
        rev_list = self.get_rev_list(build)
        return {
            "class": css_class,
            "builder_name": build.getBuilder().getName(),
            "buildnum": build.getNumber(),
            "results": css_class,
            "text": " ".join(build.getText()),
            "buildurl": path_to_build(req, build),
            "builderurl": path_to_builder(req, build.getBuilder()),
            "rev_list": rev_list,
            "multiple_revs": len(rev_list) > 1,
            "time": time.strftime(self.LINE_TIME_FORMAT, time.localtime(build.getTimes()[0])),
            "include_builder": include_builder,
            "reason": build.getReason(),
            "interested_users": build.getInterestedUsers(),
        }


class AccessorMixin:
    """0.8's: what a resource finds through the WebStatus that serves it."""

    pageTitle: str | None = None

    def getStatus(self, request: IRequest) -> Any:
        return request.site.buildbot_service.getStatus()  # type: ignore[attr-defined]

    def getPageTitle(self, request: IRequest) -> str | None:
        return self.pageTitle

    def getAuthz(self, request: IRequest) -> Any:
        return request.site.buildbot_service.authz  # type: ignore[attr-defined]

    def getBuildmaster(self, request: IRequest) -> Any:
        return request.site.buildbot_service.master  # type: ignore[attr-defined]


class ContextMixin(AccessorMixin):
    """0.8.14's: what its templates were given."""

    def getContext(self, request: IRequest) -> dict[str, Any]:
        status = self.getStatus(request)
        rootpath = path_to_root(request)
        return {
            "title_url": status.getTitleURL(),
            "title": status.getTitle(),
            "stylesheet": rootpath + "default.css",
            "path_to_root": rootpath,
            "version": buildbot.version,
            "time": time.strftime("%a %d %b %Y %H:%M:%S", time.localtime()),
            "tz": time.tzname[time.localtime().tm_isdst > 0],
            "metatags": [],
            "pageTitle": self.getPageTitle(request),
            "welcomeurl": rootpath,
            "authz": self.getAuthz(request),
            "request": request,
            "alert_msg": _arg(request, "alert_msg"),
        }


class ActionResource(resource.Resource, AccessorMixin):
    """
    0.8's: a resource that performs an action (C{performAction(request)},
    the URL to go to, or C{(url, alert_msg)}, maybe as a Deferred) and
    redirects there, if its WebStatus's C{Authz} lets the user view.
    """

    isLeaf = True

    def getChild(self, name: bytes, request: IRequest) -> resource.Resource:
        return self

    def performAction(self, request: IRequest) -> Any:
        """Perform the action; the URL to redirect to, or C{(url, alert_msg)}."""

    def render(self, request: IRequest) -> Any:
        d = defer.maybeDeferred(self.getAuthz(request).actionAllowed, "view", request)
        closed: list[object] = []
        request.notifyFinish().addBoth(closed.append)  # type: ignore[attr-defined]

        def view(allowed: bool) -> Any:
            if allowed or path_always_viewable(request):
                return defer.maybeDeferred(self.performAction, request)
            return path_to_root(request)

        def redirect(url: Any) -> None:
            alert_msg = None
            if isinstance(url, tuple):
                url, alert_msg = url
            url = url.decode() if isinstance(url, bytes) else str(url)
            if alert_msg:
                url += "?alert_msg=" + quote(alert_msg, safe="")
            if closed:
                return  # the client left (0.8 logged it)
            request.redirect(url.encode())
            escaped = html.escape(url)
            request.write(f"see <a href='{escaped}'>{escaped}</a>".encode())
            request.finish()

        def fail(failure: Any) -> None:
            if closed:
                log.err(failure, f"{type(self).__name__}: while performing {request.uri!r}")
            else:
                request.processingFailed(failure)  # type: ignore[attr-defined]

        d.addCallback(view).addCallback(redirect).addErrback(fail)
        return server.NOT_DONE_YET


class HtmlResource(resource.Resource, ContextMixin):
    """
    0.8's base of WebStatus pages: C{content(request, ctx)} gives the page
    (a string, or a Deferred firing with one), by default C{body(request)}
    in a plain page; C{getStatus(request)} is the 0.8 C{Status} of the
    WebStatus serving it.  Its title is C{pageTitle} (0.8.5 on), or
    C{title}, as 0.8.0 to 0.8.4 named it.
    """

    contentType = "text/html; charset=utf-8"
    pageTitle: str | None = None
    title = "Buildbot"
    addSlash = False  # 0.8: /page/ is /page too (0.8 no longer redirected /page to it)

    def getChild(self, path: bytes, request: IRequest) -> resource.Resource:
        if self.addSlash and path == b"" and len(request.postpath) == 0:
            return self
        return super().getChild(path, request)

    def getPageTitle(self, request: IRequest) -> str | None:
        return self.pageTitle if self.pageTitle is not None else self.getTitle(request)

    def getTitle(self, request: IRequest) -> str:
        """0.8.0 to 0.8.4's name of the page's title."""
        return self.title

    def content(self, request: IRequest, context: dict[str, Any]) -> Any:
        """0.8.14's: C{body(request)} in the page (C{""} for a resource without one)."""
        body = getattr(self, "body", None)
        if body is None:
            return ""
        d = defer.maybeDeferred(body, request)
        title = html.escape(str(context.get("pageTitle") or ""))

        def page(text: Any) -> str:
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            head = f"<!DOCTYPE html><html><head><title>{title}</title></head>"
            return f"{head}<body>{text}</body></html>"

        return d.addCallback(page)

    def render(self, request: IRequest) -> Any:
        request.setHeader(b"content-type", self.contentType.encode())
        d = defer.maybeDeferred(lambda: self.content(request, self.getContext(request)))
        closed: list[bool] = []
        request.notifyFinish().addBoth(closed.append)  # type: ignore[attr-defined]

        def done(page: Any) -> None:
            if not closed:
                data = page.encode() if isinstance(page, str) else bytes(page or b"")
                if request.method == b"HEAD":
                    request.setHeader(b"content-length", b"%d" % len(data))
                else:
                    request.write(data)
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


class StaticHTML(HtmlResource):
    """0.8's: a page of fixed HTML."""

    def __init__(self, body: str, pageTitle: str) -> None:
        super().__init__()
        self.bodyHTML = body
        self.pageTitle = pageTitle

    def body(self, request: IRequest) -> str:
        return self.bodyHTML
