"""Standard Webhooks signing and verification (https://www.standardwebhooks.com/).

The durable workflow signs the callback it posts to the console; the console (Django) imports
this same module to verify it, so it is pure stdlib and knows nothing about either side.

Scheme: ``webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{raw body}")>``,
with ``webhook-id`` (the idempotency key, stable across retries of one message) and
``webhook-timestamp`` (Unix seconds of this delivery attempt). The header may carry several
space-separated signatures (e.g. during a secret rotation); one valid ``v1`` match is enough.
The secret is ``whsec_<base64>`` (the Standard Webhooks form) or, failing that, raw text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "WebhookVerificationError",
    "decode_secret",
    "new_message_id",
    "sign",
    "signature_headers",
    "verify",
]

DEFAULT_TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class WebhookVerificationError(ValueError):
    """The request is not a valid signed webhook; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode_secret(secret: str | bytes) -> bytes:
    """The HMAC key: base64-decoded after ``whsec_``, else the raw text's UTF-8 bytes."""
    if isinstance(secret, bytes):
        if not secret:
            raise ValueError("webhook secret is empty")
        return secret
    if not secret:
        raise ValueError("webhook secret is empty")
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("webhook secret has the whsec_ prefix but is not valid base64") from exc
        if not key:
            raise ValueError("webhook secret is empty")
        return key
    return secret.encode("utf-8")


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def _to_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``v1,<base64>`` signature of one message."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + _to_bytes(body)
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    secret: str | bytes,
    body: bytes | str,
    *,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` (sign the exact bytes you send)."""
    msg_id = msg_id or new_message_id()
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(ts),
        HEADER_SIGNATURE: sign(secret, msg_id, ts, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # HTTP header names are case-insensitive; Django's META, WSGI and Lambda events differ.
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def verify(
    secret: str | bytes | list[str | bytes],
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check the signature of the raw ``body`` and return the ``webhook-id``.

    ``secret`` may be a list (old and new secret during a rotation). Raises
    ``WebhookVerificationError`` on a missing header, a timestamp more than
    ``tolerance_seconds`` away from ``now`` (either direction), or no matching signature.
    Parse the body only after this returns.
    """
    msg_id = _header(headers, HEADER_ID)
    timestamp = _header(headers, HEADER_TIMESTAMP)
    signature_header = _header(headers, HEADER_SIGNATURE)
    if not msg_id or not timestamp or not signature_header:
        raise WebhookVerificationError("missing_headers", "missing webhook-id, -timestamp or -signature")
    try:
        ts = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("bad_timestamp", "webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        raise WebhookVerificationError("timestamp_out_of_tolerance", "webhook-timestamp is too old or too new")

    secrets_ = secret if isinstance(secret, list) else [secret]
    expected = [sign(s, msg_id, ts, body).split(",", 1)[1].encode("ascii") for s in secrets_]
    matched = False
    for candidate in signature_header.split(" "):
        version, _, value = candidate.partition(",")
        if version != "v1" or not value:
            continue
        for exp in expected:
            # Keep comparing after a match so timing does not reveal which entry matched.
            matched |= hmac.compare_digest(exp, value.encode("ascii", "replace"))
    if not matched:
        raise WebhookVerificationError("bad_signature", "no webhook signature matches")
    return msg_id
