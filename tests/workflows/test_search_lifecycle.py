from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from matching.engine import Breakdown, Match
from matching.models import Engine, Search, SearchNotification, SearchResult, SearchStatus
from matching.services.leases import search_claim
from matching.services.searches import search_fail, search_succeed, searches_expire_overdue
from tests.helpers.bodies import BUDDY_FILLED as PREFS
from tests.helpers.dispatch import stub_dispatch_send
from workflows.dispatch.submit import search_cancel, search_retry, search_submit
from workflows.models import SearchDispatch, WorkflowExecution

pytestmark = pytest.mark.django_db

MATCH = Match(user_id="u1", score=0.8, breakdown=Breakdown(1.0, 1.0, 0.2, 1.0, None), rank=1)


@pytest.fixture
def search(monkeypatch, resorts):
    stub_dispatch_send(monkeypatch)
    return search_submit(seeker_id="owner-1", preferences=PREFS)


def test_submit_writes_the_search_and_its_dispatch_record_together(search):
    assert search.status == SearchStatus.PENDING and search.attempt == 1
    assert SearchDispatch.objects.filter(search=search, attempt=1).exists()
    assert search.deadline_at > timezone.now() + timedelta(seconds=3500)


def test_a_cancel_loses_to_a_worker_that_already_finished(search):
    assert search_claim(search_id=search.pk, attempt=1)
    assert search_succeed(search_id=search.pk, attempt=1, matches=[MATCH])
    assert not search_cancel(search=search, reason="user changed their mind", acting_user="staff:op")
    search.refresh_from_db()
    assert search.status == SearchStatus.SUCCEEDED


def test_a_worker_finishing_after_a_cancel_changes_nothing(search):
    assert search_claim(search_id=search.pk, attempt=1)
    assert search_cancel(search=search, reason="duplicate", acting_user="staff:op")
    assert not search_succeed(search_id=search.pk, attempt=1, matches=[MATCH])
    search.refresh_from_db()
    assert search.status == SearchStatus.CANCELLED
    assert not SearchResult.objects.filter(search=search).exists()


def test_a_terminal_search_cannot_be_claimed_again(search):
    search_fail(search_id=search.pk, attempt=1, error="boom")
    assert search_claim(search_id=search.pk, attempt=1) is None


def test_a_stale_attempt_cannot_claim_or_finish(search):
    Search.objects.filter(pk=search.pk).update(attempt=2)
    assert search_claim(search_id=search.pk, attempt=1) is None
    assert not search_succeed(search_id=search.pk, attempt=1, matches=[MATCH])


def test_an_overdue_search_times_out_and_a_finished_one_does_not(search, monkeypatch):
    stub_dispatch_send(monkeypatch)
    done = search_submit(seeker_id="owner-1", preferences=PREFS)
    search_claim(search_id=done.pk, attempt=1)
    search_succeed(search_id=done.pk, attempt=1, matches=[MATCH])
    Search.objects.update(deadline_at=timezone.now() - timedelta(seconds=1))

    assert searches_expire_overdue() == 1
    search.refresh_from_db()
    done.refresh_from_db()
    assert search.status == SearchStatus.TIMED_OUT and "deadline" in search.error
    assert done.status == SearchStatus.SUCCEEDED


def test_every_transition_is_recorded_with_its_actor(search):
    search_claim(search_id=search.pk, attempt=1, worker="celery:w1")
    search_cancel(search=search, reason="test", acting_user="staff:op")
    kinds = list(search.events.values_list("kind", "from_status", "to_status", "actor"))
    assert kinds == [
        ("submitted", "", "pending", "user:owner-1"),
        ("claimed", "pending", "running", "celery:w1"),
        ("cancelled", "running", "cancelled", "staff:op"),
    ]


def test_a_transient_error_on_the_last_try_fails_the_search_readably(search, monkeypatch):
    from workflows.tasks import MAX_RUN_RETRIES, run_search

    def flaky(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("workflows.tasks.search_run_on_celery", flaky)
    result = run_search.apply(args=[str(search.pk), 1], retries=MAX_RUN_RETRIES)
    assert result.get() == "failed: transient errors persisted"
    search.refresh_from_db()
    assert search.status == SearchStatus.FAILED
    assert "OperationalError" in search.error and "gave up after 4 tries" in search.error


def test_a_transient_error_before_the_last_try_asks_celery_to_retry(search, monkeypatch):
    from celery.exceptions import Retry

    from workflows.tasks import run_search

    def flaky(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("workflows.tasks.search_run_on_celery", flaky)
    monkeypatch.setattr(run_search, "retry", lambda **kw: Retry("retrying", exc=kw["exc"], when=kw["countdown"]))
    with pytest.raises(Retry):
        run_search.run(str(search.pk), 1)
    search.refresh_from_db()
    assert search.status == SearchStatus.PENDING


def test_a_bug_in_the_engine_fails_the_search_without_retrying(search, monkeypatch):
    from workflows.tasks import run_search

    def broken(**kwargs):
        raise KeyError("skill_level_min")

    monkeypatch.setattr("workflows.tasks.search_run_on_celery", broken)
    assert run_search.run(str(search.pk), 1) == "failed: internal error"
    search.refresh_from_db()
    assert search.status == SearchStatus.FAILED and search.error == "internal error: KeyError"


def test_a_retry_starts_a_new_attempt_with_a_new_dispatch_and_keeps_old_results(search):
    search_claim(search_id=search.pk, attempt=1)
    search_succeed(search_id=search.pk, attempt=1, matches=[MATCH])
    assert search_retry(search=search, acting_user="staff:op", reason="stale profiles")
    search.refresh_from_db()
    assert (search.attempt, search.status, search.result_count, search.finished_at) == (2, "pending", 0, None)
    assert SearchDispatch.objects.filter(search=search, attempt=2, sent_at__isnull=True).exists()
    assert SearchResult.objects.filter(search=search, attempt=1).count() == 1
    assert search.events.last().kind == "retried"


def test_an_active_search_is_not_retried_by_staff(search):
    assert not search_retry(search=search, acting_user="staff:op", reason="impatient")
    search.refresh_from_db()
    assert search.attempt == 1


def test_staff_can_rerun_a_finished_search_on_the_other_engine(search):
    search_fail(search_id=search.pk, attempt=1, error="boom")
    assert search_retry(search=search, acting_user="staff:op", reason="try durable", engine=Engine.DURABLE)
    search.refresh_from_db()
    assert (search.attempt, search.engine) == (2, Engine.DURABLE)
    assert SearchDispatch.objects.get(search=search, attempt=2).engine == Engine.DURABLE
    assert "rerunning attempt 1" in search.events.last().detail


def test_each_finished_attempt_writes_one_notification_when_snowtrace_listens(search, settings):
    settings.MATCHING_NOTIFICATION_WEBHOOK_URL = "http://127.0.0.1:9/notify"
    search_fail(search_id=search.pk, attempt=1, error="boom")
    search_retry(search=search, acting_user="staff:op", reason="again")
    search.refresh_from_db()
    search_cancel(search=search, reason="enough", acting_user="staff:op")
    rows = list(SearchNotification.objects.filter(search=search).order_by("attempt").values_list("attempt", "status"))
    assert rows == [(1, "failed"), (2, "cancelled")]


def test_no_notification_is_written_when_nobody_listens(search, settings):
    settings.MATCHING_NOTIFICATION_WEBHOOK_URL = ""
    search_fail(search_id=search.pk, attempt=1, error="boom")
    assert not SearchNotification.objects.exists()


def test_cancelling_a_celery_search_revokes_its_queued_task(search, django_capture_on_commit_callbacks):
    WorkflowExecution.objects.create(search=search, attempt=1, engine=Engine.CELERY, celery_task_id="task-123")
    with django_capture_on_commit_callbacks(execute=True):
        assert search_cancel(search=search, reason="duplicate", acting_user="staff:op")
    assert search.events.filter(kind="remote_cancel", detail="celery task task-123 revoked").exists()
