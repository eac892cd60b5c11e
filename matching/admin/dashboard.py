"""The console's dashboard and routing switch (admin views), and reads the action pages need.

Every aggregate is bounded: the last 24 hours through a range on `search_created_idx`, and
short lists through the partial indexes behind "needs attention".
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncHour
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views import View

from matching.admin.reauth import recent_sign_in_required
from matching.admin.words import drift_words, outcome_words, result_words
from matching.candidates.warm_index import index_health
from matching.models import Engine, Search, SearchStatus, SearchVetting, StaffAction, StaffActionKind
from matching.selectors import api_keys_near_expiry, stuck_q
from matching.templatetags.console import zone_label
from workflows.dispatch.engine_choice import choose_engine, environment_engine
from workflows.dispatch.routing import ROUTING_CACHE_SECONDS, routing_mode
from workflows.durable_console.client import DurableApiClient, DurableApiError
from workflows.models import EngineRouting, RoutingMode, WorkflowExecution
from workflows.staff_actions import routing_set

WINDOW = timedelta(hours=24)
LIST_LIMIT = 20


def _labelled(candidates: list[dict]) -> list[dict]:
    return [
        {
            "user_id": c["user_id"],
            "label": _("%(user_id)s %(nickname)s score %(score)s")
            % {"user_id": c["user_id"], "nickname": c.get("nickname") or "", "score": c.get("score", "?")},
        }
        for c in candidates
    ]


def vetting_candidates(search: Search | None) -> list[dict]:
    """The candidates a pending vetting request sent to GlobalCoach: on Celery from the console's
    own vetting record, on the durable engine from the Durable API (one quick read; empty if it
    cannot be read: the form then takes typed ids)."""
    if search is None:
        return []
    if search.engine == Engine.CELERY:
        vetting = SearchVetting.objects.filter(search=search, attempt=search.attempt).first()
        return _labelled(vetting.candidates) if vetting else []
    try:
        item = DurableApiClient.from_settings(quick=True).get(str(search.pk), include_candidates=True)
    except DurableApiError:
        return []
    pending = item.get("pending_callback") or {}
    ids = pending.get("candidate_ids") or [c.get("user_id") for c in item.get("candidates") or []]
    details = {c.get("user_id"): c for c in item.get("candidates") or []}
    return _labelled([{**details.get(user_id, {}), "user_id": user_id} for user_id in ids])


def _percentiles(since) -> dict[str, dict]:
    """p50/p95 of submit → finish per engine, for searches submitted in the window."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT engine, count(*),
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - created_at)),
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - created_at))
                FROM matching_search
                WHERE created_at >= %s AND finished_at IS NOT NULL
                GROUP BY engine
                """,
                [since],
            )
            return {e: {"count": n, "p50": float(p50), "p95": float(p95)} for e, n, p50, p95 in cursor.fetchall()}
    durations: dict[str, list[float]] = {}
    rows = Search.objects.filter(created_at__gte=since, finished_at__isnull=False).values_list(
        "engine", "created_at", "finished_at"
    )
    for engine, created, finished in rows:
        durations.setdefault(engine, []).append((finished - created).total_seconds())
    out = {}
    for engine, values in durations.items():
        values.sort()
        out[engine] = {"count": len(values), "p50": _interpolated(values, 0.5), "p95": _interpolated(values, 0.95)}
    return out


def _interpolated(ordered: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the two nearest ranks."""
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def hourly_chart(counts: dict, now, *, width: int = 720, height: int = 160) -> dict:
    """Bars of searches per hour over the last 24 hours, laid out for an inline SVG. `counts` are by
    UTC hour; the labels are in the staff member's zone (a zone off by half an hour labels :30)."""
    start = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    hours = [start + timedelta(hours=i) for i in range(24)]
    peak = max([counts.get(h, 0) for h in hours] + [1])
    slot = width / 24
    bars = []
    for i, hour in enumerate(hours):
        n = counts.get(hour, 0)
        h = round((height - 32) * n / peak, 1)
        bars.append({"x": round(i * slot + 2, 1), "y": round(height - 16 - h, 1), "w": round(slot - 4, 1), "h": h,
                     "n": n, "label": timezone.localtime(hour).strftime("%H"),
                     "title": ngettext("%(hour)s: %(count)d search", "%(hour)s: %(count)d searches", n)
                     % {"hour": f"{timezone.localtime(hour):%Y-%m-%d %H:%M} {zone_label(timezone.localtime(hour))}",
                        "count": n},
                     "tx": round(i * slot + slot / 2, 1)})  # fmt: skip
    return {"bars": bars, "width": width, "height": height, "peak": peak, "total": sum(b["n"] for b in bars)}


class DashboardView(View):
    model_admin = None

    def get(self, request):
        if not request.user.has_perm("matching.view_search"):
            raise PermissionDenied
        now = timezone.now()
        since = now - WINDOW
        recent = Search.objects.filter(created_at__gte=since)
        grid: dict[str, dict[str, int]] = {}
        for row in recent.values("status", "engine").annotate(n=Count("pk")).order_by():
            grid.setdefault(row["status"], {})[row["engine"]] = row["n"]
        statuses = [
            {"status": s, "label": label, "counts": [grid.get(s, {}).get(e, 0) for e in Engine.values],
             "total": sum(grid.get(s, {}).values())}
            for s, label in SearchStatus.choices
        ]  # fmt: skip
        hourly = {
            row["hour"]: row["n"]
            for row in recent.annotate(hour=TruncHour("created_at", tzinfo=dt.UTC))
            .values("hour")
            .annotate(n=Count("pk"))
            .order_by()
        }
        drift = list(Search.objects.filter(drift_flagged=True).order_by("-created_at")[:LIST_LIMIT])
        reasons = {
            search_id: (reason, code)
            for search_id, reason, code in WorkflowExecution.objects.filter(search_id__in=[s.pk for s in drift])
            .order_by("attempt")
            .values_list("search_id", "drift_reason", "drift_reason_code")
        }
        for search in drift:
            search.drift_reason, code = reasons.get(search.pk, ("", {}))
            search.drift_worded = drift_words(code)  # "" for an older row: its English is shown
        routing = EngineRouting.objects.filter(pk=1).first()
        percentiles = _percentiles(since)
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": Search._meta,
            "title": _("Matching dashboard"),
            "now": now,
            "engines": Engine.choices,
            "statuses": statuses,
            "window_total": sum(s["total"] for s in statuses),
            "chart": hourly_chart(hourly, now),
            "percentiles": [
                {"engine": label, **stats} for engine, label in Engine.choices if (stats := percentiles.get(engine))
            ],
            "stuck": list(Search.objects.filter(stuck_q(now)).order_by("updated_at")[:LIST_LIMIT]),
            "drift": drift,
            "dead_letters": list(
                Search.objects.filter(callback_dead_lettered=True).order_by("-created_at")[:LIST_LIMIT]
            ),
            "vetting": list(Search.objects.filter(status=SearchStatus.AWAITING_VETTING).order_by("deadline_at")[:50]),
            "routing": {
                "mode": routing_mode(),
                "label": dict(RoutingMode.choices)[routing_mode()],
                "environment": environment_engine(),
                "in_force": choose_engine(),
                "row": routing,
                "can_switch": request.user.has_perm("workflows.switch_routing"),
            },
            "can_intervene": request.user.has_perm("matching.intervene_search"),
            # Keys about to stop working, while there is time to hand the client a new one.
            "keys": {
                "shown": request.user.has_perm("matching.view_apiclientkey"),
                "days": settings.API_KEY_EXPIRY_WARNING_DAYS,
                "expiring": api_keys_near_expiry(now=now, days=settings.API_KEY_EXPIRY_WARNING_DAYS)
                if request.user.has_perm("matching.view_apiclientkey")
                else [],
            },
            "index": index_health(),
        }
        return TemplateResponse(request, "admin/matching/dashboard.html", context)


class RoutingForm(forms.Form):
    mode = forms.ChoiceField(
        choices=RoutingMode.choices, widget=forms.RadioSelect, label=gettext_lazy("Send new searches")
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason"), widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), max_length=2000
    )


class RoutingView(View):
    model_admin = None

    def _check(self, request, *, change: bool) -> None:
        perm = "workflows.switch_routing" if change else "matching.view_search"
        if not request.user.has_perm(perm):
            raise PermissionDenied

    def _render(self, request, form):
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": Search._meta,
            "title": _("Routing of new searches"),
            "form": form,
            "mode": routing_mode(),
            "mode_label": dict(RoutingMode.choices)[routing_mode()],
            "environment": environment_engine(),
            "in_force": choose_engine(),
            "cache_seconds": ROUTING_CACHE_SECONDS,
            "history": StaffAction.objects.filter(action=StaffActionKind.ROUTING).order_by("-at")[:20],
            "can_switch": request.user.has_perm("workflows.switch_routing"),
        }
        return TemplateResponse(request, "admin/matching/routing.html", context)

    def get(self, request):
        self._check(request, change=False)
        return self._render(request, RoutingForm(initial={"mode": routing_mode()}))

    def post(self, request):
        self._check(request, change=True)
        redirect = recent_sign_in_required(request, _("A routing switch"), next_url=request.path)
        if redirect is not None:
            return redirect
        form = RoutingForm(request.POST)
        if not form.is_valid():
            return self._render(request, form)
        result = routing_set(mode=form.cleaned_data["mode"], user=request.user, reason=form.cleaned_data["reason"])
        level = messages.SUCCESS if result.ok else messages.WARNING
        said = _("Routing: %(outcome)s: %(message)s") % {
            "outcome": outcome_words(result.outcome),
            "message": result_words(result.code, result.params, result.message),
        }
        self.model_admin.message_user(request, said, level)
        return HttpResponseRedirect(reverse("admin:matching_search_dashboard"))
