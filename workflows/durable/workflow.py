"""The matching search as an AWS Lambda durable function.

Long on purpose: a durable function is one module that the Lambda loads as its handler; its
steps, waits and callbacks must be read in their replay order.

Checkpointed steps, in order:

1. ``mark-running``        the state item goes to ``running`` (or the run stops: cancelled first,
                           or a newer attempt owns the item)
2. ``rank-candidates``     one read of the console's ``/internal/searches/{id}/matches``: the console
                           ranks the search on its warm candidate index and answers the top K and
                           how many matched; only that (≤ ``limit`` matches) is checkpointed
3. vetting (coach searches with ``vetting_required`` only): ``vetting-prepare`` mints the opaque
   token, then ``wait_for_callback("vetting")`` records the pending callback on the item, posts the
   top candidates to GlobalCoach and suspends until the callback resolves or times out
4. ``write-result``        the terminal status, results and error, under the version condition
5. ``deliver-callback``    the signed webhook to ``callback_webhook``, retried with backoff;
                           ``record-dead-letter`` marks ``callback_delivery.state = dead_letter``
                           when retries run out and ``enqueue-dead-letter`` copies the message to
                           the SQS dead-letter queue if one is configured (the durable execution
                           still succeeds)

Vetting policy: only the vetted top candidates can be results; the approved ones among them are
the results (re-ranked 1..n). No approved candidate, or a staff rejection
(``SendDurableExecutionCallbackFailure``), ends the search ``failed`` with error code
``vetting_rejected``. No answer before the search deadline (``timeout_seconds`` after the run
started) ends it ``timed_out`` (``vetting_timeout``). GlobalCoach unreachable after retries ends it
``failed`` (``vetting_unavailable``).

Environment (read on every invocation; ``*_FILE`` variants are accepted for the secrets):

``MATCHING_STATE_TABLE``            DynamoDB table (default ``matching-workflow-state``)
``MATCHING_CONSOLE_BASE_URL``       console base URL for ``/internal/searches/{id}/matches`` (required)
``MATCHING_INTERNAL_TOKEN``         bearer token for that endpoint (required)
``MATCHING_WEBHOOK_SECRET``         Standard Webhooks secret, ``whsec_<base64>`` or raw (required)
``MATCHING_VETTING_URL``            GlobalCoach base URL (required only for vetted searches)
``MATCHING_VETTING_CALLBACK_URL``   URL GlobalCoach calls back: the Durable API's
                                    ``/workflows/matching/vetting-callback`` (required only for vetting)
``MATCHING_VETTING_API_KEY``        optional bearer token sent to GlobalCoach
``MATCHING_VETTING_TOP_N``          candidates sent for vetting (default 10)
``MATCHING_HTTP_TIMEOUT_SECONDS``   per-request timeout (default 10)
``MATCHING_FETCH_MAX_ATTEMPTS``     attempts of the ranking read / vetting request (default 5)
``MATCHING_CALLBACK_MAX_ATTEMPTS``  webhook delivery attempts before dead-letter (default 10)
``MATCHING_RETRY_INITIAL_DELAY_SECONDS`` / ``MATCHING_RETRY_MAX_DELAY_SECONDS``  backoff (5 / 900)
``MATCHING_CALLBACK_DLQ_URL``       optional SQS queue that receives each dead-lettered callback for redrive
``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL_LAMBDA``  honoured by
                                    botocore (the local stack points them at moto / the emulator)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import requests
from aws_durable_execution_sdk_python import (
    CallbackExternalError,
    CallbackSubmitterError,
    CallbackTimeoutError,
    DurableContext,
    StepError,
    durable_execution,
)
from aws_durable_execution_sdk_python.config import (
    Duration,
    JitterStrategy,
    StepConfig,
    WaitForCallbackConfig,
)
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy
from aws_durable_execution_sdk_python.serdes import JsonSerDes
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from opentelemetry.trace import SpanKind

from . import signing, tracing
from .state import (
    AWAITING_VETTING,
    CANCELLED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    TERMINAL_STATUSES,
    TIMED_OUT,
    AlreadyExists,
    Changes,
    StoreUnavailable,
    VersionConflict,
    WorkflowStateStore,
    execution_name_for,
    make_dynamodb_client,
    timeline_entry,
    utc_now_iso,
)

logger = logging.getLogger(__name__)

CHECKPOINT_BUDGET_BYTES = 240 * 1024  # the service caps one checkpoint at 256 KB
VETTING_CALLBACK_NAME = "vetting"
JSON_SERDES: JsonSerDes[Any] = JsonSerDes()
# The fields of a match the workflow keeps (Match.to_dict() plus the nickname shown with it).
_MATCH_FIELDS = ("user_id", "score", "breakdown", "rank", "nickname")


# --- errors ----------------------------------------------------------------------------------------


class ConfigError(RuntimeError):
    """A required environment variable is missing or malformed."""


class InvalidJob(ValueError):
    """The execution input is not a valid search."""


class TransientError(RuntimeError):
    """Worth retrying: network trouble, 5xx, 429, a lost version race."""


class PermanentError(RuntimeError):
    """Retrying will not help: 4xx, malformed responses, bad preferences."""


class RankingTooLarge(PermanentError):
    pass


class Superseded(PermanentError):
    """The state item now belongs to another attempt or is already terminal."""


# --- configuration -------------------------------------------------------------------------------


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value:
        return value.strip()
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return None


def _env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class WorkflowConfig:
    table_name: str
    console_base_url: str
    internal_token: str
    webhook_secret: str
    vetting_url: str | None = None
    vetting_callback_url: str | None = None
    vetting_api_key: str | None = None
    vetting_top_n: int = 10
    http_timeout: float = 10.0
    fetch_max_attempts: int = 5
    callback_max_attempts: int = 10
    retry_initial_delay: int = 5
    retry_max_delay: int = 900
    callback_dlq_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkflowConfig:
        env = os.environ if env is None else env
        missing = [
            name
            for name in ("MATCHING_CONSOLE_BASE_URL", "MATCHING_INTERNAL_TOKEN", "MATCHING_WEBHOOK_SECRET")
            if not _env(env, name)
        ]
        if missing:
            raise ConfigError("missing required environment variable(s): " + ", ".join(missing))
        secret = _env(env, "MATCHING_WEBHOOK_SECRET") or ""
        try:
            signing.decode_secret(secret)
        except ValueError as exc:
            raise ConfigError(f"MATCHING_WEBHOOK_SECRET: {exc}") from None
        return cls(
            table_name=env.get("MATCHING_STATE_TABLE") or "matching-workflow-state",
            console_base_url=(_env(env, "MATCHING_CONSOLE_BASE_URL") or "").rstrip("/"),
            internal_token=_env(env, "MATCHING_INTERNAL_TOKEN") or "",
            webhook_secret=secret,
            vetting_url=(_env(env, "MATCHING_VETTING_URL") or "").rstrip("/") or None,
            vetting_callback_url=_env(env, "MATCHING_VETTING_CALLBACK_URL"),
            vetting_api_key=_env(env, "MATCHING_VETTING_API_KEY"),
            vetting_top_n=_env_int(env, "MATCHING_VETTING_TOP_N", 10, 1, 100),
            http_timeout=float(_env_int(env, "MATCHING_HTTP_TIMEOUT_SECONDS", 10, 1, 120)),
            fetch_max_attempts=_env_int(env, "MATCHING_FETCH_MAX_ATTEMPTS", 5, 1, 20),
            callback_max_attempts=_env_int(env, "MATCHING_CALLBACK_MAX_ATTEMPTS", 10, 1, 30),
            retry_initial_delay=_env_int(env, "MATCHING_RETRY_INITIAL_DELAY_SECONDS", 5, 1, 3600),
            retry_max_delay=_env_int(env, "MATCHING_RETRY_MAX_DELAY_SECONDS", 900, 1, 86400),
            callback_dlq_url=env.get("MATCHING_CALLBACK_DLQ_URL") or None,
        )

    def step_config(self, max_attempts: int) -> StepConfig:
        # Plain JSON checkpoints: the SDK's default type-tagged encoding roughly doubles them,
        # and each checkpoint must stay under 256 KB.
        return StepConfig(retry_strategy=self.retry_strategy(max_attempts), serdes=JSON_SERDES)

    def retry_strategy(self, max_attempts: int) -> Callable[[Exception, int], Any]:
        return create_retry_strategy(
            RetryStrategyConfig(
                max_attempts=max_attempts,
                initial_delay=Duration.from_seconds(self.retry_initial_delay),
                max_delay=Duration.from_seconds(max(self.retry_max_delay, self.retry_initial_delay)),
                backoff_rate=2,
                jitter_strategy=JitterStrategy.FULL,
                # Only errors that can heal by waiting; a 401 or bad JSON fails the step at once.
                retryable_error_types=[TransientError, StoreUnavailable, VersionConflict],
            )
        )


# --- the job -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchJob:
    search_id: str
    attempt: int
    seeker_id: str
    preferences: dict[str, Any]
    callback_webhook: str | None
    timeout_seconds: int
    execution_name: str

    @classmethod
    def from_event(cls, event: Any) -> SearchJob:
        if not isinstance(event, Mapping):
            raise InvalidJob("execution input must be a JSON object")
        search_id = event.get("search_id")
        attempt = event.get("attempt", 1)
        seeker_id = event.get("seeker_id")
        preferences = event.get("preferences")
        timeout = event.get("timeout_seconds", 3600)
        if not isinstance(search_id, str) or not search_id:
            raise InvalidJob("search_id is required")
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise InvalidJob("attempt must be a positive integer")
        if not isinstance(seeker_id, str) or not seeker_id:
            raise InvalidJob("seeker_id is required")
        if not isinstance(preferences, Mapping):
            raise InvalidJob("preferences must be an object")
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise InvalidJob("timeout_seconds must be a positive integer")
        webhook = event.get("callback_webhook") or None
        return cls(
            search_id=search_id,
            attempt=attempt,
            seeker_id=seeker_id,
            preferences=dict(preferences),
            callback_webhook=webhook,
            timeout_seconds=timeout,
            execution_name=event.get("execution_name") or execution_name_for(search_id, attempt),
        )

    @property
    def wants_vetting(self) -> bool:
        return self.preferences.get("role") == "coach" and bool(self.preferences.get("vetting_required"))


# --- HTTP helpers ----------------------------------------------------------------------------------


def _raise_for_status(response: requests.Response, what: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    message = f"{what} answered HTTP {status}"
    if status >= 500 or status in (408, 425, 429):
        raise TransientError(message)
    raise PermanentError(message)


def _request(method: str, url: str, what: str, *, timeout: float, **kwargs: Any) -> requests.Response:
    try:
        response = requests.request(method, url, timeout=timeout, **kwargs)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"{what} unreachable: {type(exc).__name__}") from None
    except requests.RequestException as exc:
        raise PermanentError(f"{what} request failed: {type(exc).__name__}") from None
    _raise_for_status(response, what)
    return response


# --- step bodies -----------------------------------------------------------------------------------
# Plain functions of (config, job, ...) so they can be unit-tested without the SDK. Each is
# idempotent: a step can run again after a crash between its side effect and its checkpoint.


def _store(cfg: WorkflowConfig) -> WorkflowStateStore:
    env = os.environ
    key = (env.get("AWS_ENDPOINT_URL_DYNAMODB"), env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))
    return WorkflowStateStore(cfg.table_name, _dynamodb_client(*key))


@lru_cache(maxsize=4)
def _dynamodb_client(endpoint: str | None, region: str | None) -> Any:
    # boto3 clients are thread-safe and slow to build: one per (endpoint, region) per process.
    # botocore itself reads AWS_ENDPOINT_URL_DYNAMODB; the arguments only key the cache.
    return make_dynamodb_client(region=region, endpoint_url=endpoint)


def mark_running(cfg: WorkflowConfig, job: SearchJob, execution_arn: str) -> dict[str, Any]:
    store = _store(cfg)
    now = utc_now_iso()
    deadline = utc_now_iso(_in_seconds(job.timeout_seconds))
    item = store.get(job.search_id)
    if item is None:
        # Started without the Durable API (e.g. straight through the emulator): create the item.
        try:
            created = store.create(
                {
                    "search_id": job.search_id,
                    "attempt": job.attempt,
                    "status": RUNNING,
                    "execution_name": job.execution_name,
                    "execution_arn": execution_arn,
                    "seeker_id": job.seeker_id,
                    "preferences": job.preferences,
                    "callback_webhook": job.callback_webhook,
                    "timeout_seconds": job.timeout_seconds,
                    "started_at": now,
                    "deadline": deadline,
                    "timeline": [timeline_entry("mark-running", "running")],
                }
            )
            return {"proceed": True, "deadline": deadline, "version": created["version"]}
        except AlreadyExists:
            pass  # lost a race with the API's create; decide on the item below

    def decide(current: dict[str, Any] | None) -> Changes | None:
        if current is None:
            raise TransientError("state item vanished")
        if current.get("attempt") != job.attempt:
            raise Superseded(f"item belongs to attempt {current.get('attempt')}")
        if current.get("status") in TERMINAL_STATUSES:
            raise Superseded(f"search is already {current.get('status')}")
        if current.get("status") in (RUNNING, AWAITING_VETTING) and current.get("deadline"):
            if current.get("execution_arn") != execution_arn:
                # A second execution of the same attempt (the local emulator does not enforce
                # execution-name uniqueness): the first one owns the search.
                raise Superseded("another execution runs this attempt")
            return None  # this step already ran once in this execution; keep the deadline
        return Changes(
            set={
                "status": RUNNING,
                "execution_name": job.execution_name,
                "execution_arn": execution_arn,
                "started_at": now,
                "deadline": deadline,
            },
            timeline=[timeline_entry("mark-running", "running")],
        )

    try:
        item, _ = store.mutate(job.search_id, decide)
    except Superseded as exc:
        current = store.get(job.search_id) or {}
        return {"proceed": False, "status": current.get("status"), "reason": str(exc)}
    assert item is not None
    return {"proceed": True, "deadline": item.get("deadline") or deadline, "version": item["version"]}


def rank_candidates(cfg: WorkflowConfig, job: SearchJob) -> dict[str, Any]:
    """The console's ranking of this search (its warm index runs the engine): the top K and a count.

    A read, so a retry after a crash is harmless; what this step checkpoints is at most `limit`
    matches (≈ 250 bytes each), never the candidates themselves."""
    url = f"{cfg.console_base_url}/internal/searches/{quote(job.search_id, safe='')}/matches"
    response = _request(
        "GET",
        url,
        "matches endpoint",
        headers={"Authorization": f"Bearer {cfg.internal_token}", "Accept": "application/json"},
        timeout=cfg.http_timeout,
    )
    try:
        body = response.json()
        raw_matches = body["matches"]
        count = body["candidate_count"]
        if not isinstance(raw_matches, list) or isinstance(count, bool) or not isinstance(count, int):
            raise TypeError
        matches = [{k: m[k] for k in _MATCH_FIELDS if k in m} for m in raw_matches]
        if not all(isinstance(m.get("user_id"), str) and isinstance(m.get("rank"), int) for m in matches):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise PermanentError("matches endpoint returned a malformed body") from None
    ranked = {"matches": matches, "candidate_count": count}
    if len(json.dumps(ranked)) > CHECKPOINT_BUDGET_BYTES:
        raise RankingTooLarge(f"a ranking of {len(matches)} matches exceeds the checkpoint budget")
    return ranked


def prepare_vetting(cfg: WorkflowConfig, job: SearchJob, deadline: str) -> dict[str, Any]:
    if not cfg.vetting_url or not cfg.vetting_callback_url:
        raise PermanentError("vetting needs MATCHING_VETTING_URL and MATCHING_VETTING_CALLBACK_URL")
    remaining = int(_seconds_until(deadline))
    # The token names the search so the Durable API can find the item; the random part is the
    # credential. Only its hash is stored on the item.
    return {"token": f"{job.search_id}.{secrets.token_urlsafe(32)}", "timeout_seconds": max(1, remaining)}


def submit_vetting(
    cfg: WorkflowConfig,
    job: SearchJob,
    callback_id: str,
    token: str,
    deadline: str,
    candidates: list[dict[str, Any]],
    vetted_ids: list[str],
) -> None:
    """Record the pending callback on the item, then ask GlobalCoach to vet ``vetted_ids``."""
    store = _store(cfg)
    token_hash = hashlib.sha256(token.encode("utf-8")).hexdigest()

    def decide(item: dict[str, Any] | None) -> Changes | None:
        if item is None or item.get("attempt") != job.attempt or item.get("status") in TERMINAL_STATUSES:
            raise Superseded("search is no longer ours to run")
        pending = item.get("pending_callback") or {}
        if item.get("status") == AWAITING_VETTING and pending.get("callback_id") == callback_id:
            return None  # recorded by an earlier try of this step (keep any answered_* claim)
        return Changes(
            set={
                "status": AWAITING_VETTING,
                "candidates": candidates,
                "pending_callback": {
                    "callback_id": callback_id,
                    "name": VETTING_CALLBACK_NAME,
                    "deadline": deadline,
                    "candidate_ids": vetted_ids,
                    "token_sha256": token_hash,
                },
            },
            timeline=[timeline_entry("vetting", "awaiting_vetting", {"candidate_ids": vetted_ids})],
        )

    item, wrote = store.mutate(job.search_id, decide)
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"{job.execution_name}-vetting"}
    if cfg.vetting_api_key:
        headers["Authorization"] = f"Bearer {cfg.vetting_api_key}"
    _request(
        "POST",
        f"{cfg.vetting_url}/vetting-requests",
        "vetting provider",
        data=json.dumps({"candidate_ids": vetted_ids, "callback_url": cfg.vetting_callback_url, "token": token}),
        headers=headers,
        timeout=cfg.http_timeout,
    )
    if wrote and item is not None and job.callback_webhook:
        # Tell the console early that staff may need to step in; the pull sync covers a miss.
        body = _webhook_body(job, AWAITING_VETTING, int(item["version"]), None, None, _pending_view(item))
        try:
            _post_webhook(cfg, job, body, f"msg_{job.execution_name}_v{item['version']}", timeout=5)
        except (TransientError, PermanentError) as exc:
            logger.info("awaiting_vetting notification not delivered: %s", exc)


def write_result(cfg: WorkflowConfig, job: SearchJob, outcome: dict[str, Any]) -> dict[str, Any]:
    """Write the terminal state. Returns {"written": bool, "version", "status"}."""
    store = _store(cfg)
    status = outcome["status"]

    def decide(item: dict[str, Any] | None) -> Changes | None:
        if item is None or item.get("attempt") != job.attempt:
            raise Superseded("search is no longer ours")
        if item.get("status") in TERMINAL_STATUSES:
            return None
        fields: dict[str, Any] = {
            "status": status,
            "results": outcome.get("results"),
            "error": outcome.get("error"),
            "finished_at": utc_now_iso(),
            "callback_delivery": {
                "state": "pending" if job.callback_webhook else "not_requested",
                "attempts": 0,
                "last_error": None,
            },
        }
        if outcome.get("candidates") is not None:
            fields["candidates"] = outcome["candidates"]
        if outcome.get("candidate_count") is not None:
            fields["candidate_count"] = outcome["candidate_count"]
        return Changes(
            set=fields,
            remove=["pending_callback"],
            timeline=[timeline_entry("write-result", status, outcome.get("error"))],
        )

    try:
        item, wrote = store.mutate(job.search_id, decide)
    except Superseded as exc:
        return {"written": False, "reason": str(exc)}
    assert item is not None
    if not wrote and item.get("status") == CANCELLED:
        # A cancel won the race; the console asked for it, so no callback either.
        return {"written": False, "status": CANCELLED, "reason": "cancelled"}
    # Either we wrote it now, or an earlier try of this step did (only the workflow writes
    # succeeded/failed/timed_out for its attempt).
    return {
        "written": True,
        "status": item["status"],
        "version": int(item["version"]),
        "results": item.get("results"),
        "error": item.get("error"),
    }


def _webhook_body(
    job: SearchJob,
    status: str,
    version: int,
    results: Any,
    error: Any,
    pending_callback: Any = None,
) -> bytes:
    body = {
        "search_id": job.search_id,
        "attempt": job.attempt,
        "status": status,
        "version": version,
        "payload": {"results": results, "error": error, "pending_callback": pending_callback},
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _pending_view(item: Mapping[str, Any]) -> dict[str, Any] | None:
    pending = item.get("pending_callback")
    if not isinstance(pending, Mapping):
        return None
    return {k: pending.get(k) for k in ("name", "deadline", "candidate_ids")}


def _post_webhook(cfg: WorkflowConfig, job: SearchJob, body: bytes, msg_id: str, timeout: float) -> None:
    if not job.callback_webhook:
        raise PermanentError("no callback_webhook")
    # Sign at send time: each attempt carries a fresh timestamp, the same webhook-id.
    headers = signing.signature_headers(cfg.webhook_secret, body, msg_id=msg_id)
    headers["Content-Type"] = "application/json"
    _request("POST", job.callback_webhook, "callback webhook", data=body, headers=headers, timeout=timeout)


def deliver_callback(cfg: WorkflowConfig, job: SearchJob, final: dict[str, Any], attempt: int) -> dict[str, Any]:
    body = _webhook_body(job, final["status"], final["version"], final.get("results"), final.get("error"))
    msg_id = f"msg_{job.execution_name}_v{final['version']}"
    try:
        _post_webhook(cfg, job, body, msg_id, timeout=cfg.http_timeout)
    except (TransientError, PermanentError) as exc:
        _record_delivery(cfg, job, {"state": "pending", "attempts": attempt, "last_error": str(exc)})
        # Every failure is worth another try here: a 4xx from the console (bad secret, not yet
        # deployed) is usually fixed by an operator before the backoff runs out.
        raise TransientError(str(exc)) from None
    _record_delivery(
        cfg,
        job,
        {"state": "delivered", "attempts": attempt, "last_error": None, "delivered_at": utc_now_iso()},
    )
    return {"delivered": True, "attempts": attempt, "webhook_id": msg_id}


def _record_delivery(cfg: WorkflowConfig, job: SearchJob, delivery: dict[str, Any]) -> None:
    def decide(item: dict[str, Any] | None) -> Changes | None:
        if item is None or item.get("attempt") != job.attempt:
            return None
        return Changes(set={"callback_delivery": delivery})

    try:
        _store(cfg).mutate(job.search_id, decide)
    except (StoreUnavailable, VersionConflict):
        # Bookkeeping only: never let it turn a delivered webhook into a retry.
        logger.warning("could not record callback delivery state for %s", job.search_id)


def record_dead_letter(cfg: WorkflowConfig, job: SearchJob, attempts: int, last_error: str | None) -> None:
    def decide(item: dict[str, Any] | None) -> Changes | None:
        if item is None or item.get("attempt") != job.attempt:
            return None
        delivery = {"state": "dead_letter", "attempts": attempts, "last_error": last_error}
        return Changes(
            set={"callback_delivery": delivery},
            timeline=[timeline_entry("deliver-callback", "dead_letter", last_error)],
        )

    _store(cfg).mutate(job.search_id, decide)


def enqueue_dead_letter(cfg: WorkflowConfig, job: SearchJob, final: dict[str, Any], last_error: str | None) -> None:
    """Copy an undeliverable callback to SQS so an operator can redrive it (re-signed on resend)."""
    assert cfg.callback_dlq_url
    message = {
        "search_id": job.search_id,
        "attempt": job.attempt,
        "webhook_id": f"msg_{job.execution_name}_v{final['version']}",
        "callback_webhook": job.callback_webhook,
        "body": _webhook_body(
            job, final["status"], final["version"], final.get("results"), final.get("error")
        ).decode(),
        "last_error": last_error,
        "dead_lettered_at": utc_now_iso(),
    }
    env = os.environ
    client = _sqs_client(env.get("AWS_ENDPOINT_URL_SQS"), env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))
    try:
        client.send_message(QueueUrl=cfg.callback_dlq_url, MessageBody=json.dumps(message))
    except (BotoCoreError, ClientError) as exc:
        raise TransientError(f"dead-letter queue unavailable: {type(exc).__name__}") from None


@lru_cache(maxsize=4)
def _sqs_client(endpoint: str | None, region: str | None) -> Any:
    kwargs: dict[str, Any] = {"config": Config(retries={"mode": "standard", "max_attempts": 3})}
    if region:
        kwargs["region_name"] = region
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return boto3.client("sqs", **kwargs)


def record_config_error(job: SearchJob, message: str) -> None:
    table = os.environ.get("MATCHING_STATE_TABLE") or "matching-workflow-state"
    store = _store(WorkflowConfig(table_name=table, console_base_url="", internal_token="", webhook_secret=""))

    def decide(item: dict[str, Any] | None) -> Changes | None:
        if item is None or item.get("attempt") != job.attempt or item.get("status") in TERMINAL_STATUSES:
            return None
        return Changes(
            set={"status": FAILED, "error": {"code": "configuration_error", "message": message}},
            remove=["pending_callback"],
            timeline=[timeline_entry("configure", "failed", message)],
        )

    store.mutate(job.search_id, decide)


# --- helpers ---------------------------------------------------------------------------------------


def _in_seconds(seconds: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def _seconds_until(iso: str) -> float:
    return (dt.datetime.fromisoformat(iso.replace("Z", "+00:00")) - dt.datetime.now(dt.UTC)).total_seconds()


def _error(code: str, message: str | None) -> dict[str, Any]:
    return {"code": code, "message": message or code}


def _rerank(matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**m, "rank": i} for i, m in enumerate(matches, start=1)]


def parse_vetting_answer(raw: Any) -> dict[str, Any]:
    """The callback result: JSON ``{approved_user_ids, rejected_user_ids, decided_by, note}``."""
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = {}
    if not isinstance(raw, Mapping):
        raw = {}
    approved = raw.get("approved_user_ids")
    return {
        "approved_user_ids": [str(x) for x in approved] if isinstance(approved, list) else [],
        "decided_by": raw.get("decided_by"),
        "note": raw.get("note"),
    }


# --- the durable function ------------------------------------------------------------------------


def _run_search(context: DurableContext, cfg: WorkflowConfig, job: SearchJob, deadline: str) -> dict[str, Any]:
    """Everything between mark-running and write-result; returns the outcome to write."""
    try:
        scored = context.step(
            tracing.in_current_context("rank-candidates", lambda _sc: rank_candidates(cfg, job)),
            name="rank-candidates",
            config=cfg.step_config(cfg.fetch_max_attempts),
        )
    except StepError as exc:
        return {"status": FAILED, "error": _error("candidates_unavailable", exc.message)}
    matches: list[dict[str, Any]] = scored["matches"]
    outcome: dict[str, Any] = {"candidates": matches, "candidate_count": scored["candidate_count"]}

    if not job.wants_vetting or not matches:
        return {**outcome, "status": SUCCEEDED, "results": matches, "error": None}

    top = matches[: cfg.vetting_top_n]
    vetted_ids = [m["user_id"] for m in top]
    try:
        prepared = context.step(
            tracing.in_current_context("vetting-prepare", lambda _sc: prepare_vetting(cfg, job, deadline)),
            name="vetting-prepare",
            config=cfg.step_config(1),
        )
    except StepError as exc:
        return {**outcome, "status": FAILED, "error": _error("vetting_unavailable", exc.message)}

    def submitter(callback_id: str, _wctx: Any) -> None:
        submit_vetting(cfg, job, callback_id, prepared["token"], deadline, matches, vetted_ids)

    try:
        raw_answer = context.wait_for_callback(
            tracing.in_current_context("vetting-submit", submitter),
            name=VETTING_CALLBACK_NAME,
            config=WaitForCallbackConfig(
                timeout=Duration.from_seconds(prepared["timeout_seconds"]),
                retry_strategy=cfg.retry_strategy(cfg.fetch_max_attempts),
            ),
        )
    except CallbackTimeoutError:
        return {**outcome, "status": TIMED_OUT, "error": _error("vetting_timeout", "no vetting answer in time")}
    except CallbackSubmitterError as exc:
        return {**outcome, "status": FAILED, "error": _error("vetting_unavailable", exc.message)}
    except CallbackExternalError as exc:
        return {**outcome, "status": FAILED, "error": _error("vetting_rejected", exc.message)}

    answer = parse_vetting_answer(raw_answer)
    approved = set(answer["approved_user_ids"])
    results = _rerank([m for m in top if m["user_id"] in approved])
    if not results:
        return {**outcome, "status": FAILED, "error": _error("vetting_rejected", "no candidate was approved")}
    return {**outcome, "status": SUCCEEDED, "results": results, "error": None}


@durable_execution
def handler(event: Any, context: DurableContext) -> dict[str, Any]:
    job = SearchJob.from_event(event)
    tracing.configure("snowbuddy-workflow")
    # Each invocation (the first, and every replay after a wait or a retry) is one span under the
    # start's trace context from the execution input; steps that really run are spans below it.
    parent = event.get("trace_context") if isinstance(event, Mapping) else None
    attributes = {"snowbuddy.search_id": job.search_id, "snowbuddy.attempt": job.attempt}
    try:
        with tracing.span_in("workflow invocation", parent, kind=SpanKind.CONSUMER, attributes=attributes):
            return _handle(context, job)
    finally:
        tracing.flush()


def _handle(context: DurableContext, job: SearchJob) -> dict[str, Any]:
    try:
        cfg = WorkflowConfig.from_env()
    except ConfigError as exc:
        message = str(exc)
        try:
            context.step(
                tracing.in_current_context("record-config-error", lambda _sc: record_config_error(job, message)),
                name="record-config-error",
                config=StepConfig(serdes=JSON_SERDES),
            )
        except StepError:
            logger.exception("could not record the configuration error on the state item")
        raise
    store_config = cfg.step_config(cfg.fetch_max_attempts)
    arn = context.execution_context.durable_execution_arn
    summary = {"search_id": job.search_id, "attempt": job.attempt}

    started = context.step(
        tracing.in_current_context("mark-running", lambda _sc: mark_running(cfg, job, arn)),
        name="mark-running",
        config=store_config,
    )
    if not started["proceed"]:
        return {**summary, "status": started.get("status"), "callback_delivery": "skipped"}

    outcome = _run_search(context, cfg, job, started["deadline"])

    final = context.step(
        tracing.in_current_context("write-result", lambda _sc: write_result(cfg, job, outcome)),
        name="write-result",
        config=store_config,
    )
    if not final["written"]:
        return {**summary, "status": final.get("status"), "callback_delivery": "skipped"}
    if not job.callback_webhook:
        return {**summary, "status": final["status"], "callback_delivery": "not_requested"}

    try:
        context.step(
            tracing.in_current_context("deliver-callback", lambda sc: deliver_callback(cfg, job, final, sc.attempt)),
            name="deliver-callback",
            config=cfg.step_config(cfg.callback_max_attempts),
        )
        delivery = "delivered"
    except StepError as exc:
        last_error = exc.message
        context.step(
            tracing.in_current_context(
                "record-dead-letter", lambda _sc: record_dead_letter(cfg, job, cfg.callback_max_attempts, last_error)
            ),
            name="record-dead-letter",
            config=store_config,
        )
        if cfg.callback_dlq_url:
            try:
                context.step(
                    tracing.in_current_context(
                        "enqueue-dead-letter", lambda _sc: enqueue_dead_letter(cfg, job, final, last_error)
                    ),
                    name="enqueue-dead-letter",
                    config=store_config,
                )
            except StepError as dlq_error:
                # The item already says dead_letter; the queue is a convenience for redrive.
                logger.error("could not enqueue the dead-lettered callback: %s", dlq_error.message)
        delivery = "dead_letter"
    return {**summary, "status": final["status"], "version": final["version"], "callback_delivery": delivery}
