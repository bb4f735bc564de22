"""A real in-process Buildbot master with a local worker, for benchmarks."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from buildbot.config.master import MasterConfig
from buildbot.interfaces import IConfigLoader
from buildbot.master import BuildMaster
from buildbot.plugins import worker
from twisted.internet import defer
from zope.interface import implementer

from tests.support import master_config, python_step  # noqa: F401  (re-exported)

# Not buildbot.test's helpers: importing buildbot.test turns every warning
# into an error for the whole process.


@implementer(IConfigLoader)
class DictLoader:
    def __init__(self, config_dict: dict[str, Any]) -> None:
        self.config_dict = config_dict

    def loadConfig(self) -> MasterConfig:
        return MasterConfig.loadFromDict(self.config_dict, "<dict>")


async def start_master(
    reactor: Any, config: dict[str, Any], basedir: str | None = None
) -> BuildMaster:
    basedir = basedir or tempfile.mkdtemp(prefix="bench-master-")
    os.makedirs(basedir, exist_ok=True)
    config.setdefault("workers", [worker.LocalWorker("local1", missing_timeout=0)])
    config.setdefault("protocols", {"null": {}})
    config["buildbotNetUsageData"] = None
    config.setdefault("db_url", "sqlite:///" + os.path.join(basedir, "state.sqlite"))
    master = BuildMaster(basedir, reactor=reactor, config_loader=DictLoader(config))
    master.config.db.db_url = config["db_url"]
    await master.db.setup(check_version=False)
    await master.db.model.upgrade()
    master.db.setup = lambda: None
    await master.startService()
    return master


async def run_build(master: BuildMaster, builder: str) -> dict[str, Any]:
    """Force a build and wait until the master has finished it."""
    finished: defer.Deferred[dict[str, Any]] = defer.Deferred()

    def on_finished(_key: Any, build: dict[str, Any]) -> None:
        if not finished.called:
            finished.callback(build)

    consumer = await master.mq.startConsuming(on_finished, ("builds", None, "finished"))
    builderid = await master.data.updates.findBuilderId(builder)
    await master.data.control("force", {"builderid": builderid}, ("forceschedulers", "force"))
    build = await finished
    consumer.stopConsuming()
    return build


async def stop_master(master: BuildMaster) -> None:
    await master.stopService()
    await master.db.pool.stop()
