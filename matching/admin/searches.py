"""The console's search pages: the list, the search page with its timeline, the actions, and the
search's events and results."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.db.models.fields.json import KT
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from matching.admin import dashboard
from matching.admin.actions import ACTIONS, MAX_BULK, ActionSpec, export, report, run_one
from matching.admin.base import (
    ROLE_LABELS,
    ReadOnlyAdmin,
    chosen_action_name,
    short_duration,
    status_badge,
    stored_english,
)
from matching.admin.filters import (
    AttentionFilter,
    CreatedFilter,
    ExactSearchMixin,
    RoleFilter,
    candidate_search_ids,
    fixed_filter,
    uuid_prefix_q,
)
from matching.admin.reauth import recent_sign_in_required
from matching.admin.words import actor_words, event_words, status_words
from matching.models import (
    Search,
    SearchEvent,
    SearchEventKind,
    SearchResult,
    SearchStatus,
    SkierProfile,
    StaffAction,
)
from matching.selectors import (
    attention_reasons,
    region_names,
    resort_names,
    resort_regions,
    search_candidate_verdict,
)
from matching.templatetags.console import ms
from matching.vocabulary.reasons import dimension_reasons, preferences_in_words
from workflows.selectors import search_attempts


@admin.register(Search)
class SearchAdmin(ExactSearchMixin, ReadOnlyAdmin):
    list_display = ["short_id", "seeker_id", "role", "status_badge", "engine_short", "attempt", "time", "vetting_left",
                    "flags"]  # fmt: skip
    list_display_links = ["short_id"]
    list_filter = ["status", "engine", RoleFilter, CreatedFilter, AttentionFilter]
    search_fields = ["seeker_id"]  # shows the box; the lookups are in get_search_results
    search_help_text = gettext_lazy(
        "Search id (or its first characters), seeker id, or candidate user id (searches they were a result in)."
    )
    ordering = ["-created_at"]
    # The columns an index sorts (the primary key, seeker_id, created_at): a click on any other header
    # (engine or status descending, attempt) would sort a million rows for one page.
    sortable_by = ["short_id", "seeker_id", "time"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would COUNT(*) the table once per filter choice
    list_per_page = 50
    list_select_related = False  # no relation is shown in the list
    actions_on_bottom = True

    # --- the list ---------------------------------------------------------------------------

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        match = request.resolver_match
        if match and match.url_name and match.url_name.endswith("changelist"):
            # The list reads only the sought role out of the preferences.
            qs = qs.annotate(sought_role=KT("preferences__role")).defer("preferences", "error")
        return qs

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        query = Q(seeker_id=term)
        if (prefix := uuid_prefix_q(term)) is not None:
            query |= prefix
        if found := candidate_search_ids(term):
            query |= Q(pk__in=found)
        return queryset.filter(query), False

    @admin.display(description=gettext_lazy("Search"), ordering="pk")
    def short_id(self, obj):
        return str(obj.pk)[:8]

    @admin.display(description=gettext_lazy("Role"))
    def role(self, obj):
        # The list's annotation when there: never touch the deferred preferences.
        role = obj.sought_role or "" if hasattr(obj, "sought_role") else (obj.preferences or {}).get("role", "")
        return ROLE_LABELS.get(role, role)

    @admin.display(description=gettext_lazy("Status"), ordering="status")
    def status_badge(self, obj):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=gettext_lazy("Engine"), ordering="engine")
    def engine_short(self, obj):
        return obj.get_engine_display()

    @admin.display(description=gettext_lazy("Age / run"), ordering="created_at")
    def time(self, obj):
        # The relative age in the cell, the time itself (in the staff member's zone, which it names) on hover.
        now = timezone.now()
        if obj.finished_at:
            return format_html('<span title="{}">{}</span>', _("finished %(at)s") % {"at": ms(obj.finished_at)},
                               _("ran %(duration)s") % {"duration": short_duration(
                                   (obj.finished_at - obj.created_at).total_seconds())})  # fmt: skip
        age = short_duration((now - obj.created_at).total_seconds())
        return format_html('<span title="{}">{}</span>', _("created %(at)s") % {"at": ms(obj.created_at)},
                           _("%(age)s old") % {"age": age})  # fmt: skip

    @admin.display(description=gettext_lazy("Vetting"))
    def vetting_left(self, obj):
        if obj.status != SearchStatus.AWAITING_VETTING:
            return ""
        left = (obj.deadline_at - timezone.now()).total_seconds()
        return _("%(duration)s left") % {"duration": short_duration(left)} if left > 0 else _("overdue")

    @admin.display(description=gettext_lazy("Flags"))
    def flags(self, obj):
        reasons = attention_reasons(obj, timezone.now())
        if not reasons:
            return ""
        return format_html('<span class="sb-badge sb-amber" title="{}">⚠ {}</span>', "; ".join(reasons), reasons[0])

    # --- permissions and actions ------------------------------------------------------------------

    def allowed_specs(self, request) -> list[ActionSpec]:
        return [spec for spec in ACTIONS.values() if request.user.has_perm(spec.perm)]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        for spec in self.allowed_specs(request):
            actions[spec.key] = (self._bulk_action(spec.key), spec.key, _("%(action)s…") % {"action": spec.label})
        if request.user.has_perm(ACTIONS["intervene"].perm):
            actions["approve_vetting"] = (self._bulk_action("intervene", "approve_all"), "approve_vetting",
                                          _("Approve pending vetting…"))  # fmt: skip
            actions["reject_vetting"] = (self._bulk_action("intervene", "reject"), "reject_vetting",
                                         _("Reject pending vetting…"))  # fmt: skip
        return actions

    def _bulk_action(self, key: str, decision: str = ""):
        def action(modeladmin, request, queryset):
            return modeladmin.action_flow(request, queryset, ACTIONS[key], single=None, decision=decision)

        return action

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST":
            for name in request.POST.getlist("action"):
                key = "intervene" if name in ("approve_vetting", "reject_vetting") else name
                if key in ACTIONS and not request.user.has_perm(ACTIONS[key].perm):
                    raise PermissionDenied(f"you may not {ACTIONS[key].key}")
        extra_context = {**(extra_context or {}), "dashboard_url": reverse("admin:matching_search_dashboard")}
        return super().changelist_view(request, extra_context)

    def action_flow(self, request, queryset, spec: ActionSpec, *, single: Search | None, decision: str = ""):
        """The confirmation page (GET or a first POST), then one service call per search."""
        if not request.user.has_perm(spec.perm):
            raise PermissionDenied
        searches = list(queryset.order_by("-created_at")[: MAX_BULK + 1])
        if len(searches) > MAX_BULK:
            self.message_user(
                request,
                ngettext(
                    "Select at most %(count)d search for one action.",
                    "Select at most %(count)d searches for one action.",
                    MAX_BULK,
                )
                % {"count": MAX_BULK},
                messages.ERROR,
            )
            return None
        if single is None and len(searches) > settings.STAFF_REAUTH_BULK_OVER:
            redirect = recent_sign_in_required(
                request,
                ngettext("%(action)s on %(count)d search", "%(action)s on %(count)d searches", len(searches))
                % {"action": spec.label, "count": len(searches)},
                next_url=request.get_full_path(),
            )
            if redirect is not None:
                return redirect
        confirmed = request.method == "POST" and request.POST.get("confirm") == "yes"
        candidates = dashboard.vetting_candidates(single) if spec.key == "intervene" and single else None
        form = spec.form(request.POST if confirmed else None, search=single, candidates=candidates,
                         initial={"decision": decision or request.GET.get("decision", "")})  # fmt: skip
        if confirmed and form.is_valid():
            if spec.key.startswith("export"):
                return export(spec, searches=searches, user=request.user, reason=form.cleaned_data["reason"])
            outcomes = [(s, run_one(spec, search=s, user=request.user, data=form.cleaned_data)) for s in searches]
            report(request, self.message_user, spec, outcomes)
            if single is not None:
                return HttpResponseRedirect(reverse("admin:matching_search_change", args=[single.pk]))
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("%(action)s: confirm") % {"action": spec.label},
            "spec": spec,
            "searches": searches,
            "shown": searches[:20],
            "count": len(searches),
            "form": form,
            "single": single,
            "action_name": chosen_action_name(request, spec.key),
            "selected_ids": [str(s.pk) for s in searches],
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/matching/search/confirm_action.html", context)

    def single_action_view(self, request, object_id, key):
        spec = ACTIONS.get(key)
        if spec is None:
            raise Http404("no such action")
        if not request.user.has_perm(spec.perm):
            raise PermissionDenied
        search = get_object_or_404(Search, pk=object_id)
        response = self.action_flow(request, Search.objects.filter(pk=search.pk), spec, single=search)
        return response or HttpResponseRedirect(reverse("admin:matching_search_change", args=[search.pk]))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(dashboard.DashboardView.as_view(model_admin=self)),
                 name="matching_search_dashboard"),
            path("routing/", wrap(dashboard.RoutingView.as_view(model_admin=self)), name="matching_search_routing"),
            path("<uuid:object_id>/act/<slug:key>/", wrap(self.single_action_view), name="matching_search_act"),
            *super().get_urls(),
        ]  # fmt: skip

    # --- the search page ---------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method != "GET":
            raise PermissionDenied("a search is read-only: act on it through its actions")
        search = self.get_object(request, object_id)
        if search is None:
            raise Http404("no such search")
        if not self.has_view_permission(request, search):
            raise PermissionDenied
        names, regions = resort_names(), resort_regions()
        results = list(SearchResult.objects.filter(search=search, attempt=search.attempt).order_by("rank"))
        profiles = {
            p["user_id"]: p
            for p in SkierProfile.objects.filter(
                user_id__in=[r.user_id for r in results], deleted_at__isnull=True
            ).values("user_id", "skill_level", "role", "resorts", "regions", "available_dates", "knowledge_score")
        }
        for result in results:
            result.reasons = dimension_reasons(
                breakdown=result.breakdown or {},
                preferences=search.preferences,
                profile=profiles.get(result.user_id),
                resort_names=names,
                resort_regions=regions,
                region_names=region_names(),
            )
        why = request.GET.get("why", "").strip()[:64]
        verdict = search_candidate_verdict(search=search, user_id=why) if why else None
        buttons = [spec for spec in self.allowed_specs(request) if spec.applies(search)]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Search %(id)s") % {"id": str(search.pk)[:8]},
            "subtitle": None,
            "search": search,
            "original": search,
            "status_badge": status_badge(search.status, search.get_status_display()),
            "preferences": preferences_in_words(search.preferences, resort_names=names, region_names=region_names()),
            "results": results,
            "attempts": search_attempts(search=search),
            "audit": StaffAction.objects.filter(search=search).order_by("-at")[:200],
            "attention": attention_reasons(search, timezone.now()),
            "why": why,
            "verdict": verdict,
            "buttons": buttons,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/matching/search/detail.html", context)


@admin.register(SearchEvent)
class SearchEventAdmin(ExactSearchMixin, ReadOnlyAdmin):
    list_display = ["at", "search", "attempt", "kind_shown", "from_shown", "to_shown", "actor_shown"]
    list_filter = [fixed_filter("kind", gettext_lazy("kind"), [(k.value, k.label) for k in SearchEventKind])]
    # The change page: kinds, statuses and actors in the staff member's words; the detail as stored (English).
    fields = ["search", "attempt", "at", "kind_shown", "from_shown", "to_shown", "actor_shown", "detail_shown"]
    readonly_fields = fields
    list_select_related = ["search"]
    search_fields = ["search__search_id"]  # shows the box; the lookup is a uuid prefix (get_search_results)
    # Not by actor: no index serves it over millions of events; staff actions have their own list.
    search_help_text = gettext_lazy("Search id (or its first characters).")
    uuid_search = ("search_id",)
    show_full_result_count = False
    ordering = ["-id"]  # newest first; with a kind, through `event_kind_id_idx`
    sortable_by = ()  # no other column of 4M rows has an index to sort by

    @admin.display(description=gettext_lazy("kind"))
    def kind_shown(self, obj: SearchEvent) -> str:
        return event_words(obj.kind)

    @admin.display(description=gettext_lazy("from status"))
    def from_shown(self, obj: SearchEvent) -> str:
        return status_words(obj.from_status)

    @admin.display(description=gettext_lazy("to status"))
    def to_shown(self, obj: SearchEvent) -> str:
        return status_words(obj.to_status)

    @admin.display(description=gettext_lazy("actor"))
    def actor_shown(self, obj: SearchEvent) -> str:
        return actor_words(obj.actor)

    @admin.display(description=gettext_lazy("detail"))
    def detail_shown(self, obj: SearchEvent) -> str:
        return stored_english(obj.detail)


@admin.register(SearchResult)
class SearchResultAdmin(ExactSearchMixin, ReadOnlyAdmin):
    list_display = ["search", "attempt", "rank", "user_id", "nickname", "score"]
    list_select_related = ["search"]
    search_fields = ["user_id"]
    search_help_text = gettext_lazy("Search id (or its first characters), or an exact candidate user id.")
    exact_search = ("user_id",)
    uuid_search = ("search_id",)
    show_full_result_count = False
    # Index-served sorts only: by search (newest searches first, each one's results through the unique
    # index) and by user id (`result_user_idx`); attempt, rank, nickname or score would sort 1M rows.
    sortable_by = ["search", "user_id"]
