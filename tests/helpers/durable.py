"""The console pointed at a durable stack: the settings and the AWS environment a test sets from the
stack's `env` (devtools/durable_local/stack.py `LocalDurableStack.env`, what `make run-durable`
writes to var/durable/console.env)."""

from __future__ import annotations

from typing import Any

import pytest

DISCARD_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused


def durable_engine_never_reached(settings: Any) -> None:
    """New searches go to the durable engine, at an address where nothing listens (with the
    `dispatch_send` stub, its start is never even tried)."""
    settings.MATCHING_WORKFLOW_URL = DISCARD_URL
    settings.MATCHING_WORKFLOW_AUTH_MODE = "api_key"
    settings.MATCHING_WORKFLOW_API_KEY = "k"


def emulator_lambda(stack: Any) -> Any:
    """A boto3 Lambda client on the local stack's emulator itself (past the Durable API and the stand-in)."""
    import boto3

    return boto3.client(
        "lambda",
        endpoint_url=stack.emulator_url,
        region_name=stack.config.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def use_stack_credentials(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *, dynamodb: bool = False) -> None:
    """The stack's AWS credentials and region in this process (with `dynamodb`, its DynamoDB too)."""
    names = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"]
    for name in names + (["AWS_ENDPOINT_URL_DYNAMODB"] if dynamodb else []):
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def point_console_at_stack(
    env: dict[str, str],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    url: str | None = None,
    auth_mode: str = "api_key",
    mirror: bool = True,
) -> None:
    """The console's durable settings from the stack's `env`. `url` stands in for the Durable API's
    (a proxy in front of it); `mirror` also points the execution mirror at the stack's state table."""
    settings.MATCHING_WORKFLOW_URL = url or env["MATCHING_WORKFLOW_URL"]
    settings.MATCHING_WORKFLOW_AUTH_MODE = auth_mode
    settings.MATCHING_WORKFLOW_SIGV4_SERVICE = env["MATCHING_WORKFLOW_SIGV4_SERVICE"]
    settings.MATCHING_WORKFLOW_API_KEY = env["MATCHING_WORKFLOW_API_KEY"] if auth_mode == "api_key" else ""
    settings.MATCHING_WORKFLOW_API_KEY_HEADER = env["MATCHING_WORKFLOW_API_KEY_HEADER"]
    settings.MATCHING_WORKFLOW_CALLBACK_URL = env["MATCHING_WORKFLOW_CALLBACK_URL"]
    settings.MATCHING_WEBHOOK_SECRET = env["MATCHING_WEBHOOK_SECRET"]
    settings.MATCHING_INTERNAL_TOKEN = env["MATCHING_INTERNAL_TOKEN"]
    settings.AWS_REGION = env["AWS_REGION"]
    if mirror:
        settings.MATCHING_WORKFLOW_STATE_TABLE = env["MATCHING_STATE_TABLE"]
    use_stack_credentials(env, monkeypatch, dynamodb=mirror)
