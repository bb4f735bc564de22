"""
0.8's import paths for status plugins: C{buildbot.status} and its modules
(see L{MODULES}), C{buildbot.sourcestamp}, and the 0.8 interface names in
C{buildbot.interfaces}.

L{install} only teaches Python where to find them: a module is built when
something imports it, and a name of C{buildbot.interfaces} is looked up when
something asks for it.  Buildbot imports every installed www plugin at
master start, this package's too, so a master that never uses a 0.8 path
pays nothing for it.  Whatever Buildbot itself defines under a name wins:
the finder is asked last, and the interface names are looked up only when
the module has none.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

_INTERFACE_NAMES = (
    "IStatusReceiver",
    "IStatusLog",
    "ILogFile",
    "IStatusLogConsumer",
    "IStatus",
    "IBuildSetStatus",
    "IBuildRequestStatus",
    "ISlaveStatus",
    "ISchedulerStatus",
    "IEventSource",
    "IBuilderStatus",
    "IBuildStatus",
    "IBuildStepStatus",
    "IStatusEvent",
    "ITestResult",
    "IControl",
    "IBuilderControl",
    "IBuildControl",
    "LOG_CHANNEL_STDOUT",
    "LOG_CHANNEL_STDERR",
    "LOG_CHANNEL_HEADER",
)

_RESULT_NAMES = (
    "SUCCESS",
    "WARNINGS",
    "FAILURE",
    "SKIPPED",
    "EXCEPTION",
    "RETRY",
    "CANCELLED",
    "Results",
    "worst_status",
)


def _package(name: str) -> Callable[[], dict[str, Any]]:
    """
    A 0.8 package whose modules are also its attributes, each built when
    first asked for: 0.8's C{buildbot/status/__init__.py} imported most of
    its modules, and plugins wrote C{from buildbot import status} and then
    C{status.builder.Results}.
    """

    def submodule(attribute: str) -> Any:
        fullname = f"{name}.{attribute}"
        if fullname not in MODULES:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
        return importlib.import_module(fullname)

    return lambda: {"__path__": [], "__getattr__": submodule}


def _base() -> dict[str, Any]:
    from buildbot_logfile import base

    names = ("StatusReceiverBase", "StatusReceiver", "StatusReceiverMultiService",
             "StatusReceiverService")  # fmt: skip
    return {name: getattr(base, name) for name in names}


def _results() -> dict[str, Any]:
    from buildbot.process import results

    return {name: getattr(results, name) for name in _RESULT_NAMES}


def _builder() -> dict[str, Any]:
    # 0.8's buildbot.status.builder re-exported most of the status layer,
    # and older plugins import all of it from there.
    return {
        **_build(),
        **_buildstep(),
        **_slave(),
        **_buildrequest(),
        **_master(),
        "BuildSetStatus": _buildset()["BuildSetStatus"],
        "BuilderStatus": _status().BuilderStatus,
        **_logfile(),
        **_results(),
    }


def _status() -> Any:
    from buildbot_logfile import status

    return status


def _build() -> dict[str, Any]:
    return {"BuildStatus": _status().BuildStatus}


def _buildstep() -> dict[str, Any]:
    return {"BuildStepStatus": _status().BuildStepStatus}


def _slave() -> dict[str, Any]:
    return {"SlaveStatus": _status().SlaveStatus}


def _buildrequest() -> dict[str, Any]:
    return {"BuildRequestStatus": _status().BuildRequestStatus}


def _buildset() -> dict[str, Any]:
    from buildbot_logfile._buildset_summary import BuildSetSummaryNotifierMixin

    return {
        "BuildSetStatus": _status().BuildSetStatus,
        "BuildSetSummaryNotifierMixin": BuildSetSummaryNotifierMixin,
    }


def _master() -> dict[str, Any]:
    from buildbot_logfile.bridge import LegacyStatus

    return {"Status": LegacyStatus}


def _sourcestamp() -> dict[str, Any]:
    return {"SourceStamp": _status().SourceStamp}


def _html() -> dict[str, Any]:
    from buildbot_logfile._webstatus import WebStatus

    return {"WebStatus": WebStatus}


def _web_base() -> dict[str, Any]:
    from buildbot_logfile import _web_base

    names = ("HtmlResource", "ActionResource", "StaticHTML", "AccessorMixin", "ContextMixin",
             "BuildLineMixin", "Box", "IBox", "ICurrentBox", "ITopBox", "IHTMLLog",
             "getAndCheckProperties", "build_get_class", "map_branches", "abbreviate_age",
             "path_to_root", "path_to_authfail", "path_to_authzfail", "path_always_viewable",
             "path_to_builders", "path_to_builder", "path_to_build", "path_to_step",
             "path_to_slave", "path_to_change", "css_classes", "plural")  # fmt: skip
    return {name: getattr(_web_base, name) for name in names}


def _web_authz() -> dict[str, Any]:
    from buildbot_logfile._webstatus import Authz

    return {"Authz": Authz}


def _status_push() -> dict[str, Any]:
    from buildbot_logfile._status_push import HttpStatusPush, StatusPush

    return {"StatusPush": StatusPush, "HttpStatusPush": HttpStatusPush}


def _mail() -> dict[str, Any]:
    from buildbot_logfile import _mail

    return {name: getattr(_mail, name) for name in _mail.__all__}


def _words() -> dict[str, Any]:
    from buildbot_logfile import _words

    return {name: getattr(_words, name) for name in _words.__all__}


def _persistent_queue() -> dict[str, Any]:
    from buildbot_logfile import _persistent_queue

    names = ("IQueue", "MemoryQueue", "DiskQueue", "PersistentQueue", "IndexedQueue",
             "ToIndexedQueue", "ReadFile", "WriteFile")  # fmt: skip
    return {name: getattr(_persistent_queue, name) for name in names}


def _status_json() -> dict[str, Any]:
    from buildbot_logfile._json_status import FilterOut

    return {"FilterOut": FilterOut}


def _event() -> dict[str, Any]:
    from buildbot_logfile._builder_status import Event

    return {"Event": Event}


def _client() -> dict[str, Any]:
    from buildbot_logfile import _pb_status

    return {name: getattr(_pb_status, name) for name in _pb_status.__all__}


def _logfile() -> dict[str, Any]:
    from buildbot_logfile import logfile

    return {name: getattr(logfile, name) for name in logfile.__all__}


# What each 0.8 module holds, built when it is first imported.
MODULES: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "buildbot.status": ("0.8 status layer (buildbot-logfile)", _package("buildbot.status")),
    "buildbot.status.base": ("0.8 status receiver bases", _base),
    "buildbot.status.builder": ("0.8 builder status", _builder),
    "buildbot.status.build": ("0.8 build status", _build),
    "buildbot.status.buildstep": ("0.8 step status", _buildstep),
    "buildbot.status.slave": ("0.8 worker (slave) status", _slave),
    "buildbot.status.buildrequest": ("0.8 build request status", _buildrequest),
    "buildbot.status.buildset": ("0.8 buildset status and summaries", _buildset),
    "buildbot.status.master": ("0.8 Status", _master),
    "buildbot.status.results": ("0.8 build results", _results),
    "buildbot.status.logfile": ("0.8 step logs", _logfile),
    "buildbot.status.client": ("0.8 PB status listener", _client),
    "buildbot.status.event": ("0.8 builder events", _event),
    "buildbot.status.status_push": ("0.8 status push", _status_push),
    "buildbot.status.persistent_queue": ("0.8 status push queues", _persistent_queue),
    "buildbot.status.mail": ("0.8 mail notifier", _mail),
    "buildbot.status.words": ("0.8 IRC status bot", _words),
    "buildbot.sourcestamp": ("0.8 source stamps", _sourcestamp),
    "buildbot.status.html": ("0.8 web status", _html),
    "buildbot.status.web": ("0.8 web status pages", _package("buildbot.status.web")),
    "buildbot.status.web.base": ("0.8 web status resources", _web_base),
    "buildbot.status.web.baseweb": ("0.8 web status", _html),
    "buildbot.status.web.authz": ("0.8 web status authorization", _web_authz),
    "buildbot.status.web.status_json": ("0.8 JSON status", _status_json),
}
_PACKAGES = ("buildbot.status", "buildbot.status.web")


class _Finder:
    """
    Finds the 0.8 modules that nothing before it on C{sys.meta_path} did,
    and loads them (a meta path finder and loader, by protocol).
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        is_package = fullname in _PACKAGES
        # A loader by protocol: importlib.abc would import more at start.
        return importlib.machinery.ModuleSpec(fullname, self, is_package=is_package)  # type: ignore[arg-type]

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module

    def exec_module(self, module: types.ModuleType) -> None:
        doc, contents = MODULES[module.__name__]
        module.__doc__ = doc
        for name, value in contents().items():
            setattr(module, name, value)


_finder = _Finder()


def _interface_name(name: str) -> Any:
    from buildbot_logfile import interfaces

    if name in _INTERFACE_NAMES:
        return getattr(interfaces, name)
    raise AttributeError(f"module 'buildbot.interfaces' has no attribute {name!r}")


def install() -> None:
    """Make 0.8's import paths importable; idempotent, and builds nothing."""
    if _finder in sys.meta_path:
        return
    sys.meta_path.append(_finder)
    import buildbot.interfaces

    namespace = vars(buildbot.interfaces)
    previous = namespace.get("__getattr__")
    if previous is None:
        namespace["__getattr__"] = _interface_name
        return

    def chained(name: str) -> Any:
        # Buildbot's own hook answers first.
        try:
            return previous(name)
        except AttributeError:
            return _interface_name(name)

    namespace["__getattr__"] = chained
