"""
make demo: a master from master.cfg.example under demo/, in the foreground,
with a sample build and the URLs of its logs.  Ctrl-C stops it; running it
again reuses demo/ and runs another build.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MASTER = ROOT / "demo" / "master"
BIN = Path(sys.executable).parent
UI = "http://127.0.0.1:8010/"
PAGES = "http://127.0.0.1:8011/"


def api(path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        UI + "api/v2/" + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def wait_for(what: str, check, master: subprocess.Popen, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if master.poll() is not None:
            sys.exit(f"the master stopped while waiting for {what}; see {MASTER / 'twistd.log'}")
        try:
            result = check()
            if result:
                return result
        except (urllib.error.URLError, OSError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.3)
    sys.exit(f"timed out waiting for {what}; see {MASTER / 'twistd.log'}")


def create_master() -> None:
    MASTER.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [BIN / "buildbot", "create-master", "--quiet", "--force", "--relocatable", MASTER],
        check=True,
    )
    shutil.copy(ROOT / "master.cfg.example", MASTER / "master.cfg")
    subprocess.run([BIN / "buildbot", "checkconfig", MASTER], check=True, stdout=subprocess.DEVNULL)


def run_sample_build(master: subprocess.Popen) -> None:
    builder = wait_for("the web UI", lambda: api("builders/demo")["builders"][0], master)
    newest = api("builders/demo/builds?order=-number&limit=1")["builds"]
    previous = newest[0]["number"] if newest else 0
    api(
        "forceschedulers/force",
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "force",
            "params": {"builderid": str(builder["builderid"])},
        },
    )

    def started_sample_build() -> int | None:
        build = api("builders/demo/builds?order=-number&limit=1")["builds"][0]
        if build["number"] <= previous:
            return None
        steps = api(f"builds/{build['buildid']}/steps")["steps"]
        if any(s["name"] == "colours" and s["started_at"] for s in steps):
            return build["number"]
        return None

    number = wait_for("the sample build", started_sample_build, master)
    log = f"builders/demo/builds/{number}/steps/colours/logs/stdio"
    print()
    print(f"legacy log: {PAGES}{log}/text")
    print(f"legacy log page (HTML): {PAGES}{log}")
    print(f"modern UI: {UI}#/builders/{builder['builderid']}/builds/{number}")
    print("(the build runs for several seconds; Ctrl-C stops the master)", flush=True)


def main() -> None:
    create_master()
    # The master and its in-process worker share this foreground process
    # group, so Ctrl-C reaches both.
    master = subprocess.Popen([BIN / "buildbot", "start", "--nodaemon", MASTER])
    try:
        run_sample_build(master)
        master.wait()
    except KeyboardInterrupt:
        master.send_signal(signal.SIGINT)
        master.wait()
    sys.exit(0 if master.returncode in (0, -signal.SIGINT) else master.returncode)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
