"""
Child processes for the tests that run servers of their own (the
databases, the router, masters and workers): free ports, waiting for a
state with a deadline, starting a command to its end, and whether a
process is still there.  These block; they run where the reactor is not
needed, or in a thread.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

# How long the harness waits for a process or a state before it fails.
START_TIMEOUT = 90.0


def free_ports(count: int) -> list[int]:
    """C{count} distinct TCP ports free on loopback now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for(check: Callable[[], Any], what: str, timeout: float = START_TIMEOUT) -> Any:
    """
    Blocking: ask C{check()} until it gives something true, and return it;
    fail when C{timeout} seconds ran out.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def stat_fields(pid: int | str) -> list[str]:
    """
    The fields of C{/proc/<pid>/stat} that follow the command's name (its
    state first, then its parent's pid...: proc(5)'s fields from the
    third on); none for a process that is gone.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def process_alive(pid: int) -> bool:
    """Whether C{pid} runs (a zombie no longer does)."""
    fields = stat_fields(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def process_gone(pid: int) -> bool:
    """Whether C{pid} is gone, reaped too: a zombie still holds its pid (and twistd's pidfile)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


def run(command: list[str], what: str, timeout: float = START_TIMEOUT, **kwargs: Any) -> str:
    """Run a command to its end; its output, or an error that shows it."""
    try:
        done = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            **kwargs,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{what}: no end after {timeout:.0f} s: {e.output!r}") from e
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode:
        raise AssertionError(f"{what} failed ({done.returncode}):\n{output}")
    return output
