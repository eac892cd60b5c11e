"""HTTP endpoints the durable workflow calls: the signed callback webhook and the candidates feed."""

from __future__ import annotations

import hmac
import json
import logging
import uuid

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from matching.models import Search
from matching.profile_source import prefiltered_profile_page
from matching.selectors import resort_regions
from workflows.durable.signing import WebhookVerificationError, verify
from workflows.globalcoach import InvalidVettingAnswer, MissingVettingToken, parse_vetting_answer
from workflows.services import WEBHOOK_STATUSES, workflow_callback_apply
from workflows.vetting import vetting_answer_apply, vetting_callback_verify

logger = logging.getLogger(__name__)

MAX_CANDIDATE_PAGE = 2000


@csrf_exempt
@require_POST
def matching_callback(request: HttpRequest) -> JsonResponse:
    if not settings.MATCHING_WEBHOOK_SECRET:
        logger.error("MATCHING_WEBHOOK_SECRET is not set; refusing workflow callbacks")
        return JsonResponse({"detail": "Webhook not configured."}, status=503)
    raw = request.body  # the exact bytes that were signed; verify before parsing
    try:
        webhook_id = verify(settings.MATCHING_WEBHOOK_SECRET, request.headers, raw)
    except WebhookVerificationError as exc:
        logger.warning("rejected a workflow callback: %s", exc.reason)
        return JsonResponse({"detail": "Invalid signature.", "reason": exc.reason}, status=401)
    try:
        body = json.loads(raw)
        _validate_callback(body)
    except (ValueError, TypeError) as exc:
        return JsonResponse({"detail": f"Malformed callback: {exc}"}, status=400)
    outcome = workflow_callback_apply(webhook_id=webhook_id[:200], body=body)
    if outcome == "unknown_search":
        return JsonResponse({"detail": "Unknown search.", "outcome": outcome}, status=404)
    return JsonResponse({"outcome": outcome})


def _validate_callback(body) -> None:
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    uuid.UUID(str(body.get("search_id")))
    for name in ("attempt", "version"):
        if isinstance(body.get(name), bool) or not isinstance(body.get(name), int) or body[name] < 0:
            raise ValueError(f"{name} must be a non-negative integer")
    if body.get("status") not in WEBHOOK_STATUSES:
        raise ValueError(f"unknown status {body.get('status')!r}")
    payload = body.get("payload", {})
    if payload is not None and not isinstance(payload, dict):
        raise ValueError("payload must be an object")
    results = (payload or {}).get("results") or []
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and {"user_id", "score", "breakdown", "rank"} <= set(r) for r in results
    ):
        raise ValueError("payload.results must be a list of matches")


def _bearer_ok(request: HttpRequest) -> bool:
    expected = settings.MATCHING_INTERNAL_TOKEN
    supplied = request.headers.get("Authorization", "")
    # compare_digest on equal-length bytes; an unset token never matches.
    return bool(expected) and hmac.compare_digest(supplied.encode(), f"Bearer {expected}".encode())


@require_GET
def search_candidates(request: HttpRequest, search_id: str) -> JsonResponse:
    """Prefiltered candidates for the durable workflow, one keyset page at a time."""
    if not _bearer_ok(request):
        return JsonResponse({"detail": "Invalid service token."}, status=401)
    try:
        after_id = int(request.GET.get("cursor") or 0)
        size = int(request.GET.get("page_size") or 1000)
    except ValueError:
        return JsonResponse({"detail": "cursor and page_size must be integers."}, status=400)
    if not 1 <= size <= MAX_CANDIDATE_PAGE or after_id < 0:
        return JsonResponse({"detail": f"page_size must be 1..{MAX_CANDIDATE_PAGE}."}, status=400)
    search = Search.objects.filter(pk=search_id).only("seeker_id", "preferences").first()
    if search is None:
        return JsonResponse({"detail": "Unknown search."}, status=404)
    profiles, next_after = prefiltered_profile_page(
        seeker_id=search.seeker_id,
        preferences=search.preferences,
        resort_regions=resort_regions(),
        after_id=after_id,
        size=size,
    )
    return JsonResponse(
        {"profiles": [p.to_dict() for p in profiles], "next_cursor": str(next_after) if next_after else None}
    )


@csrf_exempt
@require_POST
def globalcoach_callback(request: HttpRequest, search_id) -> JsonResponse:
    """GlobalCoach's answer to a Celery-engine search's vetting request. The per-attempt token in
    the body is the credential (only its hash is stored; compared in constant time)."""
    try:
        answer = parse_vetting_answer(request.body)
    except MissingVettingToken:
        return JsonResponse({"detail": "Invalid token.", "reason": "invalid_token"}, status=401)
    except InvalidVettingAnswer as exc:
        return JsonResponse({"detail": f"Malformed vetting answer: {exc}"}, status=400)
    vetting = vetting_callback_verify(search_id=search_id, token=answer.token)
    if vetting is None:
        logger.warning("rejected a GlobalCoach callback for %s: invalid token", search_id)
        return JsonResponse({"detail": "Invalid token.", "reason": "invalid_token"}, status=401)
    outcome = vetting_answer_apply(
        search_id=search_id,
        attempt=vetting.attempt,
        approved_user_ids=answer.approved_user_ids,
        rejected_user_ids=answer.rejected_user_ids,
        decided_by="globalcoach",
    )
    if outcome == "already_answered":
        return JsonResponse({"accepted": False, "reason": outcome})
    if outcome == "not_awaiting":
        return JsonResponse({"accepted": False, "reason": "the search is no longer waiting for vetting"}, status=409)
    return JsonResponse({"accepted": True, "outcome": outcome}, status=202)
