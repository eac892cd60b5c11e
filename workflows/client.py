"""The signed client for the Durable API (the Lambda side of the durable engine).

The only module that knows the Durable API's wire format. Requests are signed with SigV4
(botocore's SigV4Auth, service `lambda` for a Function URL or `execute-api` for API Gateway)
or carry an API key. Each attempt is signed right before it is sent, and exactly the signed
bytes are sent. Connection errors and 5xx are retried with backoff; 4xx never are.
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
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from django.conf import settings

logger = logging.getLogger(__name__)


class DurableApiError(Exception):
    """Base class: something went wrong talking to the Durable API."""


class DurableApiConfigError(DurableApiError):
    """The client cannot be built from the current settings."""


class DurableApiUnavailable(DurableApiError):
    """Connection failures or 5xx answers persisted through every retry. Safe to try later."""


class DurableApiRejected(DurableApiError):
    """A 4xx answer: the request itself is wrong (or not allowed). Retrying will not help."""

    def __init__(self, status_code: int, body: Any):
        super().__init__(f"Durable API answered {status_code}: {body}")
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
    def __init__(self, config: DurableApiConfig, *, session: requests.Session | None = None):
        self.config = config
        self.session = session or requests.Session()
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
            config = replace(config, max_attempts=1, connect_timeout=1.0, read_timeout=5.0)
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
        )

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

    def _call(self, method: str, path: str, body: dict | None = None, *, query: dict | None = None) -> dict:
        url = self.config.base_url + path + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        last_error: Exception | None = None
        for attempt in range(1, self.config.max_attempts + 1):
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
            else:
                if response.status_code < 400:
                    return response.json() if response.content else {}
                if response.status_code < 500:
                    raise DurableApiRejected(response.status_code, _safe_json(response))
                last_error = DurableApiUnavailable(f"{method} {path} answered {response.status_code}")
            if attempt < self.config.max_attempts:
                delay = self.config.backoff_seconds * 2 ** (attempt - 1)
                logger.info(
                    "Durable API %s %s failed (%s); retry %d in %.1fs", method, path, last_error, attempt, delay
                )
                time.sleep(delay)
        raise DurableApiUnavailable(f"{method} {path} failed after {self.config.max_attempts} tries: {last_error}")

    def _auth_headers(self, method: str, url: str, data: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.config.auth_mode == "api_key":
            return {**headers, self.config.api_key_header: self.config.api_key}
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        # Signed per attempt: the signature carries a timestamp, and a retry is a new request.
        SigV4Auth(self._credentials.get_frozen_credentials(), self.config.sigv4_service, self.config.region).add_auth(
            request
        )
        return dict(request.headers.items())


def _safe_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]
