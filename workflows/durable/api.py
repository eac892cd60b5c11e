"""The Durable API: a plain Lambda handler behind a Function URL (payload format 2.0).

Long on purpose: the Durable API is one Lambda handler packaged on its own; its routes share the
state store, the signing and the error shape, and it must not import the console.

Routes (JSON in, JSON out; errors are ``{"error": <code>, "message": <text>}`` with a 4xx/5xx):

``POST /workflows/matching/start``                 create the state item, start the durable execution
``GET  /workflows/matching/{search_id}``           the item (``?include_candidates=true`` adds them)
``POST /workflows/matching/{search_id}/cancel``    ``{reason}``: item cancelled, StopDurableExecution
``POST /workflows/matching/{search_id}/intervene`` ``{decision: approve|reject, note, approved_user_ids?}``
``POST /workflows/matching/status:batch``          ``{search_ids: [...≤100], include_results?}``
``POST /workflows/matching/vetting-callback``      GlobalCoach's answer ``{token, approved_user_ids,
                                                   rejected_user_ids}``; authenticated by the token only

Start is idempotent per (search_id, attempt): a conditional write on the state item decides which
request dispatches; a repeat returns the same execution and never invokes again (the local
emulator does not enforce ``DurableExecutionName`` uniqueness, and AWS would reject a reused
name with different input anyway).

Authentication: the Function URL uses ``AWS_IAM``, so a request that reaches us was signed. When
``MATCHING_WORKFLOW_API_KEY`` is set (deployments behind a key instead), a request must carry that
key in ``MATCHING_WORKFLOW_API_KEY_HEADER`` (default ``X-API-Key``) unless the event shows a
verified IAM caller (``requestContext.authorizer.iam``). ``vetting-callback`` never needs either.

Environment:

``MATCHING_STATE_TABLE``              DynamoDB table (default ``matching-workflow-state``)
``MATCHING_WORKFLOW_FUNCTION_NAME``   durable function to invoke: name or ARN, qualified with a
                                      version/alias (durable functions need one; ``:$LATEST`` locally)
``MATCHING_WORKFLOW_API_KEY``         optional API key (``_FILE`` variant accepted)
``MATCHING_WORKFLOW_API_KEY_HEADER``  header carrying it (default ``X-API-Key``)
``MATCHING_API_ROUTES``               ``all`` (default) or ``vetting-callback`` (the public provider URL)
``MATCHING_MAX_TIMEOUT_SECONDS``      largest accepted ``timeout_seconds`` (default 604800; keep it
                                      below the durable function's ExecutionTimeout)
``AWS_ENDPOINT_URL_LAMBDA``, ``AWS_ENDPOINT_URL_DYNAMODB``  honoured by botocore (local stack)
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from opentelemetry import trace

from matching.engine.types import SearchRequest

from . import tracing
from .state import (
    AWAITING_VETTING,
    CANCELLED,
    DISPATCHED,
    MAX_TIMELINE,
    TERMINAL_STATUSES,
    AlreadyExists,
    Changes,
    StoreUnavailable,
    VersionConflict,
    WorkflowStateStore,
    execution_name_for,
    make_dynamodb_client,
    parse_iso,
    public_view,
    timeline_entry,
    utc_now_iso,
)

logger = logging.getLogger(__name__)

ROUTE_PREFIX = "/workflows/matching"
SEARCH_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_BODY_BYTES = 64 * 1024
DISPATCH_CLAIM_TTL_SECONDS = 60  # a claim older than this belongs to a request that died mid-invoke
ROLES = ("buddy", "student", "coach")
_START_FIELDS = {"search_id", "attempt", "seeker_id", "preferences", "callback_webhook", "timeout_seconds"}
_PREFERENCE_LISTS = {"resorts": 43, "regions": 50, "dates": 60, "required_certifications": 20}
_SUMMARY_DROP = ("candidates", "preferences", "timeline", "results")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


# --- configuration -------------------------------------------------------------------------------


def _secret_env(name: str) -> str | None:
    value = os.environ.get(name)
    if value:
        return value.strip()
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").strip() or None
    return None


@dataclass(frozen=True)
class ApiConfig:
    table_name: str = "matching-workflow-state"
    workflow_function: str | None = None
    api_key: str | None = None
    api_key_header: str = "x-api-key"
    routes: str = "all"
    max_timeout_seconds: int = 604800

    @classmethod
    def from_env(cls) -> ApiConfig:
        routes = os.environ.get("MATCHING_API_ROUTES") or "all"
        if routes not in ("all", "vetting-callback"):
            raise RuntimeError(f"MATCHING_API_ROUTES must be 'all' or 'vetting-callback', got {routes!r}")
        raw_max = os.environ.get("MATCHING_MAX_TIMEOUT_SECONDS") or "604800"
        try:
            max_timeout = int(raw_max)
        except ValueError:
            raise RuntimeError(f"MATCHING_MAX_TIMEOUT_SECONDS must be an integer, got {raw_max!r}") from None
        return cls(
            table_name=os.environ.get("MATCHING_STATE_TABLE") or "matching-workflow-state",
            workflow_function=os.environ.get("MATCHING_WORKFLOW_FUNCTION_NAME") or None,
            api_key=_secret_env("MATCHING_WORKFLOW_API_KEY"),
            api_key_header=(os.environ.get("MATCHING_WORKFLOW_API_KEY_HEADER") or "X-API-Key").lower(),
            routes=routes,
            max_timeout_seconds=max_timeout,
        )


def make_lambda_client() -> Any:
    """A Lambda client; botocore reads ``AWS_ENDPOINT_URL_LAMBDA`` for the local stand-in."""
    return boto3.client(
        "lambda",
        config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=15),
    )


# --- request helpers -----------------------------------------------------------------------------


def _json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
    }


def _error_response(error: ApiError) -> dict[str, Any]:
    return _json_response(error.status, {"error": error.code, "message": error.message}, error.headers)


def _bad(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def _read_json(event: Mapping[str, Any]) -> dict[str, Any]:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("body is not valid base64", "invalid_json") from None
    else:
        data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(data) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"body exceeds {MAX_BODY_BYTES} bytes")
    if not data.strip():
        raise _bad("a JSON object body is required", "invalid_json")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _bad("body is not valid JSON", "invalid_json") from None
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object", "invalid_json")
    return body


def _search_id(value: Any, field: str = "search_id") -> str:
    if not isinstance(value, str) or not SEARCH_ID_RE.fullmatch(value):
        raise _bad(f"{field} must be 1-128 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"{field} must be an integer between {low} and {high}")
    return value


def _text(value: Any, field: str, max_len: int, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise _bad(f"{field} must be a non-empty string of at most {max_len} characters")
    return value


def _string_list(value: Any, field: str, max_items: int) -> list[str]:
    if not isinstance(value, list) or len(value) > max_items or not all(isinstance(v, str) and v for v in value):
        raise _bad(f"{field} must be a list of at most {max_items} non-empty strings")
    return list(dict.fromkeys(value))


def validate_preferences(prefs: Any, seeker_id: str) -> dict[str, Any]:
    """The contract's preferences (docs/contracts.md); values are checked, not silently fixed."""
    if not isinstance(prefs, dict):
        raise _bad("preferences must be an object")
    try:
        SearchRequest.from_preferences(seeker_id, prefs)  # unknown and missing keys
    except (ValueError, TypeError) as exc:
        raise _bad(f"preferences: {exc}") from None
    if prefs["role"] not in ROLES:
        raise _bad(f"preferences.role must be one of {', '.join(ROLES)}")
    low = _int(prefs["skill_level_min"], "preferences.skill_level_min", 1, 10)
    high = _int(prefs["skill_level_max"], "preferences.skill_level_max", 1, 10)
    if low > high:
        raise _bad("preferences.skill_level_min must not exceed skill_level_max")
    for key, max_items in _PREFERENCE_LISTS.items():
        if key in prefs:
            _string_list(prefs[key], f"preferences.{key}", max_items)
    if any(not DATE_RE.fullmatch(d) for d in prefs.get("dates", [])):
        raise _bad("preferences.dates must be YYYY-MM-DD dates")
    for key in ("include_knowledge_score", "vetting_required"):
        if key in prefs and not isinstance(prefs[key], bool):
            raise _bad(f"preferences.{key} must be a boolean")
    if prefs.get("knowledge_score") is not None:
        _int(prefs["knowledge_score"], "preferences.knowledge_score", 0, 100)
    if "limit" in prefs:
        _int(prefs["limit"], "preferences.limit", 1, 100)
    if prefs["role"] != "coach" and (prefs.get("vetting_required") or prefs.get("required_certifications")):
        raise _bad("vetting_required and required_certifications apply to coach searches only")
    return dict(prefs)


def _url(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise _bad(f"{field} must be an http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad(f"{field} must be an http(s) URL")
    return value


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _is_recent(iso: str | None, seconds: int) -> bool:
    if not iso:
        return False
    try:
        return (dt.datetime.now(dt.UTC) - parse_iso(iso)).total_seconds() < seconds
    except ValueError:
        return False


def _summary(item: Mapping[str, Any], *, include_results: bool) -> dict[str, Any]:
    view = public_view(item)
    for key in _SUMMARY_DROP:
        if key == "results" and include_results:
            continue
        view.pop(key, None)
    return view


# --- the API ---------------------------------------------------------------------------------------

Route = Callable[[Mapping[str, Any], re.Match[str] | None], dict[str, Any]]


class DurableApi:
    """Routes Function URL events; owns no global state, so tests build one per case."""

    def __init__(self, config: ApiConfig, store: WorkflowStateStore, lambda_client: Any) -> None:
        self.config = config
        self.store = store
        self.lambda_client = lambda_client
        self._routes: list[tuple[str, re.Pattern[str], Route, bool]] = [
            # (method, path pattern, handler, public?) — literal paths before the {search_id} ones.
            ("POST", re.compile(r"/start"), self.start, False),
            ("POST", re.compile(r"/status:batch"), self.status_batch, False),
            ("POST", re.compile(r"/vetting-callback"), self.vetting_callback, True),
            ("GET", re.compile(r"/(?P<search_id>[^/]+)"), self.get_status, False),
            ("POST", re.compile(r"/(?P<search_id>[^/]+)/cancel"), self.cancel, False),
            ("POST", re.compile(r"/(?P<search_id>[^/]+)/intervene"), self.intervene, False),
        ]

    @classmethod
    def from_env(cls) -> DurableApi:
        config = ApiConfig.from_env()
        store = WorkflowStateStore(config.table_name, make_dynamodb_client())
        return cls(config, store, make_lambda_client())

    # dispatch

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self._dispatch(event)
        except ApiError as exc:
            return _error_response(exc)
        except StoreUnavailable:
            logger.exception("state store unavailable")
            return _error_response(ApiError(503, "state_store_unavailable", "the state store is unavailable"))
        except Exception:
            # Never a stack trace to the client; the log has it.
            logger.exception("unhandled error in Durable API")
            return _error_response(ApiError(500, "internal_error", "internal error"))

    def _dispatch(self, event: Mapping[str, Any]) -> dict[str, Any]:
        http = (event.get("requestContext") or {}).get("http") or {}
        method = str(http.get("method") or event.get("httpMethod") or "").upper()
        path = unquote(str(event.get("rawPath") or http.get("path") or ""))
        at = path.find(ROUTE_PREFIX)
        if at < 0:
            raise ApiError(404, "not_found", "no such route")
        rest = path[at + len(ROUTE_PREFIX) :].rstrip("/") or "/"
        allowed: list[str] = []
        for route_method, pattern, route, public in self._routes:
            match = pattern.fullmatch(rest)
            if not match:
                continue
            if self.config.routes == "vetting-callback" and route != self.vetting_callback:
                break  # the public provider URL serves nothing else
            if route_method != method:
                allowed.append(route_method)
                if pattern.groups == 0:
                    break  # /start etc. are never search ids
                continue
            route_name = pattern.pattern.replace("(?P<search_id>[^/]+)", "{search_id}")
            trace.get_current_span().update_name(f"Durable API {method} {ROUTE_PREFIX}{route_name}")
            if not public:
                self._authenticate(event)
            return route(event, match)
        if allowed:
            raise ApiError(405, "method_not_allowed", "method not allowed", {"allow": ", ".join(allowed)})
        raise ApiError(404, "not_found", "no such route")

    def _authenticate(self, event: Mapping[str, Any]) -> None:
        if not self.config.api_key:
            return  # the Function URL's AWS_IAM auth let this request in
        authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
        if isinstance(authorizer, Mapping) and authorizer.get("iam"):
            return  # SigV4-verified by the platform
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        presented = headers.get(self.config.api_key_header) or ""
        if not hmac.compare_digest(presented.encode("utf-8"), self.config.api_key.encode("utf-8")):
            raise ApiError(401, "unauthorized", "missing or invalid API key")

    # routes

    def start(self, event: Mapping[str, Any], _match: Any) -> dict[str, Any]:
        body = _read_json(event)
        unknown = sorted(set(body) - _START_FIELDS)
        if unknown:
            raise _bad(f"unknown field(s): {', '.join(unknown)}")
        search_id = _search_id(body.get("search_id"))
        attempt = _int(body.get("attempt"), "attempt", 1, 10_000)
        seeker_id = _text(body.get("seeker_id"), "seeker_id", 128) or ""
        preferences = validate_preferences(body.get("preferences"), seeker_id)
        callback_webhook = _url(body.get("callback_webhook"), "callback_webhook")
        timeout_seconds = _int(body.get("timeout_seconds", 3600), "timeout_seconds", 1, self.config.max_timeout_seconds)
        if not self.config.workflow_function:
            raise ApiError(503, "not_configured", "MATCHING_WORKFLOW_FUNCTION_NAME is not set")

        payload = {
            "search_id": search_id,
            "attempt": attempt,
            "seeker_id": seeker_id,
            "preferences": preferences,
            "callback_webhook": callback_webhook,
            "timeout_seconds": timeout_seconds,
            "execution_name": execution_name_for(search_id, attempt),
        }
        # The workflow runs later (and replays): its input carries this request's trace context so
        # every invocation joins the search's trace. Not part of the idempotency comparison.
        trace_context = tracing.carrier()
        if trace_context:
            payload["trace_context"] = trace_context
        item, claimed = self._claim_dispatch(payload)
        if not claimed:
            return _json_response(200, {**public_view(item), "created": False})
        try:
            arn = self._invoke(payload)
        except ApiError as exc:
            self._release_claim(search_id, attempt, exc.message)
            raise
        item = self._record_dispatched(search_id, attempt, arn) or item
        return _json_response(202, {**public_view(item), "created": True})

    def get_status(self, event: Mapping[str, Any], match: re.Match[str]) -> dict[str, Any]:
        search_id = _search_id(match["search_id"])
        query = event.get("queryStringParameters") or {}
        include = str(query.get("include_candidates", "")).lower() in ("1", "true", "yes")
        item = self.store.get(search_id)
        if item is None:
            raise ApiError(404, "not_found", "no such search")
        return _json_response(200, public_view(item, include_candidates=include))

    def cancel(self, event: Mapping[str, Any], match: re.Match[str]) -> dict[str, Any]:
        search_id = _search_id(match["search_id"])
        body = _read_json(event)
        reason = _text(body.get("reason"), "reason", 1000) or ""

        def decide(item: dict[str, Any] | None) -> Changes | None:
            if item is None:
                raise ApiError(404, "not_found", "no such search")
            if item.get("status") == CANCELLED:
                return None  # repeating a cancel is harmless
            if item.get("status") in TERMINAL_STATUSES:
                raise ApiError(409, "already_terminal", f"search already {item.get('status')}")
            return Changes(
                set={
                    "status": CANCELLED,
                    "error": {"code": "cancelled", "message": reason},
                    "finished_at": utc_now_iso(),
                },
                remove=["pending_callback"],
                timeline=[timeline_entry("cancel", CANCELLED, reason)],
            )

        try:
            item, _ = self.store.mutate(search_id, decide)
        except VersionConflict:
            raise ApiError(409, "conflict", "the search kept changing; retry") from None
        assert item is not None
        # The item is the source of truth: the workflow will not overwrite a cancelled item, so a
        # failed stop only leaves an execution that ends without effect.
        stop = self._stop(item.get("execution_arn"), reason)
        return _json_response(200, {**public_view(item), "execution_stop": stop})

    def intervene(self, event: Mapping[str, Any], match: re.Match[str]) -> dict[str, Any]:
        search_id = _search_id(match["search_id"])
        body = _read_json(event)
        decision = body.get("decision")
        if decision not in ("approve", "reject"):
            raise _bad("decision must be 'approve' or 'reject'")
        note = _text(body.get("note"), "note", 2000, required=False)
        requested = body.get("approved_user_ids")
        if requested is not None:
            if decision != "approve":
                raise _bad("approved_user_ids only go with decision 'approve'")
            requested = _string_list(requested, "approved_user_ids", 100)
            if not requested:
                raise _bad("approving nobody is a rejection: use decision 'reject'")

        item = self.store.get(search_id)
        if item is None:
            raise ApiError(404, "not_found", "no such search")
        pending = self._pending(item)
        candidate_ids = list(pending.get("candidate_ids") or [])
        if decision == "approve":
            approved = requested if requested is not None else candidate_ids
            unknown = sorted(set(approved) - set(candidate_ids))
            if unknown:
                raise _bad(f"not among the vetted candidates: {', '.join(unknown)}")
            answer: dict[str, Any] | None = {
                "approved_user_ids": approved,
                "rejected_user_ids": [c for c in candidate_ids if c not in set(approved)],
                "decided_by": "staff",
                "note": note,
            }
        else:
            answer = None
        self._answer(item, pending, answer, by="staff", note=note or ("rejected by staff" if answer is None else None))
        return _json_response(202, {"search_id": search_id, "decision": decision, "accepted": True})

    def vetting_callback(self, event: Mapping[str, Any], _match: Any) -> dict[str, Any]:
        body = _read_json(event)
        token = body.get("token")
        if not isinstance(token, str) or "." not in token or len(token) > 512:
            raise ApiError(401, "invalid_token", "invalid token")
        approved = _string_list(body.get("approved_user_ids", []), "approved_user_ids", 1000)
        rejected = _string_list(body.get("rejected_user_ids", []), "rejected_user_ids", 1000)
        search_id = token.split(".", 1)[0]
        item = self.store.get(search_id) if SEARCH_ID_RE.fullmatch(search_id) else None
        pending = (item or {}).get("pending_callback") or {}
        expected = str(pending.get("token_sha256") or "")
        # Compare even when nothing is pending so the answer's timing says nothing about the search.
        valid = hmac.compare_digest(_token_hash(token), expected or "0" * 64)
        if not valid or not expected or item is None:
            raise ApiError(401, "invalid_token", "invalid token")
        if pending.get("answered_at"):
            return _json_response(200, {"accepted": False, "reason": "already_answered"})
        candidate_ids = list(pending.get("candidate_ids") or [])
        answer = {
            "approved_user_ids": [c for c in candidate_ids if c in set(approved)],
            "rejected_user_ids": [c for c in candidate_ids if c in set(rejected)],
            "decided_by": "provider",
            "note": None,
        }
        self._answer(item, pending, answer, by="provider", note=None)
        return _json_response(202, {"accepted": True})

    def status_batch(self, event: Mapping[str, Any], _match: Any) -> dict[str, Any]:
        body = _read_json(event)
        ids = body.get("search_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise _bad("search_ids must be a list of 1 to 100 search ids")
        ids = list(dict.fromkeys(_search_id(i, "search_ids[]") for i in ids))
        include_results = body.get("include_results", False)
        if not isinstance(include_results, bool):
            raise _bad("include_results must be a boolean")
        found = self.store.batch_get(ids)
        return _json_response(
            200,
            {
                "items": [_summary(found[i], include_results=include_results) for i in ids if i in found],
                "missing": [i for i in ids if i not in found],
            },
        )

    # start internals

    def _claim_dispatch(self, payload: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """The item for this (search_id, attempt), and whether this request must invoke."""
        search_id = payload["search_id"]
        for _ in range(4):
            item = self.store.get(search_id)
            if item is None:
                try:
                    return self.store.create(self._new_item(payload, None)), True
                except AlreadyExists:
                    continue  # a concurrent start created it; decide on what it wrote
            try:
                return self._claim_existing(item, payload)
            except VersionConflict:
                continue
        raise ApiError(409, "conflict", "the search kept changing; retry")

    def _claim_existing(self, item: dict[str, Any], payload: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        attempt = payload["attempt"]
        current = int(item.get("attempt") or 0)
        if current > attempt:
            raise ApiError(409, "attempt_superseded", f"attempt {current} already exists")
        if current < attempt:
            if item.get("status") not in TERMINAL_STATUSES:
                raise ApiError(409, "attempt_in_progress", f"attempt {current} is still {item.get('status')}")
            return self.store.replace(self._new_item(payload, item), int(item["version"])), True
        if item.get("seeker_id") != payload["seeker_id"] or item.get("preferences") != payload["preferences"]:
            raise ApiError(409, "attempt_conflict", "this attempt was started with different input")
        dispatch = item.get("dispatch") or {}
        if item.get("status") != DISPATCHED or dispatch.get("state") == "invoked":
            return item, False
        if dispatch.get("state") == "claimed" and _is_recent(dispatch.get("claimed_at"), DISPATCH_CLAIM_TTL_SECONDS):
            return item, False  # another request is dispatching right now
        # The earlier dispatch failed or its request died mid-invoke: take over (version-checked).
        claimed = self.store.update(
            item["search_id"],
            int(item["version"]),
            Changes(
                set={"dispatch": {"state": "claimed", "claimed_at": utc_now_iso()}},
                timeline=[timeline_entry("start", "dispatch_retried")],
            ),
            previous_updated_at=item.get("updated_at"),
            previous_timeline=item.get("timeline") or [],
        )
        return claimed, True

    def _new_item(self, payload: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
        item = {
            "search_id": payload["search_id"],
            "attempt": payload["attempt"],
            "status": DISPATCHED,
            "execution_name": payload["execution_name"],
            "execution_arn": None,
            "seeker_id": payload["seeker_id"],
            "preferences": payload["preferences"],
            "callback_webhook": payload["callback_webhook"],
            "timeout_seconds": payload["timeout_seconds"],
            "results": None,
            "error": None,
            "callback_delivery": None,
            "dispatch": {"state": "claimed", "claimed_at": utc_now_iso()},
        }
        entry = timeline_entry("start", DISPATCHED, {"attempt": payload["attempt"]})
        if previous is not None:
            # A new attempt keeps the search's history and creation time.
            item["created_at"] = previous.get("created_at")
            item["updated_at"] = previous.get("updated_at")
            item["timeline"] = [*(previous.get("timeline") or []), entry][-MAX_TIMELINE:]
        else:
            item["timeline"] = [entry]
        return item

    def _invoke(self, payload: Mapping[str, Any]) -> str | None:
        try:
            response = self.lambda_client.invoke(
                FunctionName=self.config.workflow_function,
                InvocationType="Event",
                DurableExecutionName=payload["execution_name"],
                Payload=json.dumps(payload).encode("utf-8"),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "DurableExecutionAlreadyStartedException":
                return None  # Lambda's own idempotency answered: the execution exists
            logger.warning("invoke of the durable function failed: %s", code)
            raise ApiError(502, "dispatch_failed", f"could not start the workflow ({code})") from None
        except BotoCoreError as exc:
            logger.warning("invoke of the durable function failed: %s", exc)
            raise ApiError(502, "dispatch_failed", "could not reach Lambda") from None
        return response.get("DurableExecutionArn")

    def _record_dispatched(self, search_id: str, attempt: int, arn: str | None) -> dict[str, Any] | None:
        def decide(item: dict[str, Any] | None) -> Changes | None:
            if item is None or item.get("attempt") != attempt:
                return None
            fields: dict[str, Any] = {"dispatch": {"state": "invoked", "invoked_at": utc_now_iso()}}
            if arn and not item.get("execution_arn"):
                fields["execution_arn"] = arn
            return Changes(set=fields)

        try:
            item, _ = self.store.mutate(search_id, decide)
            return item
        except (VersionConflict, StoreUnavailable):
            # The execution is running; the workflow records its ARN itself in mark-running.
            logger.warning("could not record the dispatch of %s", search_id)
            return None

    def _release_claim(self, search_id: str, attempt: int, error: str) -> None:
        def decide(item: dict[str, Any] | None) -> Changes | None:
            if item is None or item.get("attempt") != attempt or item.get("status") != DISPATCHED:
                return None
            return Changes(
                set={"dispatch": {"state": "failed", "failed_at": utc_now_iso(), "error": error}},
                timeline=[timeline_entry("start", "dispatch_failed", error)],
            )

        try:
            self.store.mutate(search_id, decide)
        except (VersionConflict, StoreUnavailable):
            logger.warning("could not release the dispatch claim of %s", search_id)

    # cancel / intervene internals

    def _stop(self, arn: str | None, reason: str) -> str:
        if not arn:
            return "not_started"  # mark-running will see the cancelled item and stop there
        try:
            self.lambda_client.stop_durable_execution(
                DurableExecutionArn=arn,
                Error={"ErrorType": "Cancelled", "ErrorMessage": reason[:1000]},
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return "not_found"
            logger.warning("StopDurableExecution failed: %s", code)
            return "failed"
        except BotoCoreError as exc:
            logger.warning("StopDurableExecution failed: %s", exc)
            return "failed"
        return "stopped"

    @staticmethod
    def _pending(item: Mapping[str, Any]) -> dict[str, Any]:
        pending = item.get("pending_callback")
        if item.get("status") != AWAITING_VETTING or not isinstance(pending, Mapping) or not pending.get("callback_id"):
            raise ApiError(409, "no_pending_callback", "the search is not waiting for vetting")
        if pending.get("answered_at"):
            raise ApiError(409, "already_answered", "the vetting callback was already answered")
        return dict(pending)

    def _answer(
        self,
        item: Mapping[str, Any],
        pending: Mapping[str, Any],
        answer: Mapping[str, Any] | None,
        *,
        by: str,
        note: str | None,
    ) -> None:
        """Claim the pending callback on the item (one answer wins), then complete it in Lambda."""
        claimed = {**pending, "answered_at": utc_now_iso(), "answered_by": by}
        entry = timeline_entry("vetting", "approved" if answer is not None else "rejected", {"by": by})
        try:
            self.store.update(
                item["search_id"],
                int(item["version"]),
                Changes(set={"pending_callback": claimed}, timeline=[entry]),
                previous_updated_at=item.get("updated_at"),
                previous_timeline=item.get("timeline") or [],
            )
        except VersionConflict:
            raise ApiError(409, "conflict", "the search changed meanwhile; re-read and retry") from None
        callback_id = pending["callback_id"]
        try:
            if answer is not None:
                self.lambda_client.send_durable_execution_callback_success(
                    CallbackId=callback_id, Result=json.dumps(answer).encode("utf-8")
                )
            else:
                self.lambda_client.send_durable_execution_callback_failure(
                    CallbackId=callback_id,
                    Error={"ErrorType": "VettingRejected", "ErrorMessage": (note or "rejected")[:1000]},
                )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ResourceNotFoundException", "InvalidParameterValueException"):
                # The callback already timed out or completed; the claim stays as the record.
                raise ApiError(409, "callback_not_pending", "the vetting callback is no longer pending") from None
            self._unclaim(item["search_id"], callback_id, entry)
            raise ApiError(502, "callback_failed", f"could not complete the vetting callback ({code})") from None
        except BotoCoreError:
            self._unclaim(item["search_id"], callback_id, entry)
            raise ApiError(502, "callback_failed", "could not reach Lambda") from None

    def _unclaim(self, search_id: str, callback_id: str, entry: dict[str, Any]) -> None:
        """Release a claim whose callback Lambda refused, with its timeline entry: the answer did not
        happen, and a retried answer would otherwise show up once per try."""

        def decide(item: dict[str, Any] | None) -> Changes | None:
            pending = (item or {}).get("pending_callback") or {}
            if pending.get("callback_id") != callback_id or not pending.get("answered_at"):
                return None
            released = {k: v for k, v in pending.items() if k not in ("answered_at", "answered_by")}
            return Changes(set={"pending_callback": released}, untimeline=[entry])

        try:
            self.store.mutate(search_id, decide)
        except (VersionConflict, StoreUnavailable):
            logger.warning("could not release the vetting claim of %s", search_id)


# --- Lambda entry point ----------------------------------------------------------------------------

_api: DurableApi | None = None
_api_lock = threading.Lock()


def get_api() -> DurableApi:
    """The process-wide API, built from the environment on first use (clients are reused)."""
    global _api
    with _api_lock:
        if _api is None:
            _api = DurableApi.from_env()
        return _api


def reset_api() -> None:
    """Forget the cached API (after changing the environment, e.g. in tests)."""
    global _api
    with _api_lock:
        _api = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    tracing.configure("snowbuddy-durable-api")
    headers = event.get("headers") if isinstance(event, Mapping) else None
    http = (event.get("requestContext") or {}).get("http") or {} if isinstance(event, Mapping) else {}
    method = str(http.get("method") or "").upper()
    try:
        # A server span continuing the caller's `traceparent` (the console's signed start).
        with tracing.span_in(
            f"Durable API {method}", headers, kind=trace.SpanKind.SERVER, attributes={"http.request.method": method}
        ) as span:
            try:
                api = get_api()
            except Exception:
                logger.exception("Durable API misconfigured")
                return _error_response(ApiError(500, "internal_error", "internal error"))
            response = api.handle(event)
            span.set_attribute("http.response.status_code", int(response.get("statusCode") or 0))
            return response
    finally:
        tracing.flush()
