"""Demo searches in every state, so a newcomer to `make run` sees every console action at once.

Results come from the real matching engine over the demo profiles; events, dispatch records,
mirror rows, timelines and webhook deliveries are what the engines would have written. The demo
searches belong to seekers named `demo-seeker-*` and are replaced on every run.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from matching.candidates.cold_path import prefiltered_profiles
from matching.engine import ProfileIndex, SearchRequest
from matching.models import Engine, Search, SearchEvent, SearchEventKind, SearchResult, StaffAction, staff_actor
from matching.selectors import resort_regions
from matching.services.searches import search_event_record
from workflows.models import (
    DriftState,
    ExecutionTimelineEntry,
    SearchDispatch,
    TimelineKind,
    TimelineSource,
    WebhookDelivery,
    WebhookOutcome,
    WorkflowExecution,
)

DEMO_SEEKER_PREFIX = "demo-seeker-"
BUDDY = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7, "resorts": ["yuzawa_naeba"],
         "dates": ["2027-01-15", "2027-01-16"]}  # fmt: skip
COACH = {"role": "coach", "skill_level_min": 6, "skill_level_max": 10,
         "regions": ["Niigata Prefecture", "Nagano Prefecture"], "vetting_required": True, "limit": 10}  # fmt: skip
STUDENT = {"role": "student", "skill_level_min": 1, "skill_level_max": 5, "regions": ["Hokkaido"],
           "include_knowledge_score": True, "knowledge_score": 60}  # fmt: skip


@dataclass
class Story:
    """One demo search: where it ends, on which engine, and what happened on the way."""

    label: str
    engine: str
    status: str
    preferences: dict
    age: timedelta
    took: timedelta = timedelta(seconds=2)
    error: str = ""
    drift: str = ""
    dead_letter: bool = False
    staff: tuple[str, str, str] | None = None  # (action, reason, detail)


def _at(base: datetime, ms: int) -> datetime:
    return base + timedelta(milliseconds=ms)


class _Writer:
    def __init__(self, now: datetime, rng: random.Random):
        self.now, self.rng = now, rng
        self.regions = resort_regions()

    def search(self, story: Story, n: int) -> Search:
        created = self.now - story.age
        finished = created + story.took if story.status in ("succeeded", "failed", "cancelled", "timed_out") else None
        search = Search.objects.create(
            search_id=uuid.UUID(int=self.rng.getrandbits(128), version=4),
            seeker_id=f"{DEMO_SEEKER_PREFIX}{n:02d}",
            preferences=story.preferences,
            status=story.status,
            engine=story.engine,
            started_at=created + timedelta(milliseconds=180),
            finished_at=finished,
            deadline_at=created + timedelta(hours=1),
            error=story.error,
            drift_flagged=bool(story.drift),
            callback_dead_lettered=story.dead_letter,
        )
        return search

    def results(self, search: Search, *, keep: int | None = None) -> int:
        profiles = list(prefiltered_profiles(seeker_id=search.seeker_id, preferences=search.preferences,
                                             resort_regions=self.regions))  # fmt: skip
        request = SearchRequest.from_preferences(search.seeker_id, search.preferences)
        matches = ProfileIndex.build(profiles, self.regions).search(request)[:keep]
        nicknames = {p.user_id: p.nickname for p in profiles}
        SearchResult.objects.bulk_create(
            SearchResult(search=search, attempt=1, rank=rank, user_id=m.user_id, nickname=nicknames.get(m.user_id, ""),
                         score=m.score, breakdown=m.breakdown.to_dict())
            for rank, m in enumerate(matches, start=1)
        )  # fmt: skip
        return len(matches)

    def events(self, search: Search, story: Story, created: datetime) -> None:
        path = [(SearchEventKind.SUBMITTED, "", "pending", f"user:{search.seeker_id}", 0),
                (SearchEventKind.DISPATCHED, "pending", "dispatched", "system", 45)]  # fmt: skip
        if story.status != "dispatched":
            actor = "celery:worker@demo" if story.engine == Engine.CELERY else "durable-callback"
            kind = SearchEventKind.CLAIMED if story.engine == Engine.CELERY else SearchEventKind.RUNNING
            path.append((kind, "dispatched", "running", actor, 180))
        if story.preferences.get("vetting_required") and story.status != "dispatched":
            path.append((SearchEventKind.AWAITING_VETTING, "running", "awaiting_vetting", "durable-callback", 1450))
        if story.status in ("succeeded", "failed", "cancelled", "timed_out"):
            before = path[-1][2]
            if story.status == "cancelled":
                actor = staff_actor("olga-operator")
            else:
                actor = "celery:worker@demo" if story.engine == Engine.CELERY else "durable-callback"
            path.append(
                (SearchEventKind(story.status), before, story.status, actor, int(story.took.total_seconds() * 1000))
            )
        for kind, frm, to, actor, ms in path:
            detail = ""
            if kind == SearchEventKind.SUBMITTED:
                detail = f"engine={search.engine}"
            elif kind == story.status and story.status == "succeeded":
                detail = f"{search.result_count} results"
            elif kind == story.status:
                detail = story.error
            event = search_event_record(search_id=search.pk, attempt=1, kind=kind, from_status=frm, to_status=to,
                                        actor=actor, detail=detail)  # fmt: skip
            SearchEvent.objects.filter(pk=event.pk).update(at=_at(created, ms))
        Search.objects.filter(pk=search.pk).update(created_at=created, updated_at=_at(created, path[-1][4]))

    def dispatch(self, search: Search, created: datetime) -> None:
        d = SearchDispatch.objects.create(search=search, attempt=1, engine=search.engine, send_count=1,
                                          sent_at=_at(created, 40))  # fmt: skip
        SearchDispatch.objects.filter(pk=d.pk).update(created_at=_at(created, 3))

    def durable_mirror(self, search: Search, story: Story, created: datetime) -> None:
        name = f"{search.pk}-a1"
        execution = WorkflowExecution.objects.create(
            search=search, attempt=1, engine=Engine.DURABLE, execution_name=name,
            execution_arn=f"arn:aws:lambda:ap-northeast-1:123456789012:function:matching-workflow:$LATEST/durable-execution/{name}/demo",
            status=story.status, version=7, started_at=_at(created, 160),
            ended_at=search.finished_at, last_synced_at=self.now - timedelta(seconds=40),
            item_updated_at=search.finished_at or _at(created, 1450),
            drift_state=DriftState.FLAGGED if story.drift else DriftState.OK, drift_reason=story.drift,
            drift_checked_at=self.now - timedelta(minutes=2),
        )  # fmt: skip
        if story.status == "dispatched":
            return
        steps = [(0, "item", TimelineKind.API, "start", "dispatched", {"attempt": 1}),
                 (150, "history", TimelineKind.EXECUTION, "", "ExecutionStarted", None),
                 (180, "item", TimelineKind.STEP, "mark-running", "running", None),
                 (190, "history", TimelineKind.STEP, "fetch-candidates", "StepStarted", None),
                 (640, "history", TimelineKind.STEP, "fetch-candidates", "StepSucceeded", None),
                 (655, "history", TimelineKind.STEP, "score", "StepStarted", None),
                 (702, "history", TimelineKind.STEP, "score", "StepSucceeded", None)]  # fmt: skip
        if story.preferences.get("vetting_required"):
            steps += [(1400, "history", TimelineKind.CALLBACK, "vetting create callback id", "CallbackStarted", None),
                      (1450, "item", TimelineKind.CALLBACK, "vetting", "awaiting_vetting", {"candidates": 10}),
                      (1460, "history", TimelineKind.WAIT, "vetting", "WaitStarted", None)]  # fmt: skip
        end = int(story.took.total_seconds() * 1000)
        if story.status in ("succeeded", "failed", "timed_out", "cancelled"):
            steps.append(
                (
                    end,
                    "item",
                    TimelineKind.STEP,
                    "finish",
                    story.status,
                    {"error": story.error} if story.error else None,
                )
            )
        if story.status in ("succeeded", "failed", "timed_out"):
            steps += [(end + 20, "history", TimelineKind.STEP, "deliver-callback", "StepStarted", None),
                      (end + 95, "history", TimelineKind.STEP, "deliver-callback",
                       "StepSucceeded" if not story.dead_letter else "StepFailed",
                       {"attempts": 10} if story.dead_letter else None),
                      (end + 110, "history", TimelineKind.EXECUTION, "", "ExecutionSucceeded", None)]  # fmt: skip
        ExecutionTimelineEntry.objects.bulk_create(
            ExecutionTimelineEntry(execution=execution, key=f"demo:{i}", at=_at(created, ms), source=source,
                                   kind=kind, name=name_, event=event, detail=detail)
            for i, (ms, source, kind, name_, event, detail) in enumerate(steps)
        )  # fmt: skip
        if story.dead_letter:
            ExecutionTimelineEntry.objects.create(
                execution=execution, key="item:callback:dead_letter", at=_at(created, end + 2_160_000),
                source=TimelineSource.ITEM, kind=TimelineKind.WEBHOOK, name="callback", event="dead_letter",
                detail={"attempts": 10, "last_error": "HTTP 502 from the console"},
            )  # fmt: skip
        elif story.status in ("succeeded", "failed", "timed_out"):
            delivery = WebhookDelivery.objects.create(webhook_id=f"msg_{name}_v7", search=search, status=story.status,
                                                      version=7, outcome=WebhookOutcome.APPLIED)  # fmt: skip
            WebhookDelivery.objects.filter(pk=delivery.pk).update(received_at=_at(created, end + 60))

    def staff(self, search: Search, story: Story) -> None:
        if not story.staff:
            return
        action, reason, detail = story.staff
        row = StaffAction.objects.create(username="olga-operator", action=action, search=search, attempt=1,
                                         reason=reason, status_before="awaiting_vetting", status_after=story.status,
                                         outcome="done", detail=detail)  # fmt: skip
        StaffAction.objects.filter(pk=row.pk).update(at=search.finished_at or self.now)


def stories() -> list[Story]:
    m = timedelta(minutes=1)
    return [
        Story("succeeded on Celery", Engine.CELERY, "succeeded", BUDDY, 55 * m, timedelta(milliseconds=840)),
        Story("succeeded on Durable after vetting", Engine.DURABLE, "succeeded", COACH, 3 * 60 * m, 16 * m),
        Story("failed", Engine.CELERY, "failed", STUDENT, 2 * 60 * m, timedelta(milliseconds=310),
              error="internal error: OperationalError"),
        Story("cancelled by staff", Engine.DURABLE, "cancelled", COACH, 5 * 60 * m, 7 * m,
              error="cancelled: seeker withdrew the request",
              staff=("cancel", "seeker withdrew the request", "cancelled; the durable execution is being stopped")),
        Story("timed out waiting on vetting", Engine.DURABLE, "timed_out", COACH, 9 * 60 * m, 60 * m,
              error="vetting_timeout: GlobalCoach did not answer before the deadline"),
        Story("awaiting vetting", Engine.DURABLE, "awaiting_vetting", COACH, 6 * m),
        Story("awaiting vetting, past half its deadline", Engine.DURABLE, "awaiting_vetting", COACH, 38 * m),
        Story("stuck: dispatched, never started", Engine.DURABLE, "dispatched", BUDDY, 25 * m),
        Story("drift flagged", Engine.DURABLE, "running", BUDDY, 45 * m,
              drift="the durable execution does not exist (expired, deleted or never started) while the console "
                    "says running"),
        Story("callback dead-lettered", Engine.DURABLE, "succeeded", BUDDY, 4 * 60 * m, timedelta(seconds=3),
              dead_letter=True),
    ]  # fmt: skip


def demo_searches_create(*, now: datetime | None = None, seed: int = 2026, background: int = 40) -> list[str]:
    """Replace the demo searches: one per story, plus `background` finished ones over the last day
    for the dashboard's chart. Returns a line per story."""
    now = now or timezone.now()
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    writer = _Writer(now, rng)
    lines = []
    with transaction.atomic():
        # Webhook deliveries outlive their search (SET_NULL); the demo's own ids are reused on every run.
        WebhookDelivery.objects.filter(search__seeker_id__startswith=DEMO_SEEKER_PREFIX).delete()
        Search.objects.filter(seeker_id__startswith=DEMO_SEEKER_PREFIX).delete()
        all_stories = stories()
        for _ in range(background):
            ok = rng.random() < 0.85
            engine = Engine.CELERY if rng.random() < 0.6 else Engine.DURABLE
            took = timedelta(milliseconds=rng.randint(300, 9000 if engine == Engine.DURABLE else 2500))
            all_stories.append(Story("background", engine, "succeeded" if ok else "failed",
                                     rng.choice([BUDDY, STUDENT]), timedelta(minutes=rng.randint(60, 23 * 60)), took,
                                     error="" if ok else "internal error: TimeoutError"))  # fmt: skip
        for n, story in enumerate(all_stories, start=1):
            created = now - story.age
            search = writer.search(story, n)
            if story.status == "succeeded":
                keep = 3 if story.preferences.get("vetting_required") else None
                count = writer.results(search, keep=keep)
                Search.objects.filter(pk=search.pk).update(result_count=count)
                search.result_count = count
            writer.events(search, story, created)
            writer.dispatch(search, created)
            if story.engine == Engine.DURABLE:
                writer.durable_mirror(search, story, created)
            else:
                WorkflowExecution.objects.create(search=search, attempt=1, engine=Engine.CELERY,
                                                 celery_task_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                                                 status=story.status)  # fmt: skip
            writer.staff(search, story)
            if story.label != "background":
                lines.append(f"{story.label:<42} {search.pk}")
    return lines
