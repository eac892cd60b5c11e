"""One attempt run on the Celery engine: claim its lease, rank the candidates, store the results."""

from __future__ import annotations

import time

from django.utils import timezone

from matching import metrics
from matching.candidates.warm_index import candidate_index, profile_nicknames
from matching.engine import SearchRequest
from matching.models import (
    Engine,
)
from matching.services.leases import search_claim
from matching.services.searches import (
    search_succeed,
    search_time_out,
)
from workflows.celery_engine.heartbeat import LeaseHeartbeat
from workflows.celery_engine.stage_spans import stage_span
from workflows.celery_engine.vetting import vetting_start, vetting_wanted


def search_run_on_celery(
    *, search_id: str, attempt: int, worker: str = "celery", timings: dict[str, float] | None = None
) -> str:
    """Claim, match and finish one attempt under a renewed lease. Returns what happened, for the log.

    Candidates come from this process's warm index (matching/candidates/warm_index.py). `timings`, when
    given, receives each stage's seconds: claim, candidates (index refresh), search, store. With
    tracing on, each stage is a span, its SQL statements counted on it (stage_spans.py)."""
    stages = timings if timings is not None else {}
    began = time.perf_counter()
    with stage_span("claim"):
        search = search_claim(search_id=search_id, attempt=attempt, worker=worker)
    stages["claim"] = (lap := time.perf_counter()) - began
    if search is None:
        return "skipped: not claimable (finished, cancelled, superseded, or leased to a live worker)"
    generation = search.claim_generation
    with LeaseHeartbeat(search):
        if search.deadline_at <= timezone.now():
            search_time_out(search_id=search.pk, attempt=attempt, generation=generation)
            return "timed out before running"
        with stage_span("candidates"):
            index = candidate_index().current()
        stages["candidates"] = (mark := time.perf_counter()) - lap
        with stage_span("search"):
            request = SearchRequest.from_preferences(search.seeker_id, search.preferences)
            matches = index.search(request)
            nicknames = profile_nicknames(user_ids=[m.user_id for m in matches])
        stages["search"] = (lap := time.perf_counter()) - mark
        if matches and vetting_wanted(search.preferences):
            metrics.search_stages(engine=Engine.CELERY, stages=stages)
            return vetting_start(search=search, matches=matches, nicknames=nicknames)
        with stage_span("store"):
            succeeded = search_succeed(
                search_id=search.pk, attempt=attempt, matches=matches, nicknames=nicknames, generation=generation
            )
        stages["store"] = time.perf_counter() - lap
    metrics.search_stages(engine=Engine.CELERY, stages=stages)
    spent = ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in stages.items())
    if succeeded:
        return f"succeeded with {len(matches)} results from {len(index):,} indexed profiles ({spent})"
    return "finished, but the attempt had moved on (cancelled, timed out, or its lease was taken over)"
