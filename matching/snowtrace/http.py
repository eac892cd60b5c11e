"""The shared transport of the SnowTrace clients: sessions, retries, timeouts, errors."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)
POST_RETRY_STATUSES = frozenset({408, 425, 429})  # besides any 5xx


class ServiceError(Exception):
    """Base class: talking to a SnowTrace service failed."""


class ServiceConfigError(ServiceError):
    """The client cannot be built from the current settings."""


class ServiceUnavailable(ServiceError):
    """Connection errors, timeouts or 5xx/429 answers persisted through every retry."""

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class ServiceRejected(ServiceError):
    """A 4xx answer (other than 429): the request is wrong or not allowed; retrying will not help."""

    def __init__(self, service: str, status_code: int, body: str):
        super().__init__(f"{service} answered {status_code}: {body[:300]}")
        self.status_code = status_code


class MalformedResponse(ServiceError):
    """The answer is not the JSON this client knows."""


@dataclass(frozen=True)
class ServiceConfig:
    name: str  # for messages: "user service", …
    base_url: str
    token: str = ""
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    retries: int = 3
    backoff_seconds: float = 0.5
    pool_size: int = 10

    @classmethod
    def from_settings(cls, name: str, *, url_setting: str, auth_setting: str, pool_size: int = 10) -> ServiceConfig:
        base_url = getattr(settings, url_setting)
        if not base_url:
            raise ServiceConfigError(f"{url_setting} is not set")
        return cls(
            name=name,
            base_url=base_url,
            token=getattr(settings, auth_setting),
            connect_timeout=settings.SNOWTRACE_HTTP_CONNECT_TIMEOUT_SECONDS,
            read_timeout=settings.SNOWTRACE_HTTP_READ_TIMEOUT_SECONDS,
            retries=settings.SNOWTRACE_HTTP_RETRIES,
            backoff_seconds=settings.SNOWTRACE_HTTP_BACKOFF_SECONDS,
            pool_size=pool_size,
        )


def build_session(config: ServiceConfig) -> requests.Session:
    """A session whose adapter retries idempotent GETs on connection errors, read timeouts,
    429 and 5xx, with exponential backoff (honouring Retry-After); 4xx are never retried."""
    retry = Retry(
        total=config.retries,
        connect=config.retries,
        read=config.retries,
        status=config.retries,
        other=0,
        backoff_factor=config.backoff_seconds,
        backoff_max=30,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=config.pool_size)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["Accept"] = "application/json"
    if config.token:
        session.headers["Authorization"] = f"Bearer {config.token}"
    return session


class ServiceClient:
    """GETs JSON from one service through the shared retrying session."""

    def __init__(self, config: ServiceConfig, *, session: requests.Session | None = None):
        self.config = config
        self.session = session or build_session(config)

    def get_json(self, path: str, *, params: dict[str, Any] | None = None, none_on_404: bool = False) -> Any:
        url = self.config.base_url + path
        name = self.config.name
        try:
            response = self.session.get(
                url,
                params=params,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ServiceUnavailable(f"{name} unreachable after {self.config.retries + 1} tries: {exc}") from None
        except requests.RequestException as exc:
            raise ServiceUnavailable(f"{name} request failed: {type(exc).__name__}: {exc}") from None
        if response.status_code == 404 and none_on_404:
            return None
        if response.status_code in RETRY_STATUSES:
            raise ServiceUnavailable(f"{name} answered {response.status_code} after {self.config.retries + 1} tries")
        if response.status_code >= 400:
            raise ServiceRejected(name, response.status_code, response.text)
        if response.status_code >= 300:
            raise MalformedResponse(f"{name} answered {response.status_code} (redirects are not followed)")
        try:
            return response.json()
        except ValueError:
            raise MalformedResponse(f"{name} answered {path} with something that is not JSON") from None

    def post_json(self, path: str, body: Any, *, headers: dict[str, str] | None = None) -> int:
        """POST a JSON body and return the 2xx status. ServiceUnavailable for what may pass (no
        answer, 5xx, 408, 425, 429), ServiceRejected for any other answer; the caller retries."""
        url = self.config.base_url + path
        name = self.config.name
        try:
            response = self.session.post(
                url,
                json=body,
                headers=headers,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            raise ServiceUnavailable(f"{name} gave no answer within {self.config.read_timeout:g}s") from None
        except requests.RequestException as exc:
            raise ServiceUnavailable(f"{name} unreachable: {type(exc).__name__}: {exc}"[:2000]) from None
        status_code = response.status_code
        if status_code >= 500 or status_code in POST_RETRY_STATUSES:
            raise ServiceUnavailable(f"{name} answered {status_code}", status_code=status_code)
        if status_code >= 300:
            raise ServiceRejected(name, status_code, response.text)
        return status_code

    def close(self) -> None:
        self.session.close()


def path_segment(value: str) -> str:
    return quote(value, safe="")
