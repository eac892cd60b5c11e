"""The console's words for what services report and store (statuses, engines, outcomes, staff
action results), in the staff member's language. The services write English (the audit trail keeps
one language); these tables word the same codes and values for the page being shown."""

from __future__ import annotations

from django.utils.translation import gettext_lazy, ngettext_lazy, pgettext, pgettext_lazy

from matching.models import STAFF_ACTOR_PREFIX, Engine, SearchEventKind, SearchStatus, StaffActionOutcome

# What each service result says, worded for staff; the names are those of ActionResult.params.
RESULT_MESSAGES = {
    "not_finished": gettext_lazy("it is %(status)s, not finished"),
    "attempt_started": gettext_lazy("attempt %(attempt)s started on %(engine)s"),
    "moved_on": gettext_lazy("it moved on meanwhile (now attempt %(attempt)s, %(status)s)"),
    "cancelled_durable": gettext_lazy("cancelled; the durable execution is being stopped"),
    "cancelled_celery": gettext_lazy("cancelled; its Celery task is being revoked"),
    "superseded": gettext_lazy("attempt %(attempt)s was superseded by attempt %(new_attempt)s"),
    "already_finished": gettext_lazy("it had already %(status)s"),
    "already_finished_by": gettext_lazy("it had already %(status)s (%(actor)s was first)"),
    "not_awaiting_vetting": gettext_lazy("it is %(status)s on %(engine)s, not awaiting vetting"),
    "already_answered": gettext_lazy("the vetting request was already answered (%(code)s)"),
    "rejected_durable": gettext_lazy("rejected; the workflow finishes and reports back"),
    "rejected_celery": gettext_lazy("rejected; the search is finished"),
    "approved_all_durable": gettext_lazy("approved all candidates; the workflow finishes and reports back"),
    "approved_all_celery": gettext_lazy("approved all candidates; the search is finished"),
    "approved_some_durable": ngettext_lazy(
        "approved %(count)d candidate(s); the workflow finishes and reports back",
        "approved %(count)d candidate(s); the workflow finishes and reports back",
        "count",
    ),
    "approved_some_celery": ngettext_lazy(
        "approved %(count)d candidate(s); the search is finished",
        "approved %(count)d candidate(s); the search is finished",
        "count",
    ),
    "acknowledged": gettext_lazy("flag acknowledged"),
    "nothing_flagged": gettext_lazy("nothing is flagged on it"),
    "exported": ngettext_lazy(
        "%(count)d result(s) exported as %(format)s", "%(count)d result(s) exported as %(format)s", "count"
    ),
    "routing_unchanged": gettext_lazy("routing is already %(mode)s"),
    "routing_switched": gettext_lazy("new searches now go: %(mode)s"),
    "engine_unconfigured": gettext_lazy(
        "cannot run on %(engine)s: the durable engine is not configured here (%(error)s)"
    ),
    "durable_rejected": gettext_lazy("Durable API answered %(status_code)s: %(body)s"),
    "resync_celery_only": gettext_lazy("it ran on Celery only: its timeline comes from the console's own events"),
    "dynamo_unreadable": gettext_lazy("DynamoDB could not be read: %(error)s"),
}
# A resync's report ("resync" above), part by part, joined with "; " (workflows.mirror.refresh.ResyncReport).
RESYNC_PARTS = {
    "resync_no_item": gettext_lazy("DynamoDB has no item for it (never started on the durable side, or deleted)"),
    "resync_applied": ngettext_lazy(
        "applied item v%(version)s (%(item_status)s), %(count)d timeline entries",
        "applied item v%(version)s (%(item_status)s), %(count)d timeline entries",
        "count",
    ),
    "resync_already": gettext_lazy("already at item v%(version)s (%(item_status)s)"),
    "resync_status_changed": gettext_lazy("the search went from %(before)s to %(status)s"),
    "resync_history": ngettext_lazy("history: %(count)d new event(s)", "history: %(count)d new event(s)", "count"),
    "resync_history_complete": ngettext_lazy(
        "history: %(count)d new event(s) (complete)", "history: %(count)d new event(s) (complete)", "count"
    ),
    "resync_history_unread": gettext_lazy("history not read: %(error)s"),
}
# The drift reconciler's reasons (workflows.durable_console.reconcile), by the code stored beside the
# English on the mirror row (WorkflowExecution.drift_reason_code); the names are those of its params.
# The durable execution's status (RUNNING, SUCCEEDED, …) is the engine's own word and stays as it is.
DRIFT_REASONS = {
    "celery_awaiting_vetting": pgettext_lazy("drift reason", "%(status)s: waiting on GlobalCoach until its deadline"),
    "celery_sweeper": pgettext_lazy("drift reason", "%(status)s: left to the dispatch sweeper"),
    "celery_lease_resend": pgettext_lazy("drift reason", "%(status)s: being sent again by the lease sweeper"),
    "celery_leased": pgettext_lazy("drift reason", "%(status)s: leased to %(holder)s for %(seconds)ss more"),
    "celery_lease_expired": pgettext_lazy(
        "drift reason", "%(status)s: lease of %(holder)s expired %(seconds)ss ago; re-sent shortly"
    ),
    "dynamo_unreadable": pgettext_lazy("drift reason", "could not read the DynamoDB item: %(error)s"),
    "item_newer_attempt": pgettext_lazy(
        "drift reason", "DynamoDB holds attempt %(item_attempt)s, newer than the console's attempt %(attempt)s"
    ),
    "attempt_starting": pgettext_lazy("drift reason", "attempt %(attempt)s is being started"),
    "attempt_never_started": pgettext_lazy(
        "drift reason",
        "DynamoDB still holds attempt %(item_attempt)s (%(item_status)s): attempt %(attempt)s was never started on "
        "the durable engine",
    ),
    "repaired_from_item": pgettext_lazy(
        "drift reason", "the console said %(before)s; the DynamoDB item (v%(version)s) says %(status)s"
    ),
    "execution_starting": pgettext_lazy("drift reason", "%(before)s: the durable execution is being started"),
    "no_item": pgettext_lazy("drift reason", "%(before)s for %(seconds)ss with no DynamoDB item"),
    "no_execution_arn": pgettext_lazy(
        "drift reason", "%(before)s for %(seconds)ss with an item with no execution ARN (dispatch %(dispatch)s)"
    ),
    "execution_missing": pgettext_lazy(
        "drift reason",
        "the durable execution does not exist (expired, deleted or never started) while the console says %(status)s",
    ),
    "execution_unreadable": pgettext_lazy("drift reason", "could not read the durable execution: %(error)s"),
    "live_without_item": pgettext_lazy(
        "drift reason", "the durable execution is %(execution_status)s but it has no item"
    ),
    "live": pgettext_lazy("drift reason", "execution %(execution_status)s, %(item)s"),
    "succeeded_unfinished": pgettext_lazy(
        "drift reason",
        "the durable execution succeeded but %(item)s is not finished: its results never reached DynamoDB",
    ),
    "execution_other": pgettext_lazy("drift reason", "the durable execution is %(execution_status)s; %(item)s"),
    "finished_meanwhile": pgettext_lazy("drift reason", "finished (%(status)s) while being checked"),
    "repaired_from_execution": pgettext_lazy(
        "drift reason",
        "the console said %(before)s (%(item)s) but the durable execution is %(execution_status)s: now %(status)s",
    ),
}
# The DynamoDB item inside a drift reason ("%(item)s" above): none, or its status and version.
NO_ITEM = pgettext_lazy("drift reason", "no DynamoDB item")
ITEM_NAMED = pgettext_lazy("drift reason", "item %(item_status)s v%(version)s")
THE_QUEUE = pgettext_lazy("drift reason: who holds a Celery lease", "the queue")
# The Durable API client's transport failures (workflows.durable_console.client.DurableApiError
# .code/.params): the request as "METHOD /path", the error as the transport said it.
TRANSPORT_MESSAGES = {
    "durable_circuit_open": gettext_lazy(
        "%(request)s not sent: the Durable API circuit is %(state)s since %(since)s UTC (%(reason)s)"
    ),
    "durable_unavailable": ngettext_lazy(
        "%(request)s failed after %(count)d try: %(error)s",
        "%(request)s failed after %(count)d tries: %(error)s",
        "count",
    ),
}
BREAKER_STATE_WORDS = {
    "open": pgettext_lazy("circuit breaker", "open"),
    "half_open": pgettext_lazy("circuit breaker", "half-open"),
}
# Engines inside a sentence ("started on durable"): their stored names in English.
ENGINE_WORDS = {Engine.CELERY: pgettext_lazy("engine in a sentence", "celery"),
                Engine.DURABLE: pgettext_lazy("engine in a sentence", "durable")}  # fmt: skip
# The routing modes inside a sentence ("new searches now go: …").
MODE_WORDS = {
    "environment": gettext_lazy("as the environment says"),
    "celery": gettext_lazy("all new searches to celery"),
}
OUTCOME_WORDS = {
    StaffActionOutcome.DONE: pgettext_lazy("outcome", "done"),
    StaffActionOutcome.SKIPPED: pgettext_lazy("outcome", "skipped"),
    StaffActionOutcome.FAILED: pgettext_lazy("outcome", "failed"),
}
OUTCOME_COUNTS = {
    StaffActionOutcome.DONE: ngettext_lazy("%(count)d done", "%(count)d done", "count"),
    StaffActionOutcome.SKIPPED: ngettext_lazy("%(count)d skipped", "%(count)d skipped", "count"),
    StaffActionOutcome.FAILED: ngettext_lazy("%(count)d failed", "%(count)d failed", "count"),
}


def _word_params(params: dict) -> dict:
    """Stored values (statuses, engines, routing modes) in the staff member's words."""
    words = dict(params)
    if "status" in words and words["status"] in SearchStatus.values:
        words["status"] = str(SearchStatus(words["status"]).label).lower()
    if "before" in words and words["before"] in SearchStatus.values:
        words["before"] = str(SearchStatus(words["before"]).label).lower()
    if "engine" in words:
        words["engine"] = str(ENGINE_WORDS.get(words["engine"], words["engine"]))
    if "actor" in words:
        words["actor"] = actor_words(words["actor"])
    if "mode" in words:
        words["mode"] = str(MODE_WORDS.get(words["mode"], words["mode"]))
    return words


def drift_words(stored: dict) -> str:
    """Why the reconciler judged a mirror row as it did, from the code it stored beside the reason
    (WorkflowExecution.drift_reason_code); "" for an older row (its stored English is shown as it is)."""
    stored = stored or {}
    template = DRIFT_REASONS.get(stored.get("code", ""))
    if template is None:
        return ""
    try:
        params = _word_params(stored.get("params") or {})
        if "item_status" in params:
            params["item_status"] = status_words(params["item_status"])
        if "holder" in params:
            params["holder"] = params["holder"] or str(THE_QUEUE)
        if "item" in params:
            item = params["item"]
            params["item"] = (
                str(ITEM_NAMED % {"item_status": status_words(item["status"]), "version": item["version"]})
                if item
                else str(NO_ITEM)
            )
        return template % params
    except (KeyError, TypeError, ValueError):  # a code this release words differently: the English stays
        return ""


def error_words(stored: dict) -> str:
    """A Durable API failure stored with its code (SearchDispatch.last_error_code) in words; "" when
    there is none (the stored English is shown as it is)."""
    stored = stored or {}
    code = stored.get("code", "")
    if code not in TRANSPORT_MESSAGES and code not in RESULT_MESSAGES:
        return ""
    return result_words(code, stored.get("params") or {}, "")


def result_words(code: str, params: dict, message: str) -> str:
    """A service result in the active language; another system's message (no code) as it came."""
    try:
        if code == "resync":
            return pgettext("between the parts of a resync report", "; ").join(
                str(RESYNC_PARTS[part] % _word_params(values)) for part, values in params["parts"]
            )
        if code in TRANSPORT_MESSAGES:
            words = dict(params)
            if "state" in words:
                words["state"] = str(BREAKER_STATE_WORDS.get(words["state"], words["state"]))
            return TRANSPORT_MESSAGES[code] % words
        template = RESULT_MESSAGES.get(code)
        if template is None:
            return message
        return template % _word_params(params)
    except (KeyError, TypeError, ValueError):  # a record written by an older release: its English stays
        return message


def outcome_words(outcome: str) -> str:
    return str(OUTCOME_WORDS.get(outcome, outcome))


def status_words(status: str) -> str:
    """A stored status in words ("awaiting vetting", 等待審核); anything else as it is."""
    return str(SearchStatus(status).label).lower() if status in SearchStatus.values else status


def engine_words(engine: str) -> str:
    return str(ENGINE_WORDS.get(engine, engine))


SOURCE_WORDS = {
    "DynamoDB item": gettext_lazy("DynamoDB item"),
    "durable history": gettext_lazy("durable history"),
    "console": gettext_lazy("console"),
    "webhook": gettext_lazy("webhook"),
    "dispatch": gettext_lazy("dispatch"),
    "staff": gettext_lazy("staff"),
}


# The kinds of timeline line: the console's own and the durable engine's.
KIND_WORDS = {
    "transition": pgettext_lazy("timeline kind", "transition"),
    "webhook": pgettext_lazy("timeline kind", "webhook"),
    "dispatch": pgettext_lazy("timeline kind", "dispatch"),
    "staff": pgettext_lazy("timeline kind", "staff"),
    "step": pgettext_lazy("timeline kind", "step"),
    "wait": pgettext_lazy("timeline kind", "wait"),
    "callback": pgettext_lazy("timeline kind", "callback"),
    "execution": pgettext_lazy("timeline kind", "execution"),
    "invocation": pgettext_lazy("timeline kind", "invocation"),
    "invoke": pgettext_lazy("timeline kind", "invoke"),
    "context": pgettext_lazy("timeline kind", "context"),
    "api": pgettext_lazy("timeline kind", "api"),
}


# The console's own search events in words: their labels (matching.models.SearchEventKind).
EVENT_WORDS = {kind.value: kind.label for kind in SearchEventKind}


def event_words(kind: str) -> str:
    return str(EVENT_WORDS.get(kind, kind))


USER_ACTOR_PREFIX = "user:"  # matching.services.searches and the API: "user:<id>", "… via key:<prefix>"
VIA_KEY = " via key:"


def actor_words(actor: str) -> str:
    """Who did it: "staff:olga" as the staff member, "system" as the console itself, "user:u1 via
    key:ab12" as the user through an API key; others by name."""
    if actor.startswith(STAFF_ACTOR_PREFIX):
        return pgettext("actor", "staff %(name)s") % {"name": actor.removeprefix(STAFF_ACTOR_PREFIX)}
    if actor == "system":
        return pgettext("actor", "system")
    if actor.startswith(USER_ACTOR_PREFIX):
        name, _, key = actor.removeprefix(USER_ACTOR_PREFIX).partition(VIA_KEY)
        if key:
            return pgettext("actor", "user %(name)s via key %(key)s") % {"name": name, "key": key}
        return pgettext("actor", "user %(name)s") % {"name": name}
    return actor


def kind_words(kind: str) -> str:
    return str(KIND_WORDS.get(kind, kind))


def source_words(label: str) -> str:
    """A timeline line's source (workflows.selectors.SOURCE_LABELS) in words."""
    return str(SOURCE_WORDS.get(label, label))


def audit_words(action) -> str:
    """What came of a recorded staff action, from the code its service stored with it."""
    stored = action.detail_code or {}
    return result_words(stored.get("code", ""), stored.get("params") or {}, action.detail)
