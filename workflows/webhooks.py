"""HTTP endpoints the durable workflow calls: the signed callback webhook and the candidates feed.

The feed the workflow uses is `/internal/searches/{id}/matches`: the console ranks the search on
its warm candidate index and answers the top K (docs/durable-state.md, "Where the ranking is
computed"). `/candidates` (prefiltered profiles, page by page, straight from the database) stays
for executions started by an earlier version of the workflow.

Both answer errors in the project's one JSON shape (snowbuddy/errors.py). Every part of a body
or a query is checked here before a service sees it, so no input reaches the database unchecked.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from matching.candidates.cold_path import prefiltered_profile_page
from matching.candidates.warm_index import rank_candidates
from matching.models import Search
from matching.selectors import resort_regions
from matching.vocabulary.ids import parse_uuid
from snowbuddy import json_input
from snowbuddy.errors import error_response, method_not_allowed, validation_body
from workflows.celery_engine.vetting import vetting_answer_apply, vetting_callback_verify
from workflows.durable.signing import WebhookVerificationError, verify
from workflows.durable_console.callback_contract import (
    BREAKDOWN_DIMENSIONS,
    CALLBACK_FIELDS,
    DEFAULT_CANDIDATE_PAGE,
    ERROR_FIELDS,
    MATCH_FIELDS,
    MAX_ATTEMPT,
    MAX_CANDIDATE_PAGE,
    MAX_CURSOR,
    MAX_ERROR_CHARS,
    MAX_ERROR_CODE_CHARS,
    MAX_NICKNAME_CHARS,
    MAX_RESULTS,
    MAX_USER_ID_CHARS,
    MAX_VERSION,
    OPTIONAL_DIMENSION,
    PAYLOAD_FIELDS,
    WEBHOOK_STATUSES,
)
from workflows.durable_console.callbacks import workflow_callback_apply
from workflows.models import WebhookOutcome
from workflows.outbound.globalcoach import InvalidVettingAnswer, MissingVettingToken, parse_vetting_answer

logger = logging.getLogger(__name__)

# Printable ASCII, no space at either end (a proxy may strip it), at most the stored column's 200.
WEBHOOK_ID_RE = re.compile(r"[!-~](?:[ -~]{0,198}[!-~])?")


def allow_methods(*methods: str) -> Callable:
    """Like Django's require_http_methods, but the 405 is JSON in the project's shape."""

    def decorator(view):
        @wraps(view)
        def inner(request, *args, **kwargs):
            if request.method not in methods:
                return method_not_allowed(request, list(methods))
            return view(request, *args, **kwargs)

        return inner

    return decorator


# --- the callback webhook ----------------------------------------------------------------------


@csrf_exempt
@allow_methods("POST")
def matching_callback(request: HttpRequest) -> JsonResponse:
    if not settings.MATCHING_WEBHOOK_SECRET:
        logger.error("MATCHING_WEBHOOK_SECRET is not set; refusing workflow callbacks")
        return error_response(503, "not_configured", "Webhook not configured.")
    raw = request.body  # the exact bytes that were signed; verify before parsing
    try:
        webhook_id = verify(settings.MATCHING_WEBHOOK_SECRET, request.headers, raw)
    except WebhookVerificationError as exc:
        logger.warning("rejected a workflow callback: %s", exc.reason)
        return error_response(401, exc.reason, "Invalid signature.")
    if not WEBHOOK_ID_RE.fullmatch(webhook_id):  # stored whole: it is the idempotency key
        return error_response(400, "invalid_webhook_id", "webhook-id must be 1-200 printable ASCII characters.")
    try:
        body = json_input.loads(raw)
    except json_input.JsonInputError as exc:
        return error_response(400, exc.code, exc.detail)
    errors = callback_errors(body)
    if errors:
        return JsonResponse(validation_body(errors), status=400)
    outcome = workflow_callback_apply(webhook_id=webhook_id, body=body)
    if outcome == WebhookOutcome.UNKNOWN_SEARCH:
        return error_response(404, "unknown_search", "Unknown search.")
    if outcome == WebhookOutcome.WRONG_ENGINE:
        # A valid signature does not make the durable engine the owner of a Celery search.
        return error_response(409, "wrong_engine", "The search does not run on the durable engine.")
    return JsonResponse({"outcome": outcome})


class _Errors:
    def __init__(self):
        self.items: list[tuple[str | None, str, str]] = []

    def add(self, attr: str | None, code: str, detail: str) -> None:
        self.items.append((attr, code, detail))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, float) and math.isfinite(value)) or _is_int(value)


def _check_int(errors: _Errors, container: dict, key: str, low: int, high: int, *, at: str = "") -> None:
    """An integer in [low, high]. A number with no fraction (7.0) is that integer, as JSON Schema
    counts it; it is stored back as an int, so what is applied is an int."""
    value = container.get(key)
    if isinstance(value, float) and value.is_integer() and low <= value <= high:
        value = container[key] = int(value)
    attr = f"{at}{key}"
    if not _is_int(value):
        errors.add(attr, "invalid", "Must be an integer.")
    elif not low <= value <= high:
        errors.add(attr, "out_of_range", f"Must be between {low} and {high}.")


def _check_unknown(errors: _Errors, prefix: str, data: dict, known: tuple[str, ...]) -> None:
    for key in sorted(set(data) - set(known)):
        errors.add(f"{prefix}{key}", "unknown_field", "Unknown field.")


def callback_errors(body: Any) -> list[tuple[str | None, str, str]]:
    """Every problem of a callback body as (attr, code, detail); empty when it may be applied.

    The shape is docs/contracts.md's "Callback webhook"; the workflow writes exactly these keys.
    """
    errors = _Errors()
    if not isinstance(body, dict):
        errors.add(None, "invalid", "Expected a JSON object.")
        return errors.items
    _check_unknown(errors, "", body, CALLBACK_FIELDS)
    if parse_uuid(body.get("search_id")) is None:
        errors.add("search_id", "invalid", "Must be a UUID string (8-4-4-4-12 hex digits).")
    _check_int(errors, body, "attempt", 1, MAX_ATTEMPT)
    _check_int(errors, body, "version", 0, MAX_VERSION)
    status = body.get("status")
    if not isinstance(status, str) or status not in WEBHOOK_STATUSES:
        errors.add("status", "invalid_choice", f"Must be one of {', '.join(sorted(WEBHOOK_STATUSES))}.")
    payload = body.get("payload")
    if payload is None:
        return errors.items
    if not isinstance(payload, dict):
        errors.add("payload", "invalid", "Must be an object or null.")
        return errors.items
    _check_unknown(errors, "payload.", payload, PAYLOAD_FIELDS)
    _check_error(errors, payload.get("error"))
    pending = payload.get("pending_callback")
    if pending is not None and not isinstance(pending, dict):
        errors.add("payload.pending_callback", "invalid", "Must be an object or null.")
    results = payload.get("results")
    if results is None:
        return errors.items
    if not isinstance(results, list):
        errors.add("payload.results", "invalid", "Must be a list or null.")
    elif len(results) > MAX_RESULTS:
        errors.add("payload.results", "too_long", f"At most {MAX_RESULTS} results.")
    else:
        _check_results(errors, results)
    return errors.items


def _check_error(errors: _Errors, error: Any) -> None:
    if error is None:
        return
    if isinstance(error, str):
        if len(error) > MAX_ERROR_CHARS:
            errors.add("payload.error", "too_long", f"At most {MAX_ERROR_CHARS} characters.")
        return
    if not isinstance(error, dict):
        errors.add("payload.error", "invalid", "Must be a string, an object {code, message} or null.")
        return
    _check_unknown(errors, "payload.error.", error, ERROR_FIELDS)
    if not isinstance(error.get("code"), str) or not 1 <= len(error["code"]) <= MAX_ERROR_CODE_CHARS:
        errors.add("payload.error.code", "invalid", f"Must be a string of 1 to {MAX_ERROR_CODE_CHARS} characters.")
    message = error.get("message")
    if message is not None and (not isinstance(message, str) or len(message) > MAX_ERROR_CHARS):
        errors.add("payload.error.message", "invalid", f"Must be a string of at most {MAX_ERROR_CHARS} characters.")


def _check_results(errors: _Errors, results: list) -> None:
    ranks: set[int] = set()
    user_ids: set[str] = set()
    for i, match in enumerate(results):
        at = f"payload.results.{i}"
        if not isinstance(match, dict):
            errors.add(at, "invalid", "Must be an object.")
            continue
        _check_unknown(errors, f"{at}.", match, MATCH_FIELDS)
        user_id = match.get("user_id")
        if not isinstance(user_id, str) or not 1 <= len(user_id) <= MAX_USER_ID_CHARS:
            errors.add(f"{at}.user_id", "invalid", f"Must be a string of 1 to {MAX_USER_ID_CHARS} characters.")
        elif user_id in user_ids:
            errors.add(f"{at}.user_id", "duplicate", "The same user appears twice in the results.")
        else:
            user_ids.add(user_id)
        nickname = match.get("nickname", "")
        if not isinstance(nickname, str) or len(nickname) > MAX_NICKNAME_CHARS:
            errors.add(f"{at}.nickname", "invalid", f"Must be a string of at most {MAX_NICKNAME_CHARS} characters.")
        score = match.get("score")
        if not _is_number(score) or not 0 <= score <= 1:
            errors.add(f"{at}.score", "invalid", "Must be a number from 0 to 1.")
        rank = match.get("rank")
        if isinstance(rank, float) and rank.is_integer() and 1 <= rank <= MAX_RESULTS:
            rank = match["rank"] = int(rank)
        if not _is_int(rank) or not 1 <= rank <= MAX_RESULTS:
            errors.add(f"{at}.rank", "invalid", f"Must be an integer from 1 to {MAX_RESULTS}.")
        elif rank in ranks:
            errors.add(f"{at}.rank", "duplicate", "Two results have the same rank.")
        else:
            ranks.add(rank)
        _check_breakdown(errors, f"{at}.breakdown", match.get("breakdown"))


def _check_breakdown(errors: _Errors, at: str, breakdown: Any) -> None:
    if not isinstance(breakdown, dict):
        errors.add(at, "invalid", "Must be an object of per-dimension scores.")
        return
    _check_unknown(errors, f"{at}.", breakdown, (*BREAKDOWN_DIMENSIONS, OPTIONAL_DIMENSION))
    for name in (*BREAKDOWN_DIMENSIONS, OPTIONAL_DIMENSION):
        value = breakdown.get(name)
        if name == OPTIONAL_DIMENSION and value is None:
            continue
        if not _is_number(value) or not 0 <= value <= 1:
            errors.add(f"{at}.{name}", "invalid", "Must be a number from 0 to 1.")


# --- the candidates feed -----------------------------------------------------------------------


def _bearer_ok(request: HttpRequest) -> bool:
    expected = settings.MATCHING_INTERNAL_TOKEN
    supplied = request.headers.get("Authorization", "")
    # compare_digest on bytes; an unset token never matches.
    return bool(expected) and hmac.compare_digest(supplied.encode(), f"Bearer {expected}".encode())


def _bounded_int(raw: str | None, default: int, low: int, high: int) -> int | None:
    """A query parameter as an integer in [low, high], or None. ASCII digits only (no "+1" or " 1")."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if low <= value <= high else None


# Bearer-authenticated, no cookies: CSRF does not apply, and a POST is a 405, not a CSRF 403.
@csrf_exempt
@allow_methods("GET")
def search_candidates(request: HttpRequest, search_id: str) -> JsonResponse:
    """Prefiltered candidates for the durable workflow, one keyset page at a time."""
    if not _bearer_ok(request):
        return error_response(
            401, "authentication_failed", "Invalid service token.", headers={"WWW-Authenticate": "Bearer"}
        )
    search_uuid = parse_uuid(search_id)
    if search_uuid is None:
        return error_response(404, "unknown_search", "Unknown search.")
    after_id = _bounded_int(request.GET.get("cursor"), 0, 0, MAX_CURSOR)
    if after_id is None:
        return error_response(400, "invalid", "cursor must be a cursor this feed returned.", attr="cursor")
    size = _bounded_int(request.GET.get("page_size"), DEFAULT_CANDIDATE_PAGE, 1, MAX_CANDIDATE_PAGE)
    if size is None:
        return error_response(
            400, "invalid", f"page_size must be an integer from 1 to {MAX_CANDIDATE_PAGE}.", attr="page_size"
        )
    search = Search.objects.filter(pk=search_uuid).only("seeker_id", "preferences").first()
    if search is None:
        return error_response(404, "unknown_search", "Unknown search.")
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
@allow_methods("POST")
def globalcoach_callback(request: HttpRequest, search_id) -> JsonResponse:
    """GlobalCoach's answer to a Celery-engine search's vetting request. The per-attempt token in
    the body is the credential (only its hash is stored; compared in constant time)."""
    try:
        answer = parse_vetting_answer(json_input.loads(request.body))
    except json_input.JsonInputError as exc:
        return error_response(400, exc.code, exc.detail)
    except MissingVettingToken:
        return error_response(401, "invalid_token", "Invalid token.")
    except InvalidVettingAnswer as exc:
        return error_response(400, "invalid_vetting_answer", f"Malformed vetting answer: {exc}")
    vetting = vetting_callback_verify(search_id=search_id, token=answer.token)
    if vetting is None:
        logger.warning("rejected a GlobalCoach callback for %s: invalid token", search_id)
        return error_response(401, "invalid_token", "Invalid token.")
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
        return error_response(409, "not_awaiting_vetting", "The search is no longer waiting for vetting.")
    return JsonResponse({"accepted": True, "outcome": outcome}, status=202)


# Bearer-authenticated, no cookies: CSRF does not apply, and a POST is a 405, not a CSRF 403.
@csrf_exempt
@allow_methods("GET")
def search_matches(request: HttpRequest, search_id: str) -> JsonResponse:
    """The search ranked on this process's warm candidate index: top K, with nicknames."""
    if not _bearer_ok(request):
        return error_response(
            401, "authentication_failed", "Invalid service token.", headers={"WWW-Authenticate": "Bearer"}
        )
    search_uuid = parse_uuid(search_id)
    if search_uuid is None:
        return error_response(404, "unknown_search", "Unknown search.")
    search = Search.objects.filter(pk=search_uuid).only("seeker_id", "preferences").first()
    if search is None:
        return error_response(404, "unknown_search", "Unknown search.")
    try:
        ranking = rank_candidates(seeker_id=search.seeker_id, preferences=search.preferences)
    except (ValueError, TypeError, KeyError) as exc:
        return error_response(400, "invalid_preferences", f"The search's preferences are not valid: {exc}")
    return JsonResponse(
        {
            "matches": [{**m.to_dict(), "nickname": ranking.nicknames.get(m.user_id, "")} for m in ranking.matches],
            "candidate_count": ranking.candidate_count,
            "indexed_profiles": ranking.indexed_profiles,
        }
    )
