"""GlobalCoach vetting on the Celery engine, with the durable workflow's policy (docs/durable-state.md).

The worker scores, records the vetted top candidates and moves the search to `awaiting_vetting`
(one transaction), sends the request after commit and returns: no task waits. GlobalCoach's answer
arrives on the console's route (`POST /webhooks/globalcoach/{search_id}`, authenticated by the
per-attempt token) and finishes the search; staff may answer in its place (`search_intervene`);
beat times out a search whose answer did not come before the search deadline. A request that could
not be sent is re-sent by beat with backoff, and fails the search (`vetting_unavailable`) after
`MATCHING_VETTING_REQUEST_MAX_TRIES`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from matching import metrics
from matching.engine import Match
from matching.models import Search, SearchStatus, SearchVetting
from matching.services.searches import search_fail
from matching.services.vetting import search_await_vetting, search_finish_vetting, vetting_record_request
from workflows.outbound.globalcoach import (
    GlobalCoachClient,
    GlobalCoachConfigError,
    GlobalCoachRejected,
    GlobalCoachUnavailable,
)
from workflows.outbound.notifications import notifications_kick

logger = logging.getLogger(__name__)

REQUEST_LEASE = timedelta(seconds=60)
REQUEST_BACKOFF_SECONDS = 5
REQUEST_BACKOFF_MAX_SECONDS = 300


def vetting_wanted(preferences: dict) -> bool:
    return preferences.get("role") == "coach" and bool(preferences.get("vetting_required"))


def vetting_token(*, search_id, attempt: int, nonce: str) -> str:
    """The callback token of one attempt: derived from the console's secret key, so that a resend
    carries the same token while only its hash is stored."""
    message = f"globalcoach-vetting:{search_id}:{attempt}:{nonce}".encode()
    digest = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def vetting_start(*, search: Search, matches: Sequence[Match], nicknames: dict[str, str]) -> str:
    """Park a scored search on GlobalCoach: record the top candidates, move it to awaiting_vetting,
    then send the request (outside the transaction). Returns what happened, for the task's log."""
    top = list(matches)[: settings.MATCHING_VETTING_TOP_N]
    candidates = [{**m.to_dict(), "nickname": nicknames.get(m.user_id, "")} for m in top]
    nonce = secrets.token_hex(16)
    token = vetting_token(search_id=search.pk, attempt=search.attempt, nonce=nonce)
    vetting = search_await_vetting(
        search_id=search.pk,
        attempt=search.attempt,
        candidates=candidates,
        token_nonce=nonce,
        token_sha256=_sha256(token),
        generation=search.claim_generation,  # only the worker that holds the lease parks it
    )
    if vetting is None:
        return "scored, but the search had already moved on (cancelled or timed out)"
    outcome = vetting_request_send(vetting_id=vetting.pk)
    return f"awaiting vetting of {len(candidates)} candidate(s); request {outcome}"


def vetting_request_send(*, vetting_id: int, now=None) -> str:
    """Send (or re-send) one vetting request. Returns `sent`, `retry`, `failed` or `skipped`."""
    now = now or timezone.now()
    claimed = SearchVetting.objects.filter(
        Q(request_next_at__lte=now), pk=vetting_id, requested_at__isnull=True, answered_at__isnull=True
    ).update(request_next_at=now + REQUEST_LEASE)
    if not claimed:
        return "skipped"
    vetting = SearchVetting.objects.select_related("search").get(pk=vetting_id)
    search = vetting.search
    if search.attempt != vetting.attempt or search.status != SearchStatus.AWAITING_VETTING:
        vetting_record_request(vetting_id=vetting.pk, sent=False, error="the search moved on", next_at=None)
        return "skipped"
    token = vetting_token(search_id=search.pk, attempt=vetting.attempt, nonce=vetting.token_nonce)
    try:
        client = GlobalCoachClient.from_settings()
        request_id = client.request_vetting(
            candidate_ids=vetting.candidate_ids,
            callback_url=client.config.callback_url(search.pk),
            token=token,
            idempotency_key=f"{search.pk}-{vetting.attempt}-vetting",
        )
    except GlobalCoachUnavailable as exc:
        tries = vetting.request_tries + 1
        if tries < settings.MATCHING_VETTING_REQUEST_MAX_TRIES:
            wait = min(REQUEST_BACKOFF_SECONDS * 2 ** (tries - 1), REQUEST_BACKOFF_MAX_SECONDS)
            vetting_record_request(
                vetting_id=vetting.pk, sent=False, error=str(exc), next_at=now + timedelta(seconds=wait)
            )
            metrics.outbox_send(
                outbox="vetting", outcome="retry", search_id=search.pk, attempt=vetting.attempt,
                engine=search.engine, detail=f"{exc}; try {tries} again in {wait}s",
            )  # fmt: skip
            return "retry"
        return _give_up(vetting, f"{exc} (after {tries} tries)")
    except (GlobalCoachRejected, GlobalCoachConfigError) as exc:
        return _give_up(vetting, str(exc))
    vetting_record_request(vetting_id=vetting.pk, sent=True, provider_request_id=request_id)
    metrics.outbox_send(
        outbox="vetting", outcome="sent", search_id=search.pk, attempt=vetting.attempt, engine=search.engine
    )
    return "sent"


def _give_up(vetting: SearchVetting, error: str) -> str:
    vetting_record_request(vetting_id=vetting.pk, sent=False, error=error, next_at=None)
    metrics.outbox_send(
        outbox="vetting", outcome="failed", search_id=vetting.search_id, attempt=vetting.attempt, detail=error
    )
    if search_fail(search_id=vetting.search_id, attempt=vetting.attempt, error=f"vetting_unavailable: {error}"):
        notifications_kick(search_id=vetting.search_id)
    return "failed"


def vetting_requests_send_due(*, now=None, batch_size: int = 100) -> int:
    """Beat: send the vetting requests a crash or an outage left unsent. Returns how many went out."""
    now = now or timezone.now()
    due = SearchVetting.objects.filter(
        requested_at__isnull=True, answered_at__isnull=True, request_next_at__lte=now
    ).order_by("request_next_at")
    ids = list(due.values_list("pk", flat=True)[:batch_size])
    return sum(vetting_request_send(vetting_id=pk, now=now) == "sent" for pk in ids)


def vetting_callback_verify(*, search_id, token: str) -> SearchVetting | None:
    """The current attempt's vetting when `token` is its callback token, else None. Compared in
    constant time, with the same work when the search or its vetting does not exist."""
    attempt = Search.objects.filter(pk=search_id).values_list("attempt", flat=True).first()
    vetting = SearchVetting.objects.filter(search_id=search_id, attempt=attempt).first() if attempt else None
    matches = hmac.compare_digest(_sha256(token), vetting.token_sha256 if vetting else "0" * 64)
    return vetting if matches and vetting is not None else None


def vetting_answer_apply(
    *,
    search_id,
    attempt: int,
    approved_user_ids: Sequence[str],
    rejected_user_ids: Sequence[str] = (),
    decided_by: str,
    note: str = "",
) -> str:
    """Finish a search waiting on GlobalCoach with an answer (the provider's, or staff's)."""
    outcome = search_finish_vetting(
        search_id=search_id,
        attempt=attempt,
        approved_user_ids=approved_user_ids,
        rejected_user_ids=rejected_user_ids,
        decided_by=decided_by,
        note=note,
    )
    if outcome in ("succeeded", "failed"):
        notifications_kick(search_id=search_id)
    return outcome


class VettingDecisionInvalid(ValueError):
    """A staff decision that does not fit the pending vetting request."""


def vetting_intervene(
    *, search: Search, decision: str, acting_user: str, note: str = "", approved_user_ids: list[str] | None = None
) -> dict:
    """Staff answer a Celery search's pending vetting request, as the Durable API does for its own:
    approve all the vetted candidates (or the listed ones among them), or reject."""
    vetting = SearchVetting.objects.filter(search_id=search.pk, attempt=search.attempt).first()
    if vetting is None:
        raise VettingDecisionInvalid("the search has no pending vetting request")
    if decision == "approve":
        approved = list(vetting.candidate_ids) if approved_user_ids is None else list(approved_user_ids)
        if not approved:
            raise VettingDecisionInvalid("approving nobody is a rejection: use decision 'reject'")
        unknown = sorted(set(approved) - set(vetting.candidate_ids))
        if unknown:
            raise VettingDecisionInvalid(f"not among the vetted candidates: {', '.join(unknown)}")
    else:
        if approved_user_ids is not None:
            raise VettingDecisionInvalid("approved_user_ids only go with decision 'approve'")
        approved = []
    rejected = [c for c in vetting.candidate_ids if c not in set(approved)]
    outcome = vetting_answer_apply(
        search_id=search.pk,
        attempt=search.attempt,
        approved_user_ids=approved,
        rejected_user_ids=rejected,
        decided_by=acting_user,
        note=note or ("rejected by staff" if decision == "reject" else ""),
    )
    return {"search_id": str(search.pk), "decision": decision, "accepted": outcome in ("succeeded", "failed"),
            "outcome": outcome}  # fmt: skip
