"""Facts defined once (issue 16): the stored event kinds, webhook outcomes and timeline kinds, the
staff actor string, and what "stuck" means, asked of the database and of one loaded search alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone, translation

from matching.admin.searches import SearchEventAdmin
from matching.admin.words import actor_words
from matching.models import STAFF_ACTOR_PREFIX, Engine, Search, SearchEvent, SearchStatus, staff_actor
from matching.selectors import search_is_stuck, stuck_after_seconds, stuck_q
from matching.services.searches import search_event_record
from tests.console.conftest import make_search
from workflows.admin import ExecutionTimelineEntryAdmin, WebhookDeliveryAdmin
from workflows.models import CALLBACK_ANSWER_OUTCOMES, TimelineKind, WebhookOutcome

pytestmark = pytest.mark.django_db

# The strings stored in millions of rows: the enums must keep them exactly.
STORED_EVENT_KINDS = [
    "submitted", "dispatched", "claimed", "running", "awaiting_vetting", "succeeded", "failed", "cancelled",
    "timed_out", "retried", "lease_expired", "failed_over", "start_resolved", "remote_cancel", "intervened",
    "drift_flagged", "drift_acknowledged", "notification_redelivery",
]  # fmt: skip
STORED_OUTCOMES = ["applied", "duplicate", "stale_version", "ignored_terminal", "superseded_attempt",
                   "no_transition", "unknown_search", "wrong_engine", "received"]  # fmt: skip
STORED_TIMELINE_KINDS = ["step", "wait", "callback", "execution", "invocation", "invoke", "context", "webhook",
                         "transition", "api"]  # fmt: skip


def _filter_choices(admin_class, field: str) -> list[str]:
    spec = next(f for f in admin_class.list_filter if getattr(f, "parameter_name", None) == field)
    return [value for value, _label in spec.lookups(spec, None, None)]


def test_the_admin_filters_list_the_enums_stored_strings_in_order():
    assert _filter_choices(SearchEventAdmin, "kind") == STORED_EVENT_KINDS
    assert _filter_choices(WebhookDeliveryAdmin, "outcome") == STORED_OUTCOMES
    assert _filter_choices(ExecutionTimelineEntryAdmin, "kind") == STORED_TIMELINE_KINDS
    assert [str(o) for o in CALLBACK_ANSWER_OUTCOMES] == STORED_OUTCOMES[:6]
    assert WebhookOutcome.values == STORED_OUTCOMES and TimelineKind.values == STORED_TIMELINE_KINDS


def test_search_event_record_stores_the_kind_string_and_refuses_an_unknown_kind():
    search = make_search(status=SearchStatus.RUNNING)
    event = search_event_record(
        search_id=search.pk, attempt=1, kind="drift_flagged", actor="reconciler", detail="x" * 3000
    )
    stored = SearchEvent.objects.values("kind", "actor", "detail", "from_status", "to_status").get(pk=event.pk)
    assert stored == {"kind": "drift_flagged", "actor": "reconciler", "detail": "x" * 2000, "from_status": "",
                      "to_status": ""}  # fmt: skip
    with pytest.raises(ValueError):
        search_event_record(search_id=search.pk, attempt=1, kind="drift_flaged")


def test_the_staff_actor_string_and_its_words():
    assert STAFF_ACTOR_PREFIX == "staff:"
    assert staff_actor("olga") == "staff:olga"
    assert actor_words(staff_actor("olga")) == "staff olga"


def test_a_users_actor_string_is_worded_with_its_key_in_either_language():
    assert actor_words("user:u-1") == "user u-1"
    assert actor_words("user:u-1 via key:ab12cd34") == "user u-1 via key ab12cd34"
    with translation.override("zh-hant"):
        assert actor_words("user:u-1 via key:ab12cd34") == "使用者 u-1（經由金鑰 ab12cd34）"  # noqa: RUF001
    assert actor_words("durable-sync") == "durable-sync"  # other actors by name


@pytest.mark.parametrize("engine", [Engine.CELERY, Engine.DURABLE])
@pytest.mark.parametrize("status", [SearchStatus.DISPATCHED, SearchStatus.AWAITING_VETTING, SearchStatus.SUCCEEDED])
def test_stuck_is_the_same_in_the_database_and_on_a_loaded_search(settings, engine, status):
    settings.MATCHING_CELERY_STUCK_SECONDS = 900
    settings.MATCHING_DURABLE_START_GRACE_SECONDS = 300
    threshold = stuck_after_seconds(engine)
    assert threshold == (900 if engine == Engine.CELERY else 300)
    now = timezone.now()
    for idle in (threshold - 1, threshold + 1):
        search = make_search(status=status, engine=engine)
        Search.objects.filter(pk=search.pk).update(updated_at=now - timedelta(seconds=idle))
        search.refresh_from_db()
        in_db = Search.objects.filter(stuck_q(now), pk=search.pk).exists()
        loaded = search_is_stuck(status=search.status, engine=search.engine, updated_at=search.updated_at, now=now)
        assert in_db == loaded == (idle > threshold and status == SearchStatus.DISPATCHED), (idle, status)
