"""The staff actions on searches: one spec per action, its confirmation form, and the runner that
calls one engine-layer service per search and reports each search's outcome."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from matching.admin.words import OUTCOME_COUNTS, outcome_words, result_words
from matching.models import ACTIVE_STATUSES, Engine, Search, SearchResult, SearchStatus, StaffActionOutcome
from workflows.staff_actions import (
    ActionResult,
    search_staff_acknowledge,
    search_staff_cancel,
    search_staff_export_record,
    search_staff_intervene,
    search_staff_resync,
    search_staff_retry,
)

MAX_BULK = 500  # searches one confirmation may touch
LEVELS = {
    StaffActionOutcome.DONE: messages.SUCCESS,
    StaffActionOutcome.SKIPPED: messages.WARNING,
    StaffActionOutcome.FAILED: messages.ERROR,
}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        max_length=2000,
        help_text=gettext_lazy("Required. Kept in the audit trail with your name."),
    )

    def __init__(self, *args, search: Search | None = None, candidates=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.search = search

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("Say why."))
        return reason


class InterveneForm(ReasonForm):
    DECISIONS = [
        ("approve_all", gettext_lazy("Approve every candidate sent for vetting")),
        ("approve_some", gettext_lazy("Approve only the candidates chosen below")),
        ("reject", gettext_lazy("Reject (the search fails with vetting_rejected)")),
    ]
    decision = forms.ChoiceField(label=gettext_lazy("Decision"), choices=DECISIONS, widget=forms.RadioSelect)
    approved = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label=gettext_lazy("Candidates to approve")
    )
    approved_other = forms.CharField(
        required=False,
        label=gettext_lazy("Other candidate ids"),
        help_text=gettext_lazy("Comma or space separated user ids."),
    )
    field_order = ["decision", "approved", "approved_other", "reason"]

    def __init__(self, *args, search: Search | None = None, candidates=None, **kwargs):
        super().__init__(*args, search=search, **kwargs)
        self.fields["reason"].label = _("Note")
        self.fields["approved"].choices = [(c["user_id"], c["label"]) for c in candidates or []]
        if search is None:  # bulk: a subset only makes sense for one search
            self.fields["decision"].choices = [d for d in self.DECISIONS if d[0] != "approve_some"]
            del self.fields["approved"], self.fields["approved_other"]
        elif not candidates:
            # The Durable API could not list them: staff type the ids.
            del self.fields["approved"]

    def clean(self):
        data = super().clean()
        if data.get("decision") == "approve_some":
            ids = list(data.get("approved") or [])
            ids += [i for i in (data.get("approved_other") or "").replace(",", " ").split() if i not in ids]
            if not ids:
                raise forms.ValidationError(_("Choose at least one candidate to approve, or approve all."))
            data["approved_user_ids"] = ids
        return data


@dataclass(frozen=True)
class ActionSpec:
    key: str
    label: str  # the button and the admin action (lazily translated)
    does: str  # the confirmation page's "what it will do" (lazily translated)
    permission: str  # codename in the matching app
    applies: Callable[[Search], bool]  # offered on the search page when true
    form: type[ReasonForm] = ReasonForm
    button_class: str = ""

    @property
    def perm(self) -> str:
        return f"matching.{self.permission}"


def _other(engine: str) -> str:
    return Engine.DURABLE if engine == Engine.CELERY else Engine.CELERY


ACTIONS: dict[str, ActionSpec] = {
    spec.key: spec
    for spec in [
        ActionSpec(
            "retry",
            gettext_lazy("Retry"),
            gettext_lazy("start a new attempt of each finished search on the engine its last attempt ran on"),
            "retry_search",
            lambda s: s.is_terminal,
        ),
        ActionSpec(
            "rerun_celery",
            gettext_lazy("Rerun on Celery"),
            gettext_lazy("start a new attempt of each finished search on the Celery engine"),
            "retry_search",
            lambda s: s.is_terminal and s.engine == Engine.DURABLE,
        ),
        ActionSpec(
            "rerun_durable",
            gettext_lazy("Rerun on Durable"),
            gettext_lazy("start a new attempt of each finished search on the durable engine"),
            "retry_search",
            lambda s: s.is_terminal and s.engine == Engine.CELERY,
        ),
        ActionSpec(
            "cancel",
            gettext_lazy("Cancel"),
            gettext_lazy(
                "cancel each running or waiting search, then stop its durable execution or revoke its Celery task"
            ),
            "cancel_search",
            lambda s: s.status in ACTIVE_STATUSES,
            button_class="danger",
        ),
        ActionSpec(
            "intervene",
            gettext_lazy("Answer vetting"),
            gettext_lazy("answer each pending GlobalCoach vetting request in the provider's place"),
            "intervene_search",
            lambda s: s.status == SearchStatus.AWAITING_VETTING,  # on either engine: both vet
            form=InterveneForm,
        ),
        ActionSpec(
            "resync",
            gettext_lazy("Resync mirror"),
            gettext_lazy("read each search's DynamoDB item and execution history now and apply them to the mirror"),
            "resync_search",
            lambda s: s.engine == Engine.DURABLE,
        ),
        ActionSpec(
            "acknowledge",
            gettext_lazy("Acknowledge flag"),
            gettext_lazy(
                "acknowledge each search's drift flag or dead-lettered callback and clear its attention marker"
            ),
            "acknowledge_drift",
            lambda s: s.drift_flagged or s.callback_dead_lettered,
        ),
        ActionSpec(
            "export_csv",
            gettext_lazy("Export CSV"),
            gettext_lazy("download each search's current results as CSV"),
            "export_search",
            lambda s: True,
        ),
        ActionSpec(
            "export_json",
            gettext_lazy("Export JSON"),
            gettext_lazy("download each search's current results (and preferences) as JSON"),
            "export_search",
            lambda s: True,
        ),
    ]
}


def run_one(spec: ActionSpec, *, search: Search, user, data: dict) -> ActionResult:
    """One service call for one search, in English: the audit trail keeps one language (the console
    words the result in the staff member's own, see result_words)."""
    with translation.override("en"):
        return _run_one(spec, search=search, user=user, data=data)


def _run_one(spec: ActionSpec, *, search: Search, user, data: dict) -> ActionResult:
    reason = data["reason"]
    if spec.key == "retry":
        return search_staff_retry(search=search, user=user, reason=reason)
    if spec.key in ("rerun_celery", "rerun_durable"):
        engine = Engine.CELERY if spec.key == "rerun_celery" else Engine.DURABLE
        return search_staff_retry(search=search, user=user, reason=reason, engine=engine)
    if spec.key == "cancel":
        return search_staff_cancel(search=search, user=user, reason=reason)
    if spec.key == "intervene":
        decision = data["decision"]
        return search_staff_intervene(
            search=search,
            user=user,
            decision="reject" if decision == "reject" else "approve",
            note=reason,
            approved_user_ids=data.get("approved_user_ids") if decision == "approve_some" else None,
        )
    if spec.key == "resync":
        return search_staff_resync(search=search, user=user, reason=reason)
    if spec.key == "acknowledge":
        return search_staff_acknowledge(search=search, user=user, note=reason)
    raise ValueError(spec.key)


def report(request, message_user: Callable, spec: ActionSpec, outcomes: list[tuple[Search, ActionResult]]) -> None:
    """A summary line, then one line per search (done / skipped / failed with the reason)."""
    counts = {o: sum(1 for _, r in outcomes if r.outcome == o) for o in StaffActionOutcome.values}
    summary = _(", ").join(OUTCOME_COUNTS[o] % {"count": n} for o, n in counts.items() if n)
    level = messages.ERROR if counts["failed"] else messages.WARNING if counts["skipped"] else messages.SUCCESS
    message_user(request, _("%(action)s: %(summary)s.") % {"action": spec.label, "summary": summary}, level)
    for search, result in outcomes[:50]:
        said = _("Search %(id)s: %(outcome)s: %(message)s") % {
            "id": str(search.pk)[:8],
            "outcome": outcome_words(result.outcome),
            "message": result_words(result.code, result.params, result.message),
        }
        message_user(request, said, LEVELS[result.outcome])
    if len(outcomes) > 50:
        more = len(outcomes) - 50
        message_user(
            request,
            ngettext("… and %(count)d more (see the audit trail).", "… and %(count)d more (see the audit trail).", more)
            % {"count": more},
            messages.INFO,
        )


# Exports are for machines and other people's spreadsheets: the same bytes whatever the staff member's
# language or zone. Stored codes, not labels; times in UTC, ISO 8601 with "Z", in columns named "…_utc".
EXPORT_COLUMNS = ["search_id", "attempt", "status", "engine", "rank", "user_id", "nickname", "score",
                  "skill", "location", "availability", "role", "knowledge", "created_at_utc",
                  "finished_at_utc"]  # fmt: skip


def utc_iso(value) -> str | None:
    """2026-12-06T13:59:21.123Z (None stays None)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def export(spec: ActionSpec, *, searches: list[Search], user, reason: str) -> HttpResponse:
    """The current attempt's results of each search, as one CSV or JSON file; each export audited."""
    by_search: dict = {s.pk: [] for s in searches}
    current = {s.pk: s.attempt for s in searches}
    rows = SearchResult.objects.filter(search_id__in=list(by_search)).order_by("search_id", "attempt", "rank")
    for result in rows:
        if result.attempt == current[result.search_id]:
            by_search[result.search_id].append(result)
    for search in searches:
        search_staff_export_record(search=search, user=user, reason=reason, export_format=spec.key[-4:].strip("_"))
    stamp = timezone.now().astimezone(dt.UTC).strftime("%Y%m%d-%H%M%SZ")
    if spec.key == "export_json":
        body = [
            {
                "search_id": str(s.pk),
                "seeker_id": s.seeker_id,
                "status": s.status,
                "engine": s.engine,
                "attempt": s.attempt,
                "preferences": s.preferences,
                "created_at_utc": utc_iso(s.created_at),
                "finished_at_utc": utc_iso(s.finished_at),
                "results": [
                    {
                        "rank": r.rank,
                        "user_id": r.user_id,
                        "nickname": r.nickname,
                        "score": r.score,
                        "breakdown": r.breakdown,
                    }
                    for r in by_search[s.pk]
                ],
            }
            for s in searches
        ]
        response = HttpResponse(json.dumps(body, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="search-results-{stamp}.json"'
        return response
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for s in searches:
        for r in by_search[s.pk]:
            b = r.breakdown or {}
            writer.writerow([s.pk, s.attempt, s.status, s.engine, r.rank, r.user_id, r.nickname, r.score,
                             b.get("skill"), b.get("location"), b.get("availability"), b.get("role"),
                             b.get("knowledge"), utc_iso(s.created_at), utc_iso(s.finished_at) or ""])  # fmt: skip
    response = HttpResponse(out.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="search-results-{stamp}.csv"'
    return response
