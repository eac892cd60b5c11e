"""The signed client for the Durable API (the Lambda side of the durable engine).

The only module that knows the Durable API's wire format. Requests are signed with SigV4
(botocore's SigV4Auth, service `lambda` for a Function URL or `execute-api` for API Gateway)
or carry an API key. Each attempt is signed right before it is sent, and exactly the signed
bytes are sent, the W3C `traceparent` of the call's span among the signed headers. Connection
errors and 5xx are retried with backoff; 4xx never are. A start is
never retried here: after a failure it may have run, and workflows/dispatch/submit.py asks for it by name
before starting again. Every call goes through the circuit breaker (workflows/durable_console/breaker.py).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

import botocore.session
import requests
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from django.conf import settings
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_http_instrumentation

from workflows.durable import tracing
from workflows.durable_console.breaker import CircuitBreaker, durable_breaker

logger = logging.getLogger(__name__)


class DurableApiError(Exception):
    """Base class: something went wrong talking to the Durable API.

    The message is English (the audit trail and the log keep it); `code` and `params` say the same
    for the console to word in the staff member's language (matching.admin.words), "" and {} when
    there is nothing to word (a configuration error names settings)."""

    code = ""
    params: dict

    def __init__(self, *args: Any, code: str = "", params: dict | None = None):
        super().__init__(*args)
        self.code = code
        self.params = params or {}


class DurableApiConfigError(DurableApiError):
    """The client cannot be built from the current settings."""


class DurableApiUnavailable(DurableApiError):
    """Connection failures or 5xx answers persisted through every retry. Safe to try later.

    `maybe_delivered`: a request may have reached the API and been acted on (a read timeout, a
    connection dropped after sending, a 5xx), as opposed to never leaving (connection refused).
    """

    def __init__(self, message: str, *, maybe_delivered: bool = False, code: str = "", params: dict | None = None):
        super().__init__(message, code=code, params=params)
        self.maybe_delivered = maybe_delivered


class DurableApiCircuitOpen(DurableApiUnavailable):
    """The circuit breaker is open: no request was made."""


class DurableApiRejected(DurableApiError):
    """A 4xx answer: the request itself is wrong (or not allowed). Retrying will not help."""

    def __init__(self, status_code: int, body: Any):
        super().__init__(
            f"Durable API answered {status_code}: {body}",
            code="durable_rejected",
            params={"status_code": status_code, "body": str(body)},
        )
        self.status_code = status_code
        self.body = body


@dataclass(frozen=True)
class DurableApiConfig:
    base_url: str
    auth_mode: str  # "api_key" | "iam_sigv4"
    api_key: str = ""
    api_key_header: str = "X-API-Key"
    sigv4_service: str = "execute-api"
    region: str = ""
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    max_attempts: int = 3
    backoff_seconds: float = 0.2

    @classmethod
    def from_settings(cls) -> DurableApiConfig:
        if not settings.MATCHING_WORKFLOW_URL:
            raise DurableApiConfigError("MATCHING_WORKFLOW_URL is not set")
        mode = settings.MATCHING_WORKFLOW_AUTH_MODE
        if mode == "api_key" and not settings.MATCHING_WORKFLOW_API_KEY:
            raise DurableApiConfigError("MATCHING_WORKFLOW_API_KEY is required in api_key mode")
        if mode == "iam_sigv4" and not settings.AWS_REGION:
            raise DurableApiConfigError("AWS_REGION is required in iam_sigv4 mode")
        if mode not in ("api_key", "iam_sigv4"):
            raise DurableApiConfigError(f"MATCHING_WORKFLOW_AUTH_MODE={mode!r} does not use the Durable API")
        return cls(
            base_url=settings.MATCHING_WORKFLOW_URL,
            auth_mode=mode,
            api_key=settings.MATCHING_WORKFLOW_API_KEY,
            api_key_header=settings.MATCHING_WORKFLOW_API_KEY_HEADER,
            sigv4_service=settings.MATCHING_WORKFLOW_SIGV4_SERVICE,
            region=settings.AWS_REGION,
        )


class DurableApiClient:
    def __init__(
        self,
        config: DurableApiConfig,
        *,
        session: requests.Session | None = None,
        breaker: CircuitBreaker | None = None,
    ):
        self.config = config
        self.session = session or requests.Session()
        self.breaker = breaker or durable_breaker()
        self._credentials = None
        if config.auth_mode == "iam_sigv4":
            # The default chain: env vars, shared config, container/instance roles.
            self._credentials = botocore.session.Session().get_credentials()
            if self._credentials is None:
                raise DurableApiConfigError("iam_sigv4 mode found no AWS credentials (AWS_ACCESS_KEY_ID …)")

    @classmethod
    def from_settings(cls, *, quick: bool = False) -> DurableApiClient:
        """`quick`: one try with short timeouts, for calls made while a user waits (a sweeper retries)."""
        config = DurableApiConfig.from_settings()
        if quick:
            config = replace(config, max_attempts=1, connect_timeout=1.0, read_timeout=3.0)
        return cls(config)

    # --- the Durable API -------------------------------------------------------------------

    def start(
        self,
        *,
        search_id: str,
        attempt: int,
        seeker_id: str,
        preferences: dict,
        callback_webhook: str,
        timeout_seconds: int,
    ) -> dict:
        return self._call(
            "POST",
            "/workflows/matching/start",
            {
                "search_id": search_id,
                "attempt": attempt,
                "seeker_id": seeker_id,
                "preferences": preferences,
                "callback_webhook": callback_webhook,
                "timeout_seconds": timeout_seconds,
            },
            attempts=1,
        )

    def find_started(self, search_id: str, attempt: int) -> dict | None:
        """The execution of (search_id, attempt) if it was started, else None: how an ambiguous start
        (timed out, connection dropped: it may have run) is resolved before starting again."""
        try:
            item = self.get(search_id)
        except DurableApiRejected as exc:
            if exc.status_code == 404:
                return None
            raise
        return item if int(item.get("attempt") or 0) == attempt else None

    def get(self, search_id: str, *, include_candidates: bool = False) -> dict:
        query = {"include_candidates": "true"} if include_candidates else None
        return self._call("GET", f"/workflows/matching/{quote(search_id)}", query=query)

    def cancel(self, search_id: str, *, reason: str) -> dict:
        return self._call("POST", f"/workflows/matching/{quote(search_id)}/cancel", {"reason": reason})

    def intervene(
        self, search_id: str, *, decision: str, note: str = "", approved_user_ids: list[str] | None = None
    ) -> dict:
        body: dict[str, Any] = {"decision": decision}
        if note:
            body["note"] = note
        if approved_user_ids is not None:
            body["approved_user_ids"] = approved_user_ids
        return self._call("POST", f"/workflows/matching/{quote(search_id)}/intervene", body)

    def status_batch(self, search_ids: list[str]) -> dict:
        if len(search_ids) > 100:
            raise ValueError("status:batch takes at most 100 search ids")
        return self._call("POST", "/workflows/matching/status:batch", {"search_ids": search_ids})

    # --- transport ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        query: dict | None = None,
        attempts: int | None = None,
    ) -> dict:
        # One client span per call (its retries inside); the requests instrumentation is held off
        # because it would rewrite `traceparent` after signing and break the SigV4 signature.
        name = f"Durable API {method} {_route_of(path)}"
        with tracing.tracer().start_as_current_span(name, kind=trace.SpanKind.CLIENT), suppress_http_instrumentation():
            return self._send(method, path, body, query=query, attempts=attempts)

    def _send(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        query: dict | None = None,
        attempts: int | None = None,
    ) -> dict:
        url = self.config.base_url + path + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        last_error: Exception | None = None
        maybe_delivered = False
        max_attempts = min(attempts or self.config.max_attempts, self.config.max_attempts)
        for attempt in range(1, max_attempts + 1):
            if not self.breaker.allow_request():
                current = self.breaker.state()
                raise DurableApiCircuitOpen(
                    f"{method} {path} not sent: {self.breaker.open_reason(current)}",
                    code="durable_circuit_open",
                    params={"request": f"{method} {path}", **self.breaker.open_params(current)},
                )
            headers = self._auth_headers(method, url, data)
            try:
                response = self.session.request(
                    method,
                    url,
                    data=data or None,
                    headers=headers,
                    timeout=(self.config.connect_timeout, self.config.read_timeout),
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_error = exc
                maybe_delivered = maybe_delivered or _may_have_arrived(exc)
                self.breaker.record_failure(f"{method} {path}: {type(exc).__name__}")
            else:
                if response.status_code < 500:
                    self.breaker.record_success()  # the API answered, even if it refused
                    if response.status_code < 400:
                        return response.json() if response.content else {}
                    raise DurableApiRejected(response.status_code, _safe_json(response))
                last_error = DurableApiUnavailable(f"{method} {path} answered {response.status_code}")
                maybe_delivered = True
                self.breaker.record_failure(f"{method} {path}: HTTP {response.status_code}")
            if attempt < max_attempts:
                delay = self.config.backoff_seconds * 2 ** (attempt - 1)
                logger.info(
                    "Durable API %s %s failed (%s); retry %d in %.1fs", method, path, last_error, attempt, delay
                )
                time.sleep(delay)
        raise DurableApiUnavailable(
            f"{method} {path} failed after {max_attempts} tries: {last_error}",
            maybe_delivered=maybe_delivered,
            code="durable_unavailable",
            params={"request": f"{method} {path}", "count": max_attempts, "error": str(last_error)},
        )

    def _auth_headers(self, method: str, url: str, data: bytes) -> dict[str, str]:
        # The trace context is a header like any other: SigV4 signs it with the rest.
        headers = {"Content-Type": "application/json", "Accept": "application/json", **tracing.carrier()}
        if self.config.auth_mode == "api_key":
            return {**headers, self.config.api_key_header: self.config.api_key}
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        # Signed per attempt: the signature carries a timestamp, and a retry is a new request.
        _TraceSigningSigV4Auth(
            self._credentials.get_frozen_credentials(), self.config.sigv4_service, self.config.region
        ).add_auth(request)
        return dict(request.headers.items())


class _TraceSigningSigV4Auth(SigV4Auth):
    """SigV4 that signs the W3C trace headers too.

    botocore leaves `traceparent`/`tracestate` out of the signature (a proxy may add them in flight);
    here they are signed like any other header, so the trace context the Durable API continues is
    the console's, unaltered on the way. Verifiers check the headers the signature names."""

    def headers_to_sign(self, request):
        header_map = super().headers_to_sign(request)
        for name, value in request.headers.items():
            if name.lower() in tracing.CARRIER_KEYS:
                header_map[name.lower()] = value
        return header_map


def _route_of(path: str) -> str:
    """The path with the search id left out: span names stay few."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[3] not in ("start", "status:batch"):
        parts[3] = "{search_id}"
    return "/".join(parts)


def _may_have_arrived(exc: Exception) -> bool:
    """False only when the request certainly never reached the server."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        cause = exc.args[0] if exc.args else None
        reason = getattr(cause, "reason", cause)
        return not isinstance(reason, urllib3.exceptions.NewConnectionError)
    return True


def _safe_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]
