"""Verify incoming requests the way a Function URL / API Gateway would.

Two modes, matching the console's ``MATCHING_WORKFLOW_AUTH_MODE``:

* ``iam_sigv4``: recompute the AWS Signature Version 4 of the request with
  botocore's own ``SigV4Auth`` from the configured secret of the access key
  that signed it, and compare in constant time.
* ``api_key``: a shared key in a header (default ``X-API-Key``).

Everything here is pure (no sockets) so it can be tested without a server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_CLOCK_SKEW_SECONDS = 300
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+"
    r"Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed_headers>[^,\s]+)\s*,\s*"
    r"Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)

Headers = Sequence[tuple[str, str]]


class AuthError(Exception):
    """The request is not authenticated. ``reason`` is for logs, not for callers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SigV4Config:
    """What a signed request must match.

    ``credentials`` maps access key id to secret key. ``session_tokens`` optionally
    pins the session token a key must present (temporary credentials).
    """

    credentials: Mapping[str, str]
    region: str
    service: str
    max_skew_seconds: int = MAX_CLOCK_SKEW_SECONDS
    session_tokens: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiKeyConfig:
    keys: frozenset[str]
    header: str = "X-API-Key"


@dataclass(frozen=True)
class AuthConfig:
    """Which modes the server accepts; a request passes if one accepted mode verifies it."""

    sigv4: SigV4Config | None = None
    api_key: ApiKeyConfig | None = None

    @property
    def modes(self) -> list[str]:
        modes = []
        if self.sigv4 is not None:
            modes.append("iam_sigv4")
        if self.api_key is not None:
            modes.append("api_key")
        return modes


def _header_values(headers: Headers, name: str) -> list[str]:
    lname = name.lower()
    return [value for key, value in headers if key.lower() == lname]


def _single_header(headers: Headers, name: str) -> str | None:
    values = _header_values(headers, name)
    if len(values) > 1:
        raise AuthError(f"duplicate {name} header")
    return values[0] if values else None


def _parse_amz_date(value: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(value, SIGV4_TIMESTAMP).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise AuthError("malformed X-Amz-Date") from exc


def verify_sigv4(
    *,
    method: str,
    raw_path: str,
    headers: Headers,
    body: bytes,
    config: SigV4Config,
    now: dt.datetime | None = None,
) -> str:
    """Verify a SigV4 ``Authorization`` header; return the access key id that signed.

    ``raw_path`` is the request target exactly as received (path and query, still
    percent-encoded), because the signer canonicalised the URL it sent.
    Raises ``AuthError`` on any mismatch.
    """
    authorization = _single_header(headers, "Authorization")
    if not authorization:
        raise AuthError("missing Authorization header")
    match = _AUTH_RE.match(authorization.strip())
    if match is None:
        raise AuthError("Authorization is not an AWS4-HMAC-SHA256 header")

    scope = match["credential"].split("/")
    if len(scope) != 5:
        raise AuthError("malformed credential scope")
    access_key, scope_date, region, service, terminator = scope
    if terminator != "aws4_request":
        raise AuthError("credential scope does not end in aws4_request")

    secret = config.credentials.get(access_key)
    if secret is None:
        raise AuthError("unknown access key")
    # Compare region and service as well as the signature: a signature made for
    # another region or service must not be accepted here even if it verified.
    if not hmac.compare_digest(region.encode(), config.region.encode()):
        raise AuthError("credential scope names another region")
    if not hmac.compare_digest(service.encode(), config.service.encode()):
        raise AuthError("credential scope names another service")

    amz_date = _single_header(headers, "X-Amz-Date")
    if amz_date is None:
        raise AuthError("missing X-Amz-Date header")
    signed_at = _parse_amz_date(amz_date)
    if scope_date != amz_date[:8]:
        raise AuthError("credential scope date differs from X-Amz-Date")
    current = now if now is not None else dt.datetime.now(dt.UTC)
    if abs((current - signed_at).total_seconds()) > config.max_skew_seconds:
        raise AuthError("X-Amz-Date is too far from the server clock")

    signed_names = match["signed_headers"].lower().split(";")
    if signed_names != sorted(set(signed_names)):
        raise AuthError("SignedHeaders is not a sorted, unique list")
    for required in ("host", "x-amz-date"):
        if required not in signed_names:
            raise AuthError(f"{required} is not signed")

    # botocore trusts a client-supplied X-Amz-Content-SHA256 as the payload hash,
    # so it must be checked against the body actually received.
    content_sha = _single_header(headers, "X-Amz-Content-SHA256")
    if content_sha is not None:
        actual = hashlib.sha256(body).hexdigest()
        if content_sha == UNSIGNED_PAYLOAD or not hmac.compare_digest(content_sha.lower().encode(), actual.encode()):
            raise AuthError("X-Amz-Content-SHA256 does not match the body")

    token = _single_header(headers, "X-Amz-Security-Token")
    expected_token = config.session_tokens.get(access_key)
    if expected_token is not None and (
        token is None or not hmac.compare_digest(token.encode(), expected_token.encode())
    ):
        raise AuthError("session token mismatch")

    request_headers: list[tuple[str, str]] = []
    for name in signed_names:
        values = _header_values(headers, name)
        if not values:
            raise AuthError(f"signed header {name} is missing")
        request_headers.extend((name, value) for value in values)

    # Rebuild only what was signed and let botocore canonicalise it, so this
    # check cannot drift from the signer the console uses.
    host = _single_header(headers, "Host") or "localhost"
    path, _, query = raw_path.partition("?")
    # Like AWS, canonicalise the query from its decoded pairs, so the same parameters
    # percent-encoded differently on the wire still verify.
    params = [(unquote_plus(k), unquote_plus(v)) for k, _, v in (p.partition("=") for p in query.split("&") if p)]
    request = AWSRequest(method=method.upper(), url=f"http://{host}{path}", data=body, params=params)
    request.headers = HTTPHeaders()
    for name, value in request_headers:
        request.headers[name] = value  # HTTPHeaders keeps repeated names
    request.context["timestamp"] = amz_date

    signer = _ListedHeadersSigV4Auth(Credentials(access_key, secret, token), config.service, config.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected.encode(), match["signature"].lower().encode()):
        raise AuthError("signature mismatch")
    return access_key


class _ListedHeadersSigV4Auth(SigV4Auth):
    """Canonicalises every header the request says it signed, as AWS does: botocore's own signer
    leaves some out (user-agent, the W3C trace headers), but a client may sign them, and the
    console signs `traceparent` (workflows/durable_console/client.py)."""

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return request.headers  # exactly the signed headers, rebuilt by verify_sigv4


def verify_api_key(*, headers: Headers, config: ApiKeyConfig) -> None:
    presented = _single_header(headers, config.header)
    if not presented:
        raise AuthError(f"missing {config.header} header")
    # Compare against every key so the time taken does not reveal which matched.
    ok = False
    for key in config.keys:
        ok |= hmac.compare_digest(presented.encode(), key.encode())
    if not ok:
        raise AuthError("invalid API key")


def authenticate(
    *,
    method: str,
    raw_path: str,
    headers: Headers,
    body: bytes,
    config: AuthConfig,
    now: dt.datetime | None = None,
) -> str:
    """Return the mode that accepted the request; raise ``AuthError`` otherwise.

    A request carrying a SigV4 ``Authorization`` header is judged by SigV4 alone,
    so a bad signature is never rescued by a good API key sent alongside it.
    """
    if not config.modes:
        raise AuthError("no authentication mode configured")
    authorization = _single_header(headers, "Authorization")
    if authorization and authorization.lstrip().startswith(ALGORITHM):
        if config.sigv4 is None:
            raise AuthError("SigV4 is not accepted here")
        verify_sigv4(
            method=method,
            raw_path=raw_path,
            headers=headers,
            body=body,
            config=config.sigv4,
            now=now,
        )
        return "iam_sigv4"
    if config.api_key is not None:
        verify_api_key(headers=headers, config=config.api_key)
        return "api_key"
    raise AuthError("missing SigV4 Authorization header")
