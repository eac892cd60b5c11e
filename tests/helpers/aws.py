"""AWS for tests: dummy credentials (never a real account) and moto's DynamoDB in server mode on
127.0.0.1. No Django here: the durable tests (`-p no:django`) use it too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from devtools.durable_local._http import free_port

REGION = "us-east-1"


DUMMY = "testing"  # moto and the loopback fakes take any credentials


def fake_aws_credentials(
    monkeypatch: pytest.MonkeyPatch, region: str = REGION, *, key: str = DUMMY, secret: str = DUMMY
) -> None:
    """botocore needs a region and (dummy) credentials in every process; no profile, session token or
    endpoint override from the developer's environment leaks in."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@contextmanager
def moto_server() -> Iterator[str]:
    """moto in server mode on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
