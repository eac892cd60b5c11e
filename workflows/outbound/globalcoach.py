"""GlobalCoach, the external vetting provider: the only module that knows its wire format.

Request:  ``POST {MATCHING_VETTING_URL}/vetting-requests`` ``{candidate_ids, callback_url, token}``
          with ``Idempotency-Key`` (a resend returns the first request) and, when configured,
          ``Authorization: Bearer {MATCHING_VETTING_API_KEY}`` -> ``2xx {"request_id", ...}``.
Answer:   later, GlobalCoach POSTs ``{token, approved_user_ids, rejected_user_ids}`` to ``callback_url``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

MAX_IDS = 1000
MAX_TOKEN_LENGTH = 512


class GlobalCoachError(Exception):
    """Base of this module's errors."""


class GlobalCoachConfigError(GlobalCoachError):
    """Vetting on the Celery engine is not configured."""


class GlobalCoachUnavailable(GlobalCoachError):
    """Worth another try: a network error, a timeout, a 5xx, 408 or 429."""


class GlobalCoachRejected(GlobalCoachError):
    """GlobalCoach refused the request (a 4xx); sending it again will not help."""


class InvalidVettingAnswer(GlobalCoachError):
    """A callback body that is not a vetting answer."""


class MissingVettingToken(InvalidVettingAnswer):
    """A callback body without its token: not authenticated."""


@dataclass(frozen=True)
class GlobalCoachConfig:
    base_url: str
    callback_base_url: str
    api_key: str
    timeout_seconds: float

    @classmethod
    def from_settings(cls) -> GlobalCoachConfig:
        missing = [
            name
            for name in ("MATCHING_VETTING_URL", "MATCHING_VETTING_CALLBACK_BASE_URL")
            if not getattr(settings, name)
        ]
        if missing:
            raise GlobalCoachConfigError(f"vetting on the Celery engine needs {', '.join(missing)}")
        return cls(
            base_url=settings.MATCHING_VETTING_URL.rstrip("/"),
            callback_base_url=settings.MATCHING_VETTING_CALLBACK_BASE_URL.rstrip("/"),
            api_key=settings.MATCHING_VETTING_API_KEY,
            timeout_seconds=float(settings.MATCHING_VETTING_HTTP_TIMEOUT_SECONDS),
        )

    def callback_url(self, search_id) -> str:
        """The console route GlobalCoach answers a search's vetting request on."""
        return f"{self.callback_base_url}/webhooks/globalcoach/{search_id}"


@dataclass(frozen=True)
class VettingAnswer:
    token: str
    approved_user_ids: list[str]
    rejected_user_ids: list[str]


class GlobalCoachClient:
    def __init__(self, config: GlobalCoachConfig, session: requests.Session | None = None) -> None:
        self.config = config
        self.session = session or requests.Session()

    @classmethod
    def from_settings(cls) -> GlobalCoachClient:
        return cls(GlobalCoachConfig.from_settings())

    def request_vetting(self, *, candidate_ids: list[str], callback_url: str, token: str, idempotency_key: str) -> str:
        """Ask GlobalCoach to vet `candidate_ids`; returns its request id."""
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        body = json.dumps({"candidate_ids": candidate_ids, "callback_url": callback_url, "token": token})
        try:
            response = self.session.post(
                f"{self.config.base_url}/vetting-requests",
                data=body,
                headers=headers,
                timeout=(3, self.config.timeout_seconds),
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise GlobalCoachUnavailable(f"GlobalCoach unreachable: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise GlobalCoachRejected(f"GlobalCoach request failed: {type(exc).__name__}") from None
        status = response.status_code
        if status >= 500 or status in (408, 429):
            raise GlobalCoachUnavailable(f"GlobalCoach answered HTTP {status}")
        if not 200 <= status < 300:
            raise GlobalCoachRejected(f"GlobalCoach refused the request: HTTP {status}")
        try:
            return str(response.json().get("request_id") or "")
        except (ValueError, AttributeError):
            return ""


def parse_vetting_answer(data: Any) -> VettingAnswer:
    """A parsed callback body, validated: `token` and two lists of user ids."""
    if not isinstance(data, dict):
        raise InvalidVettingAnswer("expected a JSON object")
    token = data.get("token")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise MissingVettingToken("token is missing")
    lists = {}
    for name in ("approved_user_ids", "rejected_user_ids"):
        value = data.get(name, [])
        if not isinstance(value, list) or len(value) > MAX_IDS or not all(isinstance(v, str) for v in value):
            raise InvalidVettingAnswer(f"{name} must be a list of user ids")
        lists[name] = value
    return VettingAnswer(token=token, **lists)
