"""The one bounded wait the tests use: poll, never sleep-and-hope, never hang."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"
) -> Any:
    """Poll until predicate() is truthy and return its value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}; last value: {value!r}")
        time.sleep(interval)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on the port (a predicate for `wait_for`)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
