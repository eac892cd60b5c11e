"""A staff action and its audit row commit together or not at all (issue 16).

A fault is injected between the action's write and its audit row: the audit writer raises after
the action has written (the fake checks that it has). Afterwards the database must hold neither
the action's effect nor an audit row, and nothing must have been sent to an engine. Transactional
tests: the commits are real ones, as in production."""

from __future__ import annotations

import pytest

from matching.models import Engine, Search, SearchEvent, SearchStatus, SearchVetting, StaffAction
from matching.services.vetting import search_await_vetting
from tests.console.conftest import make_search
from workflows.models import DriftState, SearchDispatch, WorkflowExecution
from workflows.staff_actions import (
    search_staff_acknowledge,
    search_staff_cancel,
    search_staff_intervene,
    search_staff_retry,
)

pytestmark = pytest.mark.django_db(transaction=True)

BREAKDOWN = {"skill": 0.9, "location": 0.8, "availability": 1.0, "role": 1.0, "knowledge": None}


class AuditCrash(Exception):
    """The process dies between the action's write and its audit row."""


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("olga-operator", is_staff=True)


@pytest.fixture
def crash_at_audit(monkeypatch):
    """Make the audit writer fail, after noting what the action had written by then."""
    seen: list[str] = []

    def crash(*, search=None, **kwargs):
        seen.append(Search.objects.get(pk=search.pk).status)
        raise AuditCrash

    monkeypatch.setattr("workflows.staff_actions.staff_action_record", crash)
    return seen


@pytest.fixture
def sent(monkeypatch) -> list[tuple]:
    """What would have gone to an engine after commit (dispatches, stops, revokes)."""
    calls: list[tuple] = []
    monkeypatch.setattr("workflows.dispatch.submit.dispatch_schedule", lambda **kw: calls.append(("dispatch", kw)))
    monkeypatch.setattr("workflows.dispatch.submit.celery_revoke_send", lambda **kw: calls.append(("revoke", kw)))
    monkeypatch.setattr("workflows.dispatch.submit.durable_cancel_send", lambda **kw: calls.append(("stop", kw)))
    return calls


@pytest.mark.parametrize(("engine", "target"), [(Engine.CELERY, None), (Engine.DURABLE, Engine.CELERY)])
def test_a_retry_whose_audit_fails_leaves_no_new_attempt(staff, crash_at_audit, sent, engine, target):
    search = make_search(status=SearchStatus.FAILED, engine=engine)
    with pytest.raises(AuditCrash):
        search_staff_retry(search=search, user=staff, reason="worker bug fixed", engine=target)
    assert crash_at_audit == [SearchStatus.PENDING]  # the fault came after the new attempt was written
    stored = Search.objects.get(pk=search.pk)
    assert (stored.attempt, stored.status, stored.engine) == (1, SearchStatus.FAILED, engine)
    assert not SearchEvent.objects.filter(search=search, kind="retried").exists()
    assert not SearchDispatch.objects.filter(search=search, attempt=2).exists()
    assert not StaffAction.objects.exists() and sent == []


@pytest.mark.parametrize("engine", [Engine.CELERY, Engine.DURABLE])
def test_a_cancel_whose_audit_fails_cancels_nothing_and_stops_nothing(staff, crash_at_audit, sent, engine):
    search = make_search(status=SearchStatus.RUNNING, engine=engine)
    with pytest.raises(AuditCrash):
        search_staff_cancel(search=search, user=staff, reason="seeker asked")
    assert crash_at_audit == [SearchStatus.CANCELLED]
    assert Search.objects.get(pk=search.pk).status == SearchStatus.RUNNING
    assert not SearchEvent.objects.filter(search=search, kind="cancelled").exists()
    assert not StaffAction.objects.exists()
    assert sent == []  # the engine's work is stopped only once the cancel and its audit committed


def _awaiting_vetting_on_celery() -> tuple[Search, list[str]]:
    search = make_search(status=SearchStatus.RUNNING, engine=Engine.CELERY)
    candidates = [
        {"user_id": f"u{n:06d}", "score": 0.9 - n / 100, "breakdown": BREAKDOWN, "nickname": f"coach {n}"}
        for n in (1, 2, 3)
    ]
    search_await_vetting(
        search_id=search.pk, attempt=1, candidates=candidates, token_nonce="n" * 32, token_sha256="0" * 64
    )
    search.refresh_from_db()
    return search, [c["user_id"] for c in candidates]


def test_an_answer_to_vetting_on_celery_whose_audit_fails_leaves_the_search_waiting(staff, crash_at_audit, sent):
    search, ids = _awaiting_vetting_on_celery()
    with pytest.raises(AuditCrash):
        search_staff_intervene(search=search, user=staff, decision="approve", note="checked", approved_user_ids=ids[:2])
    assert crash_at_audit == [SearchStatus.SUCCEEDED]
    stored = Search.objects.get(pk=search.pk)
    assert (stored.status, stored.result_count) == (SearchStatus.AWAITING_VETTING, 0)
    assert SearchVetting.objects.get(search=search).answered_at is None
    assert not stored.results.exists()
    assert not SearchEvent.objects.filter(search=search, kind__in=["intervened", "succeeded"]).exists()
    assert not StaffAction.objects.exists()


def test_an_acknowledgement_whose_audit_fails_leaves_the_flag_raised(staff, crash_at_audit):
    search = make_search(status=SearchStatus.SUCCEEDED, drift_flagged=True)
    WorkflowExecution.objects.create(search=search, attempt=1, engine="durable", drift_state=DriftState.FLAGGED)
    with pytest.raises(AuditCrash):
        search_staff_acknowledge(search=search, user=staff, note="known")
    assert crash_at_audit == [SearchStatus.SUCCEEDED]
    assert Search.objects.get(pk=search.pk).drift_flagged is True
    assert WorkflowExecution.objects.get(search=search).drift_state == DriftState.FLAGGED
    assert not SearchEvent.objects.filter(search=search, kind="drift_acknowledged").exists()
    assert not StaffAction.objects.exists()


def test_a_durable_answer_is_sent_before_the_transaction_and_its_audit_fails_with_the_event(
    staff, crash_at_audit, durable_api
):
    """The one part that cannot be atomic: the Durable API has the answer (the workflow reports the
    outcome through its callback); the console's `intervened` event and audit row go together."""
    search = make_search(status=SearchStatus.AWAITING_VETTING, engine=Engine.DURABLE)
    with pytest.raises(AuditCrash):
        search_staff_intervene(search=search, user=staff, decision="reject", note="not certified")
    assert len(durable_api.posts("/intervene")) == 1
    assert crash_at_audit == [SearchStatus.AWAITING_VETTING]
    assert not SearchEvent.objects.filter(search=search, kind="intervened").exists()
    assert not StaffAction.objects.exists()


@pytest.mark.parametrize(
    ("status", "action", "effect"),
    [
        (
            SearchStatus.FAILED,
            lambda s, u: search_staff_retry(search=s, user=u, reason="r"),
            lambda s: (s.attempt, s.status) == (2, "pending"),
        ),
        (
            SearchStatus.RUNNING,
            lambda s, u: search_staff_cancel(search=s, user=u, reason="r"),
            lambda s: s.status == "cancelled",
        ),
    ],
)
def test_without_a_fault_the_effect_and_its_audit_row_both_commit(staff, sent, status, action, effect):
    search = make_search(status=status)
    assert action(search, staff).ok
    assert effect(Search.objects.get(pk=search.pk))
    assert StaffAction.objects.filter(search=search, outcome="done").count() == 1
    assert len(sent) == 1  # the dispatch, or the revoke, after the commit
