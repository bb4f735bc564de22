"""
0.8's C{buildbot.status.html.WebStatus}, as a status receiver given to
C{LegacyStatus(receivers=[...])}: on its own port it serves this project's
old-style pages (the same implementation as C{LegacyStatus}'s port), 0.8's
JSON status at C{/json}, and the add-ons a master.cfg mounts with
C{putChild}.  Everything it serves obeys the master's C{www['authz']} as
an anonymous user, as the standalone pages do, and 0.8's C{Authz(view=...)}
on top.
"""

from __future__ import annotations

from typing import Any

from buildbot.www.authz import Forbidden
from twisted.internet import defer
from twisted.python import log
from twisted.web import resource, server
from twisted.web.iweb import IRequest

from buildbot_logfile._authz import AnonymousAuthorizer, DataPath
from buildbot_logfile._json_status import JsonStatus
from buildbot_logfile.base import StatusReceiverMultiService
from buildbot_logfile.web import LegacyLogPages, PagesListener, guarded

# 0.8's WebStatus arguments that have no meaning here: named in the log.
_IGNORED = (
    "distrib_port", "allowForce", "public_html", "site", "numbuilds", "num_events",
    "num_events_max", "auth", "order_console_by_time", "changecommentlink", "revlink",
    "repositories", "projects", "logRotateLength", "maxRotatedFiles",
    "change_hook_dialects", "provide_feeds", "jinja_loaders", "change_hook_auth",
)  # fmt: skip


class Authz:
    """
    0.8's C{buildbot.status.web.authz.Authz}.  Only C{view} applies to what
    a WebStatus serves here (its pages are read-only): C{True} lets the
    master's C{www['authz']} decide, C{False} or C{'auth'} (0.8's "logged-in
    users only"; no one logs in to this port) refuses every page.  The
    actions (C{forceBuild}, C{stopBuild}...) are accepted and unused.
    """

    def __init__(
        self,
        default_action: Any = False,
        auth: Any = None,
        useHttpHeader: bool = False,
        httpLoginUrl: Any = False,
        view: Any = True,
        **actions: Any,
    ) -> None:
        self.default_action = default_action
        self.auth = auth
        self.view = view
        self.actions = actions

    def viewable(self) -> bool:
        return self.view is True

    def actionAllowed(self, action: str, request: IRequest, *args: Any) -> defer.Deferred[bool]:
        """
        0.8's question of a resource (C{ActionResource}, an add-on's own
        checks): C{view} as above; every other action is refused, since
        nobody logs in to this port.
        """
        return defer.succeed(action == "view" and self.viewable())


class _Authorizer(AnonymousAuthorizer):
    """The master's authz for an anonymous user, after 0.8's C{Authz.view}."""

    def __init__(self, master: Any, authz: Authz | None) -> None:
        super().__init__(master)
        self.authz08 = authz

    def restricted(self) -> bool:
        return super().restricted() or (self.authz08 is not None and not self.authz08.viewable())

    async def __call__(self, request: IRequest, path: DataPath) -> None:
        if self.authz08 is not None and not self.authz08.viewable():
            raise Forbidden("0.8's Authz(view=...) does not let anyone view this port")
        await super().__call__(request, path)


class _AddOn(resource.Resource):
    """An add-on mounted with C{putChild}, rendered by Twisted once authz lets the request in."""

    isLeaf = True

    def __init__(self, addon: resource.Resource, authorize: _Authorizer) -> None:
        super().__init__()
        self.addon = addon
        self.authorize = authorize

    def render(self, request: IRequest) -> Any:
        d = defer.ensureDeferred(self.authorize(request, ("builders",)))
        closed: list[object] = []
        request.notifyFinish().addBoth(closed.append)  # type: ignore[attr-defined]

        def allowed(_: Any) -> None:
            if closed:
                return
            # The add-on's own tree, from where this mount point left it,
            # rendered as Twisted's Site renders: 405 for a method it has no
            # render_ for, a HEAD answered with the length, a body that is
            # not bytes a 500.
            child = resource.getChildForRequest(self.addon, request)
            request.render(_Encoded(child))  # type: ignore[attr-defined]

        def refused(failure: Any) -> None:
            failure.trap(Forbidden)
            if closed:
                return
            request.setResponseCode(403)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(b"You may not view this.\n")
            request.finish()

        def failed(failure: Any) -> None:
            if closed or request.startedWriting:  # type: ignore[attr-defined]
                log.err(failure, "WebStatus: an add-on failed")
                if not closed:
                    # Unfinished, as it is: the client must not take it for whole.
                    request.loseConnection()  # type: ignore[attr-defined]
            else:
                # Twisted's answer to a resource that raised: logged, a 500.
                request.processingFailed(failure)  # type: ignore[attr-defined]

        d.addCallback(allowed).addErrback(refused).addErrback(failed)
        return server.NOT_DONE_YET


class _Encoded(resource.Resource):
    """An add-on's leaf, whose body, if a C{str} (0.8's add-ons were Python 2's), is UTF-8."""

    isLeaf = True

    def __init__(self, leaf: resource.Resource) -> None:
        super().__init__()
        self.leaf = leaf

    def render(self, request: IRequest) -> Any:
        body = self.leaf.render(request)
        return body.encode() if isinstance(body, str) else body


class _Root(resource.Resource):
    """C{/}: the add-ons by name, C{/json}, and the pages for every other path."""

    def __init__(self, webstatus: WebStatus) -> None:
        super().__init__()
        self.webstatus = webstatus
        self.pages = webstatus.pages.resource()
        self.json = guarded(webstatus.json.resource())

    def getChildWithDefault(self, path: bytes, request: IRequest) -> resource.Resource:
        addon = self.webstatus.addons.get(path)
        if addon is not None:
            return _AddOn(addon, self.webstatus.authorizer)
        if path == b"json":
            return self.json
        # The pages route on the whole path: give them this segment back.
        request.postpath.insert(0, request.prepath.pop())
        return self.pages

    def render(self, request: IRequest) -> Any:
        return self.pages.render(request)


class WebStatus(StatusReceiverMultiService):
    """
    0.8's C{html.WebStatus(http_port=None, authz=None, ...)}.  C{http_port}
    is a strports string (C{'tcp:8010:interface=127.0.0.1'}) or a port
    number, which listens on loopback only; 0.8's other arguments are
    accepted and named in the log as ignored.
    """

    # Not comparable, as 0.8's was not: what putChild mounted cannot be
    # compared, so each reconfig replaces the WebStatus (and its add-ons).
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    def __init__(
        self, http_port: str | int | None = None, authz: Authz | None = None, **kwargs: Any
    ) -> None:
        super().__init__()
        if isinstance(http_port, int):
            http_port = f"tcp:{http_port}:interface=127.0.0.1"
        self.http_port = http_port
        self.authz = authz if authz is not None else Authz()  # 0.8's default: all may view
        unknown = sorted(set(kwargs) - set(_IGNORED))
        if unknown:
            raise TypeError(f"WebStatus got unexpected arguments: {', '.join(unknown)}")
        if kwargs:
            log.msg(
                f"WebStatus: ignoring 0.8 arguments that do not apply: {', '.join(sorted(kwargs))}"
            )
        self.addons: dict[bytes, resource.Resource] = {}
        self._listener: PagesListener | None = None
        self._status: Any = None

    def getStatus(self) -> Any:
        """
        The 0.8 C{Status}: the C{LegacyStatus} this receiver was given to
        (kept once removed, as 0.8 kept its master, for requests still
        being answered).
        """
        if self.parent is not None:
            self._status = self.parent.getStatus()
        if self._status is None:
            raise RuntimeError("WebStatus: give it to reporters.LegacyStatus(receivers=[...])")
        return self._status

    @property
    def master(self) -> Any:
        return self.getStatus().master

    def putChild(self, path: str | bytes, child: resource.Resource) -> None:
        """Mount C{child} at C{/path}, as 0.8 add-ons did."""
        self.addons[path.encode() if isinstance(path, str) else path] = child

    @defer.inlineCallbacks
    def startService(self) -> Any:
        status = self.getStatus()
        self.authorizer = _Authorizer(status.master, self.authz)
        self.pages = LegacyLogPages(lambda: status.lookup, self.authorizer)
        self.json = JsonStatus(lambda: status if status.running else None, self.authorizer)
        self._listener = PagesListener(
            self.pages, root=lambda: self._site_root(), closes_connections=True
        )
        yield super().startService()
        yield defer.ensureDeferred(self._listener.listen_on(self.http_port))

    def _site_root(self) -> tuple[resource.Resource, dict[str, Any]]:
        return _Root(self), {"buildbot_service": self}

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        if self._listener is not None:
            # Its clients' open connections too, as 0.8 closed them: a
            # replaced WebStatus serves nothing more.
            yield defer.ensureDeferred(self._listener.close())
        yield super().stopService()

    @property
    def port(self) -> Any:
        """The listening port, or None."""
        return self._listener.port if self._listener is not None else None
