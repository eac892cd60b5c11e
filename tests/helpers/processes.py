"""Stopping a child process the tests started: politely, then for sure."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, *, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
