"""
Who may see what: the master's C{www['authz']} asked about the data API
path of what a page shows, as the data API itself would be asked.
"""

from __future__ import annotations

from typing import Any

from buildbot.www.authz import Forbidden
from twisted.internet import defer
from twisted.python import log
from twisted.web.iweb import IRequest

# Where a build's logs are: the data API path of the same thing.
DataPath = tuple[str, ...]

# The action the data API asks authz about for what it serves: the HTTP
# method of a REST GET, so that a matcher's match_<Endpoint>_GET applies
# to these pages as to the web UI.  (HEAD answers what GET would.)
VIEW = "GET"


class _Authorizer:
    def __init__(self, master: Any) -> None:
        self.master = master

    def rules(self) -> Any:
        """The master's C{www['authz']} in force: a reconfig puts a new one in place."""
        return getattr(self.master.www, "authz", None)

    def restricted(self) -> bool:
        """Whether what a page shows depends on who asks: then it is cached privately."""
        return bool(getattr(self.rules(), "allowRules", None))

    async def __call__(self, request: IRequest, path: DataPath) -> None:
        """Raise C{buildbot.www.authz.Forbidden} if this request may not view C{path}."""
        raise NotImplementedError

    async def allows(self, request: IRequest, path: DataPath) -> bool:
        """Whether this request may view C{path}: for what an answer leaves out."""
        try:
            await self(request, path)
        except Forbidden:
            return False
        return True


class AnonymousAuthorizer(_Authorizer):
    """The standalone port: what the master's www authz lets anyone see."""

    async def __call__(self, request: IRequest, path: DataPath) -> None:
        authz = self.rules()
        if authz is not None:
            await authz.assertUserAllowed(path, VIEW, {}, {"anonymous": True})


class WwwUserAuthorizer(_Authorizer):
    """Under the master's www: what its authz lets this request's user see."""

    async def __call__(self, request: IRequest, path: DataPath) -> None:
        if self.rules() is not None:
            await self.master.www.assertUserAllowed(request, path, VIEW, {})


class ViewGate:
    """
    Holds a live page to the rules in force.  A page is allowed as it
    opens (L{check}), and a live one goes on for as long as its step runs;
    a reconfig may meanwhile bring rules that no longer let its user view
    the log (a secret seen in a log, hidden by a new rule).  Before each
    write the page asks L{holds}, one comparison: whether the rules are
    still those it was allowed under.  If not, it holds its writes back
    and asks the new rules (L{recheck}).
    """

    def __init__(
        self, authorize: _Authorizer, request: IRequest, paths: tuple[DataPath, ...]
    ) -> None:
        self.authorize = authorize
        self.request = request
        self.paths = paths
        self._rules: Any = None

    async def check(self) -> None:
        """
        Raise C{Forbidden} unless the rules in force let this request view
        every path; they are then those the page was allowed under (taken
        as the asking begins: rules that come meanwhile are asked anew).
        """
        rules = self.authorize.rules()
        for path in self.paths:
            await self.authorize(self.request, path)
        self._rules = rules

    def holds(self) -> bool:
        return self.authorize.rules() is self._rules

    def recheck(self) -> defer.Deferred[bool]:
        """Whether the rules in force let the page go on (never a failure)."""
        return defer.ensureDeferred(self._recheck())

    async def _recheck(self) -> bool:
        try:
            await self.check()
        except Forbidden:
            return False
        except Exception:
            log.err(None, "LegacyStatus: asking www['authz'] again about a live log page")
            return False
        return True
