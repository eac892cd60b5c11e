"""The console's reads of durable executions: `GetDurableExecution` and `GetDurableExecutionHistory`.

Through boto3's Lambda client (API version 2025-12-01 operations in botocore ≥ 1.42), so
`AWS_ENDPOINT_URL_LAMBDA` points it at the local stand-in / emulator. ARNs are opaque: the local
emulator's are not real ARNs, so they are passed through, never parsed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from workflows.durable_console.aws import cached_client

# GetDurableExecution's `Status`.
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
TIMED_OUT = "TIMED_OUT"
STOPPED = "STOPPED"
TERMINAL_STATUSES = frozenset({SUCCEEDED, FAILED, TIMED_OUT, STOPPED})
# Still alive, just not running right now (DELETING counts as gone).
LIVE_STATUSES = frozenset({RUNNING, "PAUSING", "PAUSED"})

_EXECUTION_END_EVENTS = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionStopped"})


class DurableExecutionsError(Exception):
    """Base class: reading a durable execution failed."""


class DurableExecutionsConfigError(DurableExecutionsError):
    """The console cannot build a Lambda client from its settings."""


class DurableExecutionNotFound(DurableExecutionsError):
    """No such execution (never started, or deleted after its retention period)."""


class DurableExecutionsUnavailable(DurableExecutionsError):
    """Lambda could not be reached, throttled, or refused the request for another reason."""


@dataclass(frozen=True)
class DurableExecution:
    arn: str
    name: str
    status: str
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    error_type: str = ""
    error_message: str = ""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def error_text(self) -> str:
        return ": ".join(part for part in (self.error_type, self.error_message) if part)


@dataclass(frozen=True)
class HistoryEvent:
    event_id: int
    event_type: str  # e.g. StepStarted, WaitSucceeded, CallbackTimedOut, ExecutionStopped
    at: dt.datetime
    name: str = ""  # the operation's name (a step's, a wait's, a callback's)
    operation_id: str = ""
    sub_type: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ends_execution(self) -> bool:
        return self.event_type in _EXECUTION_END_EVENTS


@dataclass(frozen=True)
class LambdaReadConfig:
    region: str
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_attempts: int = 3
    history_page_size: int = 1000

    @classmethod
    def from_settings(cls) -> LambdaReadConfig:
        region = settings.AWS_REGION  # AWS_REGION, else AWS_DEFAULT_REGION (snowbuddy/settings.py)
        if not region:
            raise DurableExecutionsConfigError("AWS_REGION (or AWS_DEFAULT_REGION) is required to read executions")
        return cls(region=region)


def _lambda_client(config: LambdaReadConfig) -> Any:
    return cached_client(
        "lambda",
        region=config.region,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_attempts=config.max_attempts,
    )


class DurableExecutionsReader:
    def __init__(self, config: LambdaReadConfig, client: Any | None = None):
        self.config = config
        self.client = client if client is not None else _lambda_client(config)

    @classmethod
    def from_settings(cls) -> DurableExecutionsReader:
        return cls(LambdaReadConfig.from_settings())

    def get(self, arn: str) -> DurableExecution:
        response = self._call("get_durable_execution", DurableExecutionArn=arn)
        error = response.get("Error") or {}
        return DurableExecution(
            arn=response.get("DurableExecutionArn") or arn,
            name=response.get("DurableExecutionName") or "",
            status=response.get("Status") or "",
            started_at=response.get("StartTimestamp"),
            ended_at=response.get("EndTimestamp"),
            error_type=error.get("ErrorType") or "",
            error_message=error.get("ErrorMessage") or "",
        )

    def history(self, arn: str) -> Iterator[HistoryEvent]:
        """Every event of the execution, oldest first, following NextMarker."""
        params: dict[str, Any] = {"DurableExecutionArn": arn, "MaxItems": self.config.history_page_size}
        while True:
            response = self._call("get_durable_execution_history", **params)
            for raw in response.get("Events") or []:
                yield _history_event(raw)
            marker = response.get("NextMarker")
            if not marker:
                return
            params = {**params, "Marker": marker}

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return getattr(self.client, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            message = f"{code}: {error.get('Message', '')}".strip()
            if code == "ResourceNotFoundException":
                raise DurableExecutionNotFound(message) from exc
            raise DurableExecutionsUnavailable(message) from exc
        except BotoCoreError as exc:
            raise DurableExecutionsUnavailable(str(exc)) from exc


def _error_detail(error: dict[str, Any] | None) -> dict[str, Any]:
    payload = (error or {}).get("Payload") or {}
    return {k: v for k, v in (("type", payload.get("ErrorType")), ("message", payload.get("ErrorMessage"))) if v}


def _history_event(raw: dict[str, Any]) -> HistoryEvent:
    """Keep what a timeline needs (errors, retries, waits, callback ids), never step payloads."""
    event_type = raw.get("EventType") or "Unknown"
    detail: dict[str, Any] = {}
    for key, value in raw.items():
        if not key.endswith("Details") or not isinstance(value, dict):
            continue
        if "Error" in value:
            detail["error"] = _error_detail(value["Error"])
        retry = value.get("RetryDetails") or {}
        if retry:
            detail["retry"] = {
                "attempt": retry.get("CurrentAttempt"),
                "next_delay_seconds": retry.get("NextAttemptDelaySeconds"),
            }
        for source, target in (
            ("Duration", "duration_seconds"),
            ("CallbackId", "callback_id"),
            ("Timeout", "timeout_seconds"),
            ("ExecutionTimeout", "execution_timeout_seconds"),
            ("RequestId", "request_id"),
        ):
            if value.get(source) is not None:
                detail[target] = value[source]
        for source, target in (("ScheduledEndTimestamp", "scheduled_end"), ("StartTimestamp", "started")):
            if isinstance(value.get(source), dt.datetime):
                detail[target] = value[source].isoformat()
    return HistoryEvent(
        event_id=int(raw.get("EventId") or 0),
        event_type=event_type,
        at=raw.get("EventTimestamp") or dt.datetime.now(dt.UTC),
        name=raw.get("Name") or "",
        operation_id=raw.get("Id") or "",
        sub_type=raw.get("SubType") or "",
        detail=detail,
    )
