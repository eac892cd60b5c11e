"""Tiny durable functions for exercising the emulator's timers (hosted by the Lambda stand-in)."""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, WaitForCallbackConfig


@durable_execution
def waits(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    context.wait(Duration.from_seconds(int(event["seconds"])), name="pause")
    return {"waited": event["seconds"]}


@durable_execution
def awaits_callback(event: dict[str, Any], context: DurableContext) -> Any:
    timeout = Duration.from_seconds(int(event.get("callback_timeout", 0)))
    return context.wait_for_callback(
        lambda _id, _ctx: None, name="answer", config=WaitForCallbackConfig(timeout=timeout)
    )
