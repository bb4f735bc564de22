"""0.8 import paths and LegacyStatus configuration errors."""

from __future__ import annotations

import sys
import types

import pytest
from buildbot.config.errors import ConfigErrors

import buildbot_logfile
from buildbot_logfile import compat


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
    assert IStatusLog.implementedBy(logfile.LogFile) and ILogFile.implementedBy(logfile.HTMLLogFile)
    assert IStatusLogConsumer is compat.IStatusLogConsumer
    assert logfile.LogFile is buildbot_logfile.LogFile
    for name in ("SUCCESS", "WARNINGS", "FAILURE", "SKIPPED", "EXCEPTION", "RETRY", "CANCELLED"):
        assert getattr(builder, name) == getattr(results, name) == getattr(status_results, name)
    assert builder.Results[builder.FAILURE] == "failure"


def test_install_only_adds_what_is_missing(monkeypatch) -> None:
    own = types.ModuleType("buildbot.status.base")
    sentinel = object()
    own.StatusReceiver = sentinel
    monkeypatch.setitem(sys.modules, "buildbot.status.base", own)
    import buildbot.interfaces

    monkeypatch.setattr(buildbot.interfaces, "IStatusReceiver", sentinel, raising=False)
    compat.install()
    assert own.StatusReceiver is sentinel
    assert own.StatusReceiverMultiService is compat.StatusReceiverMultiService
    assert buildbot.interfaces.IStatusReceiver is sentinel


def test_reporters_plugin() -> None:
    from buildbot.plugins import reporters

    assert reporters.LegacyStatus is buildbot_logfile.LegacyStatus


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"receivers": "not a list"}, "receivers must be a list"),
        ({"logdir": ""}, "logdir must be a non-empty"),
        ({"http_port": 8011.5}, "http_port must be a strports string"),
    ],
)
def test_config_errors(kwargs, message) -> None:
    with pytest.raises(ConfigErrors) as e:
        buildbot_logfile.LegacyStatus(**kwargs)
    assert message in str(e.value)
