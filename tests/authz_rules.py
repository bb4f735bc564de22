"""
Rules of the kind sites write for C{www['authz']}, beyond Buildbot's own
matchers: the pages must obey them as the data API does.
"""

from __future__ import annotations

from typing import Any

from buildbot.data.exceptions import InvalidPathError
from buildbot.www.authz.endpointmatchers import EndpointMatcherBase, Match
from twisted.internet import defer


class LogTextMatcher(EndpointMatcherBase):
    """A log's text (the data API's C{.../contents} and C{.../raw})."""

    def match_LogChunkEndpointBase(self, epobject: Any, epdict: Any, options: Any) -> Any:
        return defer.succeed(Match(self.master))


class BuildGetMatcher(EndpointMatcherBase):
    """A build, as the data API's REST GET asks: the action is C{GET}."""

    def match_BuildEndpoint_GET(self, epobject: Any, epdict: Any, options: Any) -> Any:
        return defer.succeed(Match(self.master))


class BuilderMatcher(EndpointMatcherBase):
    """
    Anything of a builder (or of one of its builds, C{number}) named in
    the path by the builder's id, as a site's rule that hides a builder
    knows it.
    """

    def __init__(self, role: str, builder: str, number: int | None = None) -> None:
        super().__init__(role=role)
        self.builder = builder
        self.number = number

    @defer.inlineCallbacks
    def match(self, ep: Any, action: str = "get", options: Any = None) -> Any:
        try:
            _, epdict = self.master.data.getEndpoint(ep)
        except InvalidPathError:
            return None
        if "builderid" not in epdict:
            return None
        if self.number is not None and epdict.get("build_number") != self.number:
            return None
        builder = yield self.master.data.get(("builders", epdict["builderid"]))
        return Match(self.master) if builder and builder["name"] == self.builder else None


class EndpointsMatcher(EndpointMatcherBase):
    """The data API's endpoints of these classes (C{"StepEndpoint"}, C{"LogEndpoint"})."""

    def __init__(self, role: str, *names: str) -> None:
        super().__init__(role=role)
        self.names = names

    def match(self, ep: Any, action: str = "get", options: Any = None) -> Any:
        try:
            epobject, _ = self.master.data.getEndpoint(ep)
        except InvalidPathError:
            return defer.succeed(None)
        found = type(epobject).__name__ in self.names
        return defer.succeed(Match(self.master) if found else None)
