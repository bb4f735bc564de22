"""A master whose LegacyStatus cannot start exits; a bad config is refused by checkconfig."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

from twisted.trial import unittest

BIN = os.path.dirname(sys.executable)

CONFIG = textwrap.dedent(
    """
    from buildbot.plugins import reporters, schedulers, util, worker
    c = BuildmasterConfig = {{}}
    c["db"] = {{"db_url": "sqlite:///state.sqlite"}}
    c["buildbotNetUsageData"] = None
    c["protocols"] = {{"pb": {{"port": "tcp:0:interface=127.0.0.1"}}}}
    c["workers"] = [worker.Worker("w1", "password")]
    c["builders"] = [util.BuilderConfig(name="b1", workernames=["w1"], factory=util.BuildFactory())]
    c["schedulers"] = [schedulers.ForceScheduler(name="force", builderNames=["b1"])]
    c["services"] = [reporters.LegacyStatus(http_port={http_port!r})]
    """
)


class StartupTests(unittest.TestCase):
    timeout = 120

    def master(self, http_port: str) -> str:
        basedir = os.path.abspath(self.mktemp())
        subprocess.run([os.path.join(BIN, "buildbot"), "create-master", "--quiet", basedir],
                       check=True)  # fmt: skip
        with open(os.path.join(basedir, "master.cfg"), "w") as f:
            f.write(CONFIG.format(http_port=http_port))
        return basedir

    def test_a_master_whose_port_is_taken_exits(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            basedir = self.master(f"tcp:{port}:interface=127.0.0.1")
            master = subprocess.Popen(
                [os.path.join(BIN, "buildbot"), "start", "--nodaemon", basedir],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                master.wait(timeout=30)  # Buildbot stops the reactor; nothing may hold it
            finally:
                master.kill()
                master.wait()
        with open(os.path.join(basedir, "twistd.log")) as f:
            twistd_log = f.read()
        self.assertIn("Address already in use", twistd_log)
        self.assertIn("BuildMaster startup failed", twistd_log)
        # and nothing else went wrong as it stopped
        self.assertEqual(twistd_log.count("Traceback"), 1, twistd_log)

    def test_checkconfig_refuses_a_port_twisted_cannot_parse(self) -> None:
        basedir = self.master("tcp:notaport")
        result = subprocess.run(
            [os.path.join(BIN, "buildbot"), "checkconfig", basedir],
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(
            "LegacyStatus: http_port 'tcp:notaport' is not a strports string Twisted understands",
            result.stdout + result.stderr,
        )
