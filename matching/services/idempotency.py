"""`Idempotency-Key` on submit: a key names one search per user for a day."""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from matching.models import (
    Search,
    SubmitIdempotencyKey,
)


class IdempotencyKeyReused(Exception):
    """The key was already used by this user with another request body (422 in the IETF draft)."""


def idempotency_key_take(*, seeker_id: str, key: str, fingerprint: str) -> Search | None:
    """Bind `key` to the submit being made, inside the caller's transaction.

    Returns the search an earlier request with this key created (the caller returns it instead of
    creating another), or None when this request is the first: the caller then creates the search
    and calls `idempotency_key_attach`. The unique (user, key) row decides: a concurrent request
    with the same key blocks on it until the first commits, then reads the first one's search.
    Raises IdempotencyKeyReused when the key came with another body. Keys expire after
    MATCHING_IDEMPOTENCY_TTL_SECONDS.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.MATCHING_IDEMPOTENCY_TTL_SECONDS)
    SubmitIdempotencyKey.objects.filter(seeker_id=seeker_id, key=key, created_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            SubmitIdempotencyKey.objects.create(seeker_id=seeker_id, key=key, fingerprint=fingerprint)
    except IntegrityError:
        first = SubmitIdempotencyKey.objects.select_related("search").get(seeker_id=seeker_id, key=key)
        if not hmac.compare_digest(first.fingerprint, fingerprint):
            raise IdempotencyKeyReused(key) from None
        return first.search
    return None


def idempotency_key_attach(*, seeker_id: str, key: str, search: Search) -> None:
    SubmitIdempotencyKey.objects.filter(seeker_id=seeker_id, key=key, search__isnull=True).update(search=search)


def idempotency_keys_purge(*, now=None, batch_size: int = 5000) -> int:
    """Delete keys older than their time to live (beat runs it)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.MATCHING_IDEMPOTENCY_TTL_SECONDS)
    ids = list(SubmitIdempotencyKey.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch_size])
    return SubmitIdempotencyKey.objects.filter(pk__in=ids).delete()[0]
