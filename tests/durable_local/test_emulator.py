"""The emulator keeps its timers only in memory; after a crash the stack re-arms them from SQLite.

Toy durable functions (``durable_toys``) run in a Lambda stand-in process; the emulator is
SIGKILLed while their timers are pending and started again on the same store.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devtools.durable_local._http import HEALTH_PATH, free_port, http_ok
from devtools.durable_local._process import ManagedProcess
from devtools.durable_local.emulator import EmulatorProcess
from tests.helpers.polling import wait_for

REGION = "us-east-1"
EXECUTION_TIMEOUT = 6


@pytest.fixture(scope="module")
def emulator_and_lambda(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorProcess, Any]]:
    state_dir: Path = tmp_path_factory.mktemp("emulator")
    emulator_port, lambda_port = free_port(), free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{emulator_port}",
    }
    standin = ManagedProcess(
        "lambda-standin",
        [
            sys.executable,
            "-m",
            "devtools.durable_local.invoke_standin",
            "--port",
            str(lambda_port),
            "--emulator-url",
            f"http://127.0.0.1:{emulator_port}",
            "--function",
            "waits=tests.durable_local.durable_toys:waits",
            "--function",
            "awaits-callback=tests.durable_local.durable_toys:awaits_callback",
            "--execution-timeout",
            str(EXECUTION_TIMEOUT),
        ],
        env=env,
        log_path=state_dir / "logs" / "lambda-standin.log",
        ready=lambda: http_ok(f"http://127.0.0.1:{lambda_port}{HEALTH_PATH}"),
    )
    emulator = EmulatorProcess(
        lambda_endpoint=f"http://127.0.0.1:{lambda_port}",
        state_dir=state_dir,
        region=REGION,
        env=env,
        port=emulator_port,
    )
    standin.start()
    try:
        emulator.start()
        client = boto3.client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{lambda_port}",
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        yield emulator, client
    finally:
        emulator.stop()
        standin.stop()


def _start(client: Any, function: str, name: str, payload: dict[str, Any]) -> str:
    response = client.invoke(
        FunctionName=function, InvocationType="Event", DurableExecutionName=name, Payload=json.dumps(payload)
    )
    assert response["StatusCode"] == 202
    return response["DurableExecutionArn"]


def _finished(client: Any, arn: str) -> dict[str, Any] | None:
    execution = client.get_durable_execution(DurableExecutionArn=arn)
    return execution if execution["Status"] != "RUNNING" else None


def _suspended(client: Any, arn: str, event_type: str) -> bool:
    events = client.get_durable_execution_history(DurableExecutionArn=arn).get("Events") or []
    return any(event.get("EventType") == event_type for event in events)


def test_waits_and_timeouts_pending_across_a_crash_still_fire(emulator_and_lambda: tuple[EmulatorProcess, Any]) -> None:
    emulator, client = emulator_and_lambda
    started = time.monotonic()
    waiting = _start(client, "waits", "wait-2s", {"seconds": 2})
    short_callback = _start(client, "awaits-callback", "callback-1s", {"callback_timeout": 1})
    unanswered = _start(client, "awaits-callback", "callback-forever", {})
    # Crash only once all three are suspended: the wait and both callbacks are checkpointed.
    for arn, event_type in (
        (waiting, "WaitStarted"),
        (short_callback, "CallbackStarted"),
        (unanswered, "CallbackStarted"),
    ):
        wait_for(lambda a=arn, e=event_type: _suspended(client, a, e), timeout=10, message=f"{event_type} of {arn}")

    emulator.kill()
    emulator.start()

    done = wait_for(lambda: _finished(client, waiting), timeout=10, message="the wait to complete")
    assert done["Status"] == "SUCCEEDED"
    assert json.loads(done["Result"]) == {"waited": 2}
    timed_out_callback = wait_for(lambda: _finished(client, short_callback), timeout=10, message="the callback timeout")
    assert timed_out_callback["Status"] == "FAILED"
    assert "timed out" in timed_out_callback["Error"]["ErrorMessage"].lower()
    whole = wait_for(
        lambda: _finished(client, unanswered), timeout=EXECUTION_TIMEOUT + 5, message="the execution timeout"
    )
    assert whole["Status"] == "TIMED_OUT"
    # The timeout counts from the original start, not from the restart.
    assert time.monotonic() - started < EXECUTION_TIMEOUT + 3


def test_a_callback_answered_after_a_crash_resumes_the_execution(
    emulator_and_lambda: tuple[EmulatorProcess, Any],
) -> None:
    emulator, client = emulator_and_lambda
    arn = _start(client, "awaits-callback", "callback-answered", {})
    callback_id = wait_for(
        lambda: next(
            (
                e["CallbackStartedDetails"]["CallbackId"]
                for e in client.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
                if "CallbackStartedDetails" in e
            ),
            None,
        ),
        timeout=10,
        message="the callback to start",
    )

    emulator.kill()
    emulator.start()
    client.send_durable_execution_callback_success(CallbackId=callback_id, Result=b'{"answer": 42}')

    done = wait_for(lambda: _finished(client, arn), timeout=10, message="the execution to finish")
    assert done["Status"] == "SUCCEEDED"
    assert json.loads(json.loads(done["Result"])) == {"answer": 42}


def test_a_repeated_start_with_another_payload_is_refused_like_lambda(
    emulator_and_lambda: tuple[EmulatorProcess, Any],
) -> None:
    _, client = emulator_and_lambda
    first = _start(client, "waits", "same-name", {"seconds": 0})
    assert _start(client, "waits", "same-name", {"seconds": 0}) == first
    with pytest.raises(client.exceptions.ClientError) as refused:
        _start(client, "waits", "same-name", {"seconds": 1})
    assert refused.value.response["Error"]["Code"] == "DurableExecutionAlreadyStartedException"
