"""API keys: create, import and revoke; keys are stored as their SHA-256 and compared in constant time."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from matching.models import (
    ApiClientKey,
)
from matching.selectors import api_key_live_q


def hash_api_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no password stretching).
    return hashlib.sha256(raw_key.encode()).hexdigest()


# A client (a key's name) may hold two live keys at once: the old one and its replacement, while
# the client's configuration moves from one to the other. A third would mean a rotation was never
# finished, so it is refused.
MAX_ACTIVE_KEYS_PER_CLIENT = 2


class TooManyActiveKeys(ValueError):
    """The client already has MAX_ACTIVE_KEYS_PER_CLIENT keys in use; the message says what to do."""


def api_key_create(
    *, name: str, is_trusted_service: bool = False, expires_at: datetime | None = None, note: str = ""
) -> tuple[ApiClientKey, str]:
    """Create a key and return it with its raw value, which is never stored or shown again."""
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ValueError(f"The expiry {timezone.localtime(expires_at, UTC):%Y-%m-%d %H:%M} UTC is in the past.")
    with transaction.atomic():
        # Locking the client's live keys serialises two rotations of the same client.
        live = list(
            ApiClientKey.objects.select_for_update()
            .filter(api_key_live_q(now), name=name)
            .order_by("created_at")
            .values_list("prefix", flat=True)
        )
        if len(live) >= MAX_ACTIVE_KEYS_PER_CLIENT:
            raise TooManyActiveKeys(
                f"{name} already has {len(live)} keys in use ({', '.join(live)}): revoke the old one "
                "once the client has moved to the new one, then create another."
            )
        prefix = secrets.token_hex(4)
        raw_key = f"sbk_{prefix}_{secrets.token_urlsafe(32)}"
        key = ApiClientKey.objects.create(
            name=name,
            prefix=prefix,
            key_hash=hash_api_key(raw_key),
            is_trusted_service=is_trusted_service,
            expires_at=expires_at,
            note=note,
        )
    return key, raw_key


IMPORTED_KEY_MIN_LENGTH = 16


IMPORTED_KEY_MAX_LENGTH = 512


class ApiKeyImportRefused(ValueError):
    """The key cannot be imported; the message says why (never the key)."""


def api_key_import(
    *, name: str, raw_key: str, is_trusted_service: bool = False, expires_at: datetime | None = None, note: str = ""
) -> ApiClientKey:
    """Store the hash of a key a caller already holds (SnowTrace's shared SNOWBUDDY_API_KEY), so no
    caller changes on the day of the switch. The key keeps SnowTrace's format; authentication finds
    it by its digest. `prefix` is a random label for the audit and the admin, not part of the key."""
    raw_key = raw_key.strip()
    if not IMPORTED_KEY_MIN_LENGTH <= len(raw_key) <= IMPORTED_KEY_MAX_LENGTH:
        raise ApiKeyImportRefused(
            f"The key must be {IMPORTED_KEY_MIN_LENGTH}-{IMPORTED_KEY_MAX_LENGTH} characters; "
            "a shorter one is too easy to guess to keep."
        )
    if not raw_key.isprintable() or any(c.isspace() for c in raw_key) or not raw_key.isascii():
        raise ApiKeyImportRefused("The key must be printable ASCII without spaces (it travels in a header).")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyImportRefused(
            f"The expiry {timezone.localtime(expires_at, UTC):%Y-%m-%d %H:%M} UTC is in the past."
        )
    digest = hash_api_key(raw_key)
    if ApiClientKey.objects.filter(key_hash=digest).exists():
        raise ApiKeyImportRefused("This key is already stored (perhaps revoked): nothing was imported.")
    return ApiClientKey.objects.create(
        name=name,
        prefix=f"imp_{secrets.token_hex(4)}",
        key_hash=digest,
        is_trusted_service=is_trusted_service,
        imported=True,
        expires_at=expires_at,
        note=note,
    )


def api_key_revoke(*, key: ApiClientKey) -> bool:
    return bool(ApiClientKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()))
