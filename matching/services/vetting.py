"""Certification vetting of a coach search: waiting for the answer, the answer, and the request record."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from matching.engine import Breakdown, Match
from matching.models import (
    Search,
    SearchEventKind,
    SearchStatus,
    SearchVetting,
)
from matching.services.searches import _transition, search_record_engine_status


def search_await_vetting(
    *,
    search_id,
    attempt: int,
    candidates: list[dict],
    token_nonce: str,
    token_sha256: str,
    generation: int | None = None,
) -> SearchVetting | None:
    """Move a running search to `awaiting_vetting` and record what was sent for vetting, together.
    The request goes out after commit (workflows/celery_engine/vetting.py). None when the search moved on (or,
    given a claim `generation`, when that generation lost its lease)."""
    with transaction.atomic(durable=True):
        deadline = Search.objects.filter(pk=search_id).values_list("deadline_at", flat=True).first()
        moved = _transition(
            search_id,
            attempt=attempt,
            allowed_from=[SearchStatus.RUNNING],
            to=SearchStatus.AWAITING_VETTING,
            kind=SearchEventKind.AWAITING_VETTING,
            detail=f"{len(candidates)} candidate(s) sent to GlobalCoach for vetting",
            generation=generation,
            lease_expires_at=None,  # a wait on GlobalCoach holds no worker
        )
        if not moved:
            return None
        return SearchVetting.objects.create(
            search_id=search_id,
            attempt=attempt,
            deadline_at=deadline,
            candidates=candidates,
            token_nonce=token_nonce,
            token_sha256=token_sha256,
            request_next_at=timezone.now(),
        )


def search_finish_vetting(
    *,
    search_id,
    attempt: int,
    approved_user_ids: Sequence[str],
    rejected_user_ids: Sequence[str] = (),
    decided_by: str,
    note: str = "",
) -> str:
    """Apply a vetting answer: the approved ones among the vetted candidates are the results,
    re-ranked 1..n; nobody approved fails the search (`vetting_rejected`). One answer wins.

    Returns `succeeded`, `failed`, `already_answered` or `not_awaiting` (finished, cancelled, or
    timed out meanwhile). Runs in the caller's transaction if there is one (a staff answer's audit
    row commits with it).
    """
    with transaction.atomic():
        vetting = SearchVetting.objects.select_for_update().filter(search_id=search_id, attempt=attempt).first()
        if vetting is None:
            return "not_awaiting"
        if vetting.answered_at is not None:
            return "already_answered"
        status = Search.objects.filter(pk=search_id, attempt=attempt).values_list("status", flat=True).first()
        if status != SearchStatus.AWAITING_VETTING:
            return "not_awaiting"
        approved = set(approved_user_ids)
        kept = [c for c in vetting.candidates if c["user_id"] in approved]
        SearchVetting.objects.filter(pk=vetting.pk).update(
            answered_at=timezone.now(),
            answered_by=decided_by[:150],
            approved_user_ids=[c["user_id"] for c in kept],
            rejected_user_ids=[c for c in vetting.candidate_ids if c in set(rejected_user_ids)],
        )
        if not kept:
            error = f"vetting_rejected: {note or 'no candidate was approved'}"
            search_record_engine_status(
                search_id=search_id, attempt=attempt, status=SearchStatus.FAILED, error=error, actor=decided_by
            )
            return "failed"
        matches = [
            Match(user_id=c["user_id"], score=c["score"], breakdown=Breakdown.from_dict(c["breakdown"]), rank=rank)
            for rank, c in enumerate(kept, start=1)
        ]
        search_record_engine_status(
            search_id=search_id,
            attempt=attempt,
            status=SearchStatus.SUCCEEDED,
            matches=matches,
            nicknames={c["user_id"]: c.get("nickname", "") for c in kept},
            actor=decided_by,
        )
        return "succeeded"


def vetting_record_request(
    *, vetting_id: int, sent: bool, provider_request_id: str = "", error: str = "", next_at=None
) -> None:
    """Bookkeeping of one try to send a vetting request (the engine layer sends it)."""
    fields: dict = {"request_tries": F("request_tries") + 1, "request_error": error[:2000]}
    if sent:
        fields.update(requested_at=timezone.now(), request_next_at=None, provider_request_id=provider_request_id[:100])
    else:
        fields["request_next_at"] = next_at
    SearchVetting.objects.filter(pk=vetting_id).update(**fields)
