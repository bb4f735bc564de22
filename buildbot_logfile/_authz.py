"""
Who may see what: the master's C{www['authz']} asked about the data API
path of what a page shows, as the data API itself would be asked.
"""

from __future__ import annotations

from typing import Any

from buildbot.www.authz import Forbidden
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

    def _authz(self) -> Any:
        return getattr(self.master.www, "authz", None)

    def restricted(self) -> bool:
        """Whether what a page shows depends on who asks: then it is cached privately."""
        return bool(getattr(self._authz(), "allowRules", None))

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
        authz = self._authz()
        if authz is not None:
            await authz.assertUserAllowed(path, VIEW, {}, {"anonymous": True})


class WwwUserAuthorizer(_Authorizer):
    """Under the master's www: what its authz lets this request's user see."""

    async def __call__(self, request: IRequest, path: DataPath) -> None:
        if self._authz() is not None:
            await self.master.www.assertUserAllowed(request, path, VIEW, {})
