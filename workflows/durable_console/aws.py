"""boto3 clients for the console's AWS reads, built once per process and configuration."""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

_clients: dict[tuple, Any] = {}
_lock = threading.Lock()


def cached_client(
    service: str,
    *,
    region: str,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
    max_pool_connections: int = 10,
) -> Any:
    """A low-level client (thread-safe). The endpoint override variables are part of the key,
    because tests and local stacks point a running process at moto or the emulator."""
    endpoint_var = f"AWS_ENDPOINT_URL_{service.upper()}"
    key = (
        service,
        region,
        connect_timeout,
        read_timeout,
        max_attempts,
        max_pool_connections,
        os.environ.get(endpoint_var, ""),
        os.environ.get("AWS_ENDPOINT_URL", ""),
    )
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = boto3.session.Session().client(
                service,
                region_name=region,
                config=Config(
                    # botocore's `max_attempts` counts retries; `total_max_attempts` counts tries,
                    # which is what our callers mean (1 = one try, no retry).
                    retries={"mode": "standard", "total_max_attempts": max_attempts},
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    max_pool_connections=max_pool_connections,
                ),
            )
            _clients[key] = client
    return client
