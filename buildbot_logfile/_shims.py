"""
0.8's import paths for status plugins: C{buildbot.status} and its modules
C{base}, C{builder}, C{results} and C{logfile}, and the 0.8 interface names
in C{buildbot.interfaces}.

L{install} only teaches Python where to find them: a module is built when
something imports it, and a name of C{buildbot.interfaces} is looked up when
something asks for it.  Buildbot imports every installed www plugin at
master start, this package's too, so a master that never uses a 0.8 path
pays nothing for it.  Whatever Buildbot itself defines under a name wins:
the finder is asked last, and the interface names are looked up only when
the module has none.
"""

from __future__ import annotations

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


def _package() -> dict[str, Any]:
    return {"__path__": []}


def _base() -> dict[str, Any]:
    from buildbot_logfile import base

    names = ("StatusReceiverBase", "StatusReceiver", "StatusReceiverMultiService",
             "StatusReceiverService")  # fmt: skip
    return {name: getattr(base, name) for name in names}


def _results() -> dict[str, Any]:
    from buildbot.process import results

    return {name: getattr(results, name) for name in _RESULT_NAMES}


def _builder() -> dict[str, Any]:
    from buildbot_logfile import logfile, status

    return {
        "BuilderStatus": status.BuilderStatus,
        "BuildStatus": status.BuildStatus,
        "BuildStepStatus": status.BuildStepStatus,
        # 0.8.0-0.8.5 plugins import the channels from here.
        "STDOUT": logfile.STDOUT,
        "STDERR": logfile.STDERR,
        "HEADER": logfile.HEADER,
        **_results(),
    }


def _logfile() -> dict[str, Any]:
    from buildbot_logfile import logfile

    return {name: getattr(logfile, name) for name in logfile.__all__}


# What each 0.8 module holds, built when it is first imported.
MODULES: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "buildbot.status": ("0.8 status layer (buildbot-logfile)", _package),
    "buildbot.status.base": ("0.8 status receiver bases", _base),
    "buildbot.status.builder": ("0.8 builder status", _builder),
    "buildbot.status.results": ("0.8 build results", _results),
    "buildbot.status.logfile": ("0.8 step logs", _logfile),
}


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
        is_package = fullname == "buildbot.status"
        # A loader by protocol: importlib.abc would import more at start.
        return importlib.machinery.ModuleSpec(fullname, self, is_package=is_package)  # type: ignore[arg-type]

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module

    def exec_module(self, module: types.ModuleType) -> None:
        doc, contents = MODULES[module.__name__]
        module.__doc__ = doc
        for name, value in contents().items():
            if name == "__path__":
                module.__path__ = value
            else:
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
