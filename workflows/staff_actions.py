"""Staff actions on searches (retry, cancel, intervene, resync, acknowledge, export, routing), each
recorded in the audit in the action's own transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation

from matching.models import (
    Engine,
    Search,
    SearchEventKind,
    SearchStatus,
    StaffActionKind,
    StaffActionOutcome,
    staff_actor,
)
from matching.services.audit import staff_action_record
from matching.services.searches import (
    search_attention_mark,
    search_event_record,
)
from workflows.celery_engine.vetting import VettingDecisionInvalid, vetting_intervene
from workflows.dispatch.routing import routing_forget
from workflows.dispatch.submit import search_cancel, search_retry
from workflows.durable_console.client import (
    DurableApiClient,
    DurableApiConfig,
    DurableApiConfigError,
    DurableApiError,
    DurableApiRejected,
)
from workflows.durable_console.dynamo import DynamoStateError
from workflows.mirror.refresh import MirrorNotApplicable, search_mirror_resync
from workflows.models import (
    DriftState,
    EngineRouting,
    RoutingMode,
    WorkflowExecution,
)


class InterventionNotAllowed(Exception):
    """Only a search waiting on certification vetting can be answered by staff, and only with a
    decision that fits its pending request."""


def search_intervene(
    *,
    search: Search,
    decision: str,
    acting_user: str,
    note: str = "",
    approved_user_ids: list[str] | None = None,
    then: Callable[[], object] | None = None,
) -> dict:
    """Answer a pending GlobalCoach vetting request in the provider's place, on either engine.

    Durable: the Durable API completes the workflow's pending callback; the outcome then reaches
    the console through the signed webhook like any other. Celery: the answer finishes the search
    here, through the same service as GlobalCoach's own answer.

    `then` runs inside the transaction that records the answer (the staff action's audit row), so
    the console's side of the answer and the audit commit together or not at all. The Durable API's
    call is made before that transaction and cannot be part of it: if the transaction then fails,
    the workflow has its answer and the console learns the outcome from its callback, without an
    `intervened` event or audit row.
    """
    if decision not in ("approve", "reject"):
        raise ValueError("decision must be approve or reject")
    if search.status != SearchStatus.AWAITING_VETTING:
        raise InterventionNotAllowed(f"search {search.pk} is {search.status} on {search.engine}, not awaiting vetting")
    if search.engine == Engine.DURABLE:  # a remote call: outside the transaction below
        answer = DurableApiClient.from_settings().intervene(
            str(search.pk), decision=decision, note=note, approved_user_ids=approved_user_ids
        )
    with transaction.atomic():
        if search.engine != Engine.DURABLE:
            try:
                answer = vetting_intervene(
                    search=search,
                    decision=decision,
                    acting_user=acting_user,
                    note=note,
                    approved_user_ids=approved_user_ids,
                )
            except VettingDecisionInvalid as exc:
                raise InterventionNotAllowed(str(exc)) from None
        approved = "all" if approved_user_ids is None else ", ".join(approved_user_ids) or "none"
        search_event_record(
            search_id=search.pk,
            attempt=search.attempt,
            kind=SearchEventKind.INTERVENED,
            actor=acting_user,
            detail=f"{decision} (approved: {approved}) {note}".strip(),
        )
        if then is not None:
            then()
    return answer


@dataclass(frozen=True)
class ActionResult:
    """What a staff action did to one search: `done`, `skipped` (its state moved on) or `failed`."""

    outcome: str
    message: str  # in English, as the audit trail keeps it
    # What the message says, for the console to word it in the staff member's language: a code and
    # the raw values it names (statuses and engines as stored). "" when the message is another system's.
    code: str = ""
    params: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == StaffActionOutcome.DONE


def _english_lower(label) -> str:
    """A choice's label as the English audit trail words it, whatever language the console is in."""
    with translation.override("en"):
        return str(label).lower()


def _status_words(status: str) -> str:
    return _english_lower(SearchStatus(status).label)


def _actor(user) -> str:
    return staff_actor(user.username)


def _audited(
    *, user, action: str, search: Search, reason: str, before: str, attempt: int, result: ActionResult, **params
) -> ActionResult:
    after = Search.objects.filter(pk=search.pk).values_list("status", flat=True).first() or ""
    staff_action_record(
        user=user,
        action=action,
        search=search,
        attempt=attempt,
        reason=reason,
        outcome=result.outcome,
        status_before=before,
        status_after=after,
        parameters=params,
        detail=result.message,
        detail_code={"code": result.code, "params": result.params} if result.code else {},
    )
    return result


def engine_unavailable_reason(*, engine: str, search: Search) -> str:
    """Why `search` cannot run on `engine` here ("" if it can): the setting that is missing or wrong,
    as the configuration error says it (a setting's name reads the same in every language)."""
    if engine == Engine.DURABLE:
        try:
            DurableApiConfig.from_settings()
        except DurableApiConfigError as exc:
            return str(exc)
        if not settings.MATCHING_WORKFLOW_CALLBACK_URL:
            return "MATCHING_WORKFLOW_CALLBACK_URL is not set"
    # Both engines vet (issue 8): a vetted search may run on either.
    return ""


@transaction.atomic(durable=True)
def search_staff_retry(*, search: Search, user, reason: str, engine: str | None = None) -> ActionResult:
    """Staff retry: a new attempt on the same engine as the last one, or on the one named.

    The new attempt (its `retried` event and dispatch record) and the audit row commit together or
    not at all; the dispatch is sent to the engine only after that commit (the outbox)."""
    before, attempt = search.status, search.attempt
    target = engine or search.engine
    if not search.is_terminal:
        result = ActionResult(
            StaffActionOutcome.SKIPPED,
            f"it is {_status_words(search.status)}, not finished",
            "not_finished",
            {"status": search.status},
        )
    elif problem := engine_unavailable_reason(engine=target, search=search):
        result = ActionResult(
            StaffActionOutcome.FAILED,
            f"cannot run on {target}: the durable engine is not configured here ({problem})",
            "engine_unconfigured",
            {"engine": target, "error": problem},
        )
    elif search_retry(search=search, acting_user=_actor(user), reason=reason, engine=target):
        result = ActionResult(
            StaffActionOutcome.DONE,
            f"attempt {attempt + 1} started on {target}",
            "attempt_started",
            {"attempt": attempt + 1, "engine": target},
        )
    else:
        search.refresh_from_db()
        result = ActionResult(
            StaffActionOutcome.SKIPPED,
            f"it moved on meanwhile (now attempt {search.attempt}, {search.status})",
            "moved_on",
            {"attempt": search.attempt, "status": search.status},
        )
    return _audited(
        user=user,
        action=StaffActionKind.RETRY,
        search=search,
        reason=reason,
        before=before,
        attempt=attempt,
        result=result,
        engine=target,
        rerun_of_attempt=attempt,
    )


@transaction.atomic(durable=True)
def search_staff_cancel(*, search: Search, user, reason: str) -> ActionResult:
    """Staff cancel. Racing a finishing engine, exactly one side wins; the result says which.

    The cancellation in the console and the audit row commit together or not at all. Stopping the
    engine's work (the Durable API's stop, the Celery revoke) is a remote call and cannot be part of
    that transaction: it is made after the commit, so it never stops work the console did not cancel."""
    before, attempt = search.status, search.attempt
    if search_cancel(search=search, reason=reason, acting_user=_actor(user)):
        if search.engine == Engine.DURABLE:
            result = ActionResult(
                StaffActionOutcome.DONE, "cancelled; the durable execution is being stopped", "cancelled_durable"
            )
        else:
            result = ActionResult(
                StaffActionOutcome.DONE, "cancelled; its Celery task is being revoked", "cancelled_celery"
            )
    else:
        search.refresh_from_db()
        if search.attempt != attempt:
            result = ActionResult(
                StaffActionOutcome.SKIPPED,
                f"attempt {attempt} was superseded by attempt {search.attempt}",
                "superseded",
                {"attempt": attempt, "new_attempt": search.attempt},
            )
        else:
            winner = search.events.filter(attempt=attempt, to_status=search.status).values_list("actor", flat=True)
            actor = winner.last()
            message = f"it had already {_status_words(search.status)}"
            message += f" ({actor} was first)" if actor else ""
            result = ActionResult(
                StaffActionOutcome.SKIPPED,
                message,
                "already_finished_by" if actor else "already_finished",
                {"status": search.status, "actor": actor or ""},
            )
    return _audited(
        user=user,
        action=StaffActionKind.CANCEL,
        search=search,
        reason=reason,
        before=before,
        attempt=attempt,
        result=result,
    )


def search_staff_intervene(
    *, search: Search, user, decision: str, note: str, approved_user_ids: list[str] | None = None
) -> ActionResult:
    """Staff answer a pending vetting request in GlobalCoach's place (approve all, some, or reject).

    An answer that is taken is audited inside the transaction that records it (on Celery, the one
    that finishes the search): both or neither. What cannot be atomic is the Durable API's call,
    made before that transaction (see search_intervene). An answer that is refused changes nothing
    in the console, and its audit row is written on its own."""
    before, attempt = search.status, search.attempt
    audited: list[ActionResult] = []

    def audit(result: ActionResult) -> None:
        audited.append(
            _audited(
                user=user,
                action=StaffActionKind.INTERVENE,
                search=search,
                reason=note,
                before=before,
                attempt=attempt,
                result=result,
                decision=decision,
                approved_user_ids=approved_user_ids,
            )
        )

    def answered() -> None:
        if decision == "reject":
            what, code = "rejected", "rejected"
        elif approved_user_ids is None:
            what, code = "approved all candidates", "approved_all"
        else:
            what, code = f"approved {len(approved_user_ids)} candidate(s)", "approved_some"
        durable = search.engine == Engine.DURABLE
        then = "the workflow finishes and reports back" if durable else "the search is finished"
        audit(
            ActionResult(
                StaffActionOutcome.DONE,
                f"{what}; {then}",
                f"{code}_{'durable' if durable else 'celery'}",
                {"count": len(approved_user_ids or [])},
            )
        )

    try:
        search_intervene(
            search=search,
            decision=decision,
            acting_user=_actor(user),
            note=note,
            approved_user_ids=approved_user_ids,
            then=answered,
        )
    except InterventionNotAllowed:
        audit(
            ActionResult(
                StaffActionOutcome.SKIPPED,
                f"it is {_status_words(search.status)} on {search.engine}, not awaiting vetting",
                "not_awaiting_vetting",
                {"status": search.status, "engine": search.engine},
            )
        )
    except DurableApiRejected as exc:
        code = exc.body.get("error") if isinstance(exc.body, dict) else ""
        if exc.status_code == 409:
            message = f"the vetting request was already answered ({code or 409})"
            audit(ActionResult(StaffActionOutcome.SKIPPED, message, "already_answered", {"code": code or 409}))
        else:
            params = {"status_code": exc.status_code, "body": str(exc.body)}
            audit(ActionResult(StaffActionOutcome.FAILED, str(exc), "durable_rejected", params))
    except DurableApiError as exc:  # the transport's failure (a timeout, an open breaker), worded by its code
        audit(ActionResult(StaffActionOutcome.FAILED, str(exc), exc.code, exc.params))
    return audited[0]


def search_staff_resync(*, search: Search, user, reason: str) -> ActionResult:
    """Read the search's DynamoDB item (and execution history) now, and apply it to the mirror.

    Not one transaction with its audit row: the resync reads DynamoDB and the Durable API, and
    network reads happen outside transactions (search_mirror_resync). What it writes is a copy of
    the remote state by the version rule, the same the periodic sync would write; its audit row
    follows in a transaction of its own."""
    before, attempt = search.status, search.attempt
    try:
        report = search_mirror_resync(search=search)
        result = ActionResult(StaffActionOutcome.DONE, report.message, "resync", {"parts": report.parts})
    except MirrorNotApplicable as exc:
        result = ActionResult(StaffActionOutcome.SKIPPED, str(exc), exc.code)
    except DynamoStateError as exc:
        result = ActionResult(
            StaffActionOutcome.FAILED, f"DynamoDB could not be read: {exc}", "dynamo_unreadable", {"error": str(exc)}
        )
    return _audited(
        user=user,
        action=StaffActionKind.RESYNC,
        search=search,
        reason=reason,
        before=before,
        attempt=attempt,
        result=result,
    )


def search_drift_acknowledge(*, search: Search, note: str, acting_user: str) -> bool:
    """Staff have seen a drift flag or a dead-lettered callback: mark the flagged attempts
    acknowledged and clear the search's attention markers. The drift check keeps an acknowledged
    attempt acknowledged while its verdict stays "flagged". Runs in the caller's transaction if
    there is one (a staff acknowledgement's audit row commits with it)."""
    with transaction.atomic():
        rows = WorkflowExecution.objects.filter(search_id=search.pk, drift_state=DriftState.FLAGGED).update(
            drift_state=DriftState.ACKNOWLEDGED
        )
        cleared = search_attention_mark(search_id=search.pk, attempt=search.attempt, drift=False, dead_letter=False)
        if rows or cleared:
            search_event_record(
                search_id=search.pk,
                attempt=search.attempt,
                kind=SearchEventKind.DRIFT_ACKNOWLEDGED,
                actor=acting_user,
                detail=note,
            )
    return bool(rows or cleared)


@transaction.atomic(durable=True)
def search_staff_acknowledge(*, search: Search, user, note: str) -> ActionResult:
    """Staff acknowledge a flag: the cleared markers, the `drift_acknowledged` event and the audit
    row commit together or not at all."""
    before, attempt = search.status, search.attempt
    if search_drift_acknowledge(search=search, note=note, acting_user=_actor(user)):
        result = ActionResult(StaffActionOutcome.DONE, "flag acknowledged", "acknowledged")
    else:
        result = ActionResult(StaffActionOutcome.SKIPPED, "nothing is flagged on it", "nothing_flagged")
    return _audited(
        user=user,
        action=StaffActionKind.ACKNOWLEDGE_DRIFT,
        search=search,
        reason=note,
        before=before,
        attempt=attempt,
        result=result,
    )


def search_staff_export_record(*, search: Search, user, reason: str, export_format: str) -> ActionResult:
    """An export reads only; it is audited like every other staff action."""
    result = ActionResult(
        StaffActionOutcome.DONE,
        f"{search.result_count} result(s) exported as {export_format}",
        "exported",
        {"count": search.result_count, "format": export_format},
    )
    return _audited(
        user=user,
        action=StaffActionKind.EXPORT,
        search=search,
        reason=reason,
        before=search.status,
        attempt=search.attempt,
        result=result,
        format=export_format,
    )


def routing_set(*, mode: str, user, reason: str) -> ActionResult:
    """Staff's routing switch: `celery` sends every new search to Celery; `environment` gives the
    choice back to the environment. Audited; every process sees it within ROUTING_CACHE_SECONDS."""
    if mode not in RoutingMode.values:
        raise ValueError(f"unknown routing mode {mode!r}")
    with transaction.atomic(durable=True):
        row, _ = EngineRouting.objects.select_for_update().get_or_create(pk=1)
        before = row.mode
        if before == mode:
            result = ActionResult(
                StaffActionOutcome.SKIPPED,
                f"routing is already {_english_lower(RoutingMode(mode).label)}",
                "routing_unchanged",
                {"mode": mode},
            )
        else:
            row.mode, row.changed_at, row.changed_by, row.reason = mode, timezone.now(), user.username, reason[:2000]
            row.save()
            result = ActionResult(
                StaffActionOutcome.DONE,
                f"new searches now go: {_english_lower(RoutingMode(mode).label)}",
                "routing_switched",
                {"mode": mode},
            )
        staff_action_record(
            user=user,
            action=StaffActionKind.ROUTING,
            reason=reason,
            outcome=result.outcome,
            status_before=before,
            status_after=mode,
            parameters={"mode": mode},
            detail=result.message,
            detail_code={"code": result.code, "params": result.params},
        )
    routing_forget()
    return result
