"""0.8 import paths: lazy, and never in Buildbot's way; LegacyStatus configuration errors."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest
from buildbot.config.errors import ConfigErrors

import buildbot_logfile
from buildbot_logfile import interfaces
from tests.support import readme_table


def run_python(code: str) -> str:
    """Run C{code} in a fresh interpreter, as a master starts; its output."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_08_import_paths() -> None:
    from buildbot.interfaces import (
        LOG_CHANNEL_HEADER,
        LOG_CHANNEL_STDERR,
        LOG_CHANNEL_STDOUT,
        ILogFile,
        IStatusLog,
        IStatusLogConsumer,
        IStatusReceiver,
    )
    from buildbot.process import results
    from buildbot.status import base, builder, logfile
    from buildbot.status import results as status_results

    assert (LOG_CHANNEL_STDOUT, LOG_CHANNEL_STDERR, LOG_CHANNEL_HEADER) == (0, 1, 2)
    assert IStatusReceiver.implementedBy(base.StatusReceiverMultiService)
    assert IStatusReceiver.implementedBy(base.StatusReceiverService)
    assert base.StatusReceiver is base.StatusReceiverBase
    assert IStatusLog.implementedBy(logfile.LogFile)
    assert ILogFile.implementedBy(logfile.HTMLLogFile)
    assert IStatusLogConsumer is interfaces.IStatusLogConsumer
    assert logfile.LogFile is buildbot_logfile.LogFile
    assert (builder.STDOUT, builder.STDERR, builder.HEADER) == (0, 1, 2)
    for name in ("SUCCESS", "WARNINGS", "FAILURE", "SKIPPED", "EXCEPTION", "RETRY", "CANCELLED"):
        assert getattr(builder, name) == getattr(results, name) == getattr(status_results, name)
    assert builder.Results[builder.FAILURE] == "failure"


def test_the_status_objects_provide_08_interfaces() -> None:
    from buildbot import interfaces as bb_interfaces
    from buildbot.status.builder import BuilderStatus, BuildStatus, BuildStepStatus, Status
    from buildbot.status.buildrequest import BuildRequestStatus
    from buildbot.status.buildset import BuildSetStatus
    from buildbot.status.event import Event
    from buildbot.status.slave import SlaveStatus

    provided = {
        "IStatus": Status,
        "IBuilderStatus": BuilderStatus,
        "IEventSource": BuilderStatus,
        "IBuildStatus": BuildStatus,
        "IBuildStepStatus": BuildStepStatus,
        "ISlaveStatus": SlaveStatus,
        "IBuildRequestStatus": BuildRequestStatus,
        "IBuildSetStatus": BuildSetStatus,
        "IStatusEvent": Event,
    }
    for name, cls in provided.items():
        assert getattr(bb_interfaces, name).implementedBy(cls), name
    assert not bb_interfaces.IBuildStatus.implementedBy(BuildStepStatus)
    for name in ("ISchedulerStatus", "ITestResult"):
        assert getattr(bb_interfaces, name) is getattr(interfaces, name)


def test_every_name_of_the_readme_import_table_imports() -> None:
    table = readme_table("### Import paths")
    assert len(table) >= 12
    for module_name, names in table.items():
        module = importlib.import_module(module_name.strip("`"))
        for name in names:
            assert getattr(module, name) is not None, f"{module_name}.{name}"
    builder = importlib.import_module("buildbot.status.builder")
    assert builder.Status is buildbot_logfile.LegacyStatus
    assert builder.LogFile is buildbot_logfile.LogFile


def test_a_master_that_does_not_use_the_package_gets_none_of_it() -> None:
    # Buildbot loads every installed www plugin on every master.
    out = run_python("""
        import sys
        from importlib.metadata import entry_points
        import buildbot.interfaces, twisted.web.resource
        before, finders = set(sys.modules), list(sys.meta_path)
        eps = entry_points()  # on Python 3.9 a dict of groups
        www = eps.select(group="buildbot.www") if hasattr(eps, "select") else eps["buildbot.www"]
        (plugin,) = [ep for ep in www if ep.name == "legacy_logs"]
        plugin.load()
        print(sorted(set(sys.modules) - before))
        print(sys.meta_path == finders, "__getattr__" in vars(buildbot.interfaces))
    """)
    assert out.splitlines() == ["['buildbot_legacy_logs']", "True False"]


def test_a_0_8_path_is_built_when_imported() -> None:
    out = run_python("""
        import sys
        import buildbot_logfile
        from buildbot.status.base import StatusReceiverMultiService
        from buildbot.interfaces import IStatusReceiver
        print(StatusReceiverMultiService.__module__, IStatusReceiver.__name__)
        print("buildbot_logfile.bridge" in sys.modules, "buildbot.status.logfile" in sys.modules)
    """)
    assert out.splitlines() == ["buildbot_logfile.base IStatusReceiver", "False False"]


def test_the_08_packages_give_their_modules_as_attributes() -> None:
    # 0.8's buildbot/status/__init__.py imported its modules: plugins
    # wrote `from buildbot import status` and then `status.builder.Results`.
    out = run_python("""
        import sys
        import buildbot_logfile
        from buildbot import status
        print("buildbot.status.builder" in sys.modules)
        print(status.builder.Results[status.builder.FAILURE])
        print(status.base.StatusReceiverMultiService.__name__, end=" ")
        print(status.web.base.HtmlResource.__name__)
        print(status.builder is sys.modules["buildbot.status.builder"])
        for package, name in ((status, "nothing"), (status.web, "nothing"), (status, "__all__")):
            try:
                getattr(package, name)
            except AttributeError as e:
                print(e)
    """)
    assert out.splitlines() == [
        "False",
        "failure",
        "StatusReceiverMultiService HtmlResource",
        "True",
        "module 'buildbot.status' has no attribute 'nothing'",
        "module 'buildbot.status.web' has no attribute 'nothing'",
        "module 'buildbot.status' has no attribute '__all__'",
    ]


def test_configuring_legacy_status_makes_the_paths_importable() -> None:
    out = run_python("""
        from buildbot.plugins import reporters
        status = reporters.LegacyStatus()
        from buildbot.status.builder import SUCCESS, BuildStatus
        from buildbot_logfile import status
        print(SUCCESS, BuildStatus is status.BuildStatus)
    """)
    assert out.split() == ["0", "True"]


@pytest.mark.parametrize(
    "path",
    [
        "buildbot.status.base.StatusReceiverMultiService",
        "buildbot.status.base.StatusReceiverService",
        "buildbot.status.status_push.StatusPush",
        "buildbot.status.status_push.HttpStatusPush",
        "buildbot.status.mail.MailNotifier",
        "buildbot.status.words.IRC",
        "buildbot.status.client.PBListener",
        "buildbot.status.html.WebStatus",
    ],
)
def test_08_receivers_extend_compare_attrs_as_a_list(path: str) -> None:
    # As Mozilla's Pulse did: StatusPush.compare_attrs + [...].
    module_name, name = path.rsplit(".", 1)
    base = getattr(importlib.import_module(module_name), name)

    class Extended(base):  # type: ignore[misc,valid-type]
        compare_attrs = base.compare_attrs + ["queuedir"]  # noqa: RUF005  (0.8 plugins' code)

    assert Extended.compare_attrs[-1] == "queuedir"


def test_a_receiver_compares_by_the_attributes_it_added() -> None:
    from buildbot.status.base import StatusReceiverMultiService

    class Receiver(StatusReceiverMultiService):
        compare_attrs = StatusReceiverMultiService.compare_attrs + ["queuedir"]  # noqa: RUF005

        def __init__(self, queuedir: str) -> None:
            super().__init__()
            self.queuedir = queuedir

    assert Receiver("a") == Receiver("a")
    assert Receiver("a") != Receiver("b")


def test_what_buildbot_defines_wins() -> None:
    out = run_python("""
        import importlib.machinery, sys, types
        import buildbot.interfaces

        class Theirs:
            def find_spec(self, name, path, target=None):
                if name == "buildbot.status.results":
                    return importlib.machinery.ModuleSpec(name, self)
            def create_module(self, spec):
                module = types.ModuleType(spec.name)
                module.SUCCESS = "theirs"
                return module
            def exec_module(self, module):
                pass

        sys.meta_path.insert(0, Theirs())
        buildbot.interfaces.IStatusReceiver = "theirs too"
        import buildbot_logfile
        from buildbot.status.results import SUCCESS
        from buildbot.interfaces import IStatusReceiver, IStatusLog
        print(SUCCESS, IStatusReceiver, IStatusLog.__module__)
    """)
    assert out.split() == ["theirs", "theirs", "too", "buildbot_logfile.interfaces"]


def test_reporters_plugin() -> None:
    from buildbot.plugins import reporters

    assert reporters.LegacyStatus is buildbot_logfile.LegacyStatus


class _Receiver:
    def builderAdded(self, name, builder):
        return None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"receivers": "not a list"}, "receivers must be a list"),
        ({"receivers": [object()]}, "receivers[0] (<object object at"),
        ({"receivers": [_Receiver(), object()]}, "is not a 0.8 status receiver"),
        ({"receivers": [_Receiver]}, "is a class, not a receiver: write _Receiver(...)"),
        ({"logdir": ""}, "logdir must be a non-empty"),
        ({"http_port": 8011.5}, "http_port must be a strports string"),
        ({"http_port": 70000}, "70000 is not a port number"),
        ({"http_port": "tcp:notaport"}, "'tcp:notaport' is not a strports string Twisted"),
        ({"http_port": "nonsense:1"}, "Unknown endpoint type"),
    ],
)
def test_config_errors(kwargs, message) -> None:
    with pytest.raises(ConfigErrors) as e:
        buildbot_logfile.LegacyStatus(**kwargs)
    assert message in str(e.value)
