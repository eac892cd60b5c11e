"""The staff console: the Django admin, extended (templates in templates/admin/)."""

from __future__ import annotations

from django import forms
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
from matching.admin.filters import (
    AttentionFilter,
    CappedCountPaginator,
    CreatedFilter,
    ExactSearchMixin,
    RoleFilter,
    candidate_search_ids,
    fixed_filter,
    uuid_prefix_q,
)
from matching.admin.reauth import recent_sign_in_required
from matching.models import (
    TERMINAL_STATUSES,
    ApiClientKey,
    MatchRequest,
    ProfileSyncState,
    Resort,
    Role,
    Search,
    SearchEvent,
    SearchEventKind,
    SearchNotification,
    SearchResult,
    SearchStatus,
    SkierProfile,
    StaffAction,
    StaffPreference,
    SubmitIdempotencyKey,
    UserEvent,
    staff_actor,
)
from matching.reasons import dimension_reasons, preferences_in_words
from matching.selectors import (
    api_key_live_q,
    attention_reasons,
    region_names,
    resort_names,
    resort_regions,
    search_candidate_verdict,
)
from matching.services import (
    MAX_ACTIVE_KEYS_PER_CLIENT,
    api_key_create,
    api_key_revoke,
    profile_delete,
    profile_upsert,
)
from matching.templatetags.console import ms
from workflows.notifications import notification_redeliver
from workflows.selectors import search_attempts
from workflows.user_events import user_event_redeliver


def chosen_action_name(request, default: str) -> str:
    """The admin action picked in the list: the list has an action form at the top and the bottom,
    and `index` says which one was submitted."""
    names = request.POST.getlist("action")
    try:
        index = int(request.POST.get("index") or 0)
    except ValueError:
        index = 0
    return (names[index] if index < len(names) else "") or next(filter(None, names), default)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records nobody edits from the console: the engines and services write them."""

    show_facets = admin.ShowFacets.NEVER  # these tables grow large: no per-choice COUNT(*)
    paginator = CappedCountPaginator

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Resort)
class ResortAdmin(admin.ModelAdmin):
    list_display = ["id", "name_en", "name_ja", "region", "country"]
    list_filter = ["region"]
    search_fields = ["id", "name", "name_en", "name_ja"]


@admin.register(SkierProfile)
class SkierProfileAdmin(ExactSearchMixin, admin.ModelAdmin):
    list_display = ["user_id", "nickname", "role", "skill_level", "open_to_matching", "knowledge_score", "updated_at"]
    list_filter = ["role", "open_to_matching",
                   fixed_filter("skill_level", gettext_lazy("skill level"), [(str(n), str(n)) for n in range(1, 11)]),
                   ("deleted_at", admin.EmptyFieldListFilter)]  # fmt: skip
    show_facets = admin.ShowFacets.NEVER
    search_fields = ["user_id"]
    search_help_text = gettext_lazy("Exact user id or nickname.")
    exact_search = ("user_id", "nickname")
    readonly_fields = ["region_mask", "updated_at", "deleted_at"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        # The user id names the profile; changing it would be another profile.
        return [*self.readonly_fields, "user_id"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        # Through the one profile service: it derives the region mask and stamps updated_at,
        # which the warm candidate indexes follow.
        saved = profile_upsert(
            user_id=obj.user_id,
            nickname=obj.nickname,
            skill_level=obj.skill_level,
            role=obj.role,
            resorts=obj.resorts,
            regions=obj.regions,
            available_dates=obj.available_dates,
            open_to_matching=obj.open_to_matching,
            knowledge_score=obj.knowledge_score,
            certifications=obj.certifications,
            languages=obj.languages,
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        # A tombstone, so every warm index sees the delete (docs/profiles.md).
        profile_delete(user_id=obj.user_id)

    def delete_queryset(self, request, queryset):
        for user_id in queryset.values_list("user_id", flat=True):
            profile_delete(user_id=user_id)


@admin.register(ProfileSyncState)
class ProfileSyncStateAdmin(ReadOnlyAdmin):
    list_display = ["source", "run_mode", "run_started_at", "pages_done", "last_completed_at", "lease_until"]


ROLE_LABELS = dict(Role.choices)

STATUS_COLOURS = {
    "pending": "grey",
    "dispatched": "blue",
    "running": "blue",
    "awaiting_vetting": "amber",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "grey",
    "timed_out": "red",
}


def status_badge(status: str, label: str) -> str:
    return format_html('<span class="sb-badge sb-{}">{}</span>', STATUS_COLOURS.get(status, "grey"), label)


def short_duration(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 1:
        return _("%(n)s ms") % {"n": f"{seconds * 1000:.0f}"}
    if seconds < 60:
        return _("%(n)s s") % {"n": f"{seconds:.1f}"}
    if seconds < 3600:
        return _("%(n)s min") % {"n": f"{seconds // 60:.0f}"}
    if seconds < 86400:
        return _("%(n)s h") % {"n": f"{seconds / 3600:.1f}"}
    return _("%(n)s d") % {"n": f"{seconds / 86400:.0f}"}


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
    list_display = ["at", "search", "attempt", "kind", "from_status", "to_status", "actor"]
    list_filter = [fixed_filter("kind", gettext_lazy("kind"), [(k.value, k.value) for k in SearchEventKind])]
    list_select_related = ["search"]
    search_fields = ["search__search_id"]  # shows the box; the lookup is a uuid prefix (get_search_results)
    # Not by actor: no index serves it over millions of events; staff actions have their own list.
    search_help_text = gettext_lazy("Search id (or its first characters).")
    uuid_search = ("search_id",)
    show_full_result_count = False
    ordering = ["-id"]  # newest first; with a kind, through `event_kind_id_idx`
    sortable_by = ()  # no other column of 4M rows has an index to sort by


class ApiKeyStateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", _("In use")), ("expired", _("Expired")), ("revoked", _("Revoked"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "live":
            return queryset.filter(api_key_live_q(now))
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class ApiClientKeyForm(forms.ModelForm):
    """Says before saving what api_key_create would refuse: an expiry in the past, or a third live
    key for one client (the service checks again, under a lock)."""

    class Meta:
        model = ApiClientKey
        fields = ["name", "is_trusted_service", "expires_at", "note"]

    def clean(self):
        data = super().clean()
        now = timezone.now()
        expires_at = data.get("expires_at")
        if expires_at is not None and expires_at <= now and self.instance.pk is None:
            self.add_error("expires_at", _("A new key's expiry must be in the future."))
        # A new key, or a key moved to another client by renaming it, joins that client's live keys.
        if data.get("name") and (self.instance.pk is None or "name" in self.changed_data):
            others = ApiClientKey.objects.filter(api_key_live_q(now), name=data["name"]).exclude(pk=self.instance.pk)
            live = others.count()
            if live >= MAX_ACTIVE_KEYS_PER_CLIENT:
                self.add_error(
                    "name",
                    ngettext(
                        "%(name)s already has %(count)d key in use: revoke the old one once the client "
                        "has moved to the new one.",
                        "%(name)s already has %(count)d keys in use: revoke the old one once the client "
                        "has moved to the new one.",
                        live,
                    )
                    % {"name": data["name"], "count": live},
                )
        return data


@admin.register(ApiClientKey)
class ApiClientKeyAdmin(admin.ModelAdmin):
    form = ApiClientKeyForm
    list_display = [
        "name", "prefix", "state", "is_trusted_service", "imported", "created_at", "expires_at", "last_used_at"
    ]  # fmt: skip
    list_filter = [ApiKeyStateFilter, "is_trusted_service", "imported"]
    search_fields = ["name", "=prefix"]
    # `imported`: carried over from SnowTrace with `create_api_key --from-env` (its prefix is a label).
    fields = ["name", "is_trusted_service", "expires_at", "note", "imported", "prefix", "created_at", "last_used_at",
              "revoked_at"]  # fmt: skip
    readonly_fields = ["imported", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_keys"]

    @admin.display(description=gettext_lazy("state"))
    def state(self, obj):
        if obj.revoked_at is not None:
            colour, label = "grey", _("revoked")
        elif obj.is_expired:
            colour, label = "red", _("expired")
        else:
            colour, label = "green", _("in use")
        return format_html('<span class="sb-badge sb-{}">{}</span>', colour, label)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw_key = api_key_create(
            name=obj.name, is_trusted_service=obj.is_trusted_service, expires_at=obj.expires_at, note=obj.note
        )
        obj.pk = key.pk
        self.message_user(
            request,
            _("New key for %(name)s: %(key)s — copy it now, it is not stored and will not be shown again.")
            % {"name": key.name, "key": raw_key},
            messages.WARNING,
        )

    @admin.action(description=gettext_lazy("Revoke selected keys"), permissions=["change"])
    def revoke_keys(self, request, queryset):
        count = sum(api_key_revoke(key=key) for key in queryset)
        self.message_user(
            request, ngettext("Revoked %(count)d key.", "Revoked %(count)d keys.", count) % {"count": count}
        )


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


@admin.register(StaffAction)
class StaffActionAdmin(ExactSearchMixin, ReadOnlyAdmin):
    list_display = ["at", "username", "action", "search", "attempt", "status_before", "status_after", "outcome",
                    "reason"]  # fmt: skip
    list_filter = ["action", "outcome"]
    list_select_related = ["search"]
    search_fields = ["username"]
    search_help_text = gettext_lazy("Search id (or its first characters), or an exact username.")
    exact_search = ("username",)
    uuid_search = ("search_id",)
    show_full_result_count = False
    sortable_by = ["at"]  # `staffaction_at_idx`; the trail only grows: other sorts would sort all of it


FINISHED_CHOICES = [(value, label) for value, label in SearchStatus.choices if value in TERMINAL_STATUSES]


@admin.register(SearchNotification)
class SearchNotificationAdmin(ExactSearchMixin, ReadOnlyAdmin):
    """Completion notifications to SnowTrace: what was delivered, what is retrying, what is dead."""

    list_display = ["search", "attempt", "status", "state", "tries", "last_status_code", "last_attempt_at",
                    "next_attempt_at", "sent_at", "last_error"]  # fmt: skip
    # A notification is written only for a finished attempt: the filter offers only those statuses.
    list_filter = ["state", fixed_filter("status", gettext_lazy("status"), FINISHED_CHOICES)]
    list_select_related = ["search"]
    search_fields = ["search__search_id"]  # shows the box; the lookup is a uuid prefix (get_search_results)
    search_help_text = gettext_lazy("Search id (or its first characters).")
    uuid_search = ("search_id",)
    show_full_result_count = False
    # Newest first through the primary key: the model's `-created_at` is indexed only behind the
    # state (a full sort of a million rows per page otherwise), and no column is sortable for that reason.
    ordering = ["-id"]
    sortable_by = ()
    fields = ["search", "attempt", "status", "state", "webhook_id", "created_at", "tries", "last_attempt_at",
              "last_status_code", "last_error", "next_attempt_at", "retry_until", "sent_at"]  # fmt: skip
    readonly_fields = fields
    actions = ["redeliver"]

    @admin.display(description=gettext_lazy("webhook-id"))
    def webhook_id(self, obj: SearchNotification) -> str:
        return obj.webhook_id

    def has_redeliver_permission(self, request) -> bool:
        return request.user.has_perm("matching.redeliver_searchnotification")

    @admin.action(description=gettext_lazy("Redeliver selected notifications (same webhook-id)"),
                  permissions=["redeliver"])  # fmt: skip
    def redeliver(self, request, queryset):
        acting_user = staff_actor(request.user.get_username())
        count = sum(notification_redeliver(notification=n, acting_user=acting_user) for n in queryset)
        skipped = queryset.count() - count
        self.message_user(
            request,
            ngettext("Queued %(count)d notification for redelivery.", "Queued %(count)d notifications for redelivery.",
                     count) % {"count": count},
        )  # fmt: skip
        if skipped:
            self.message_user(
                request,
                ngettext("%(count)d already pending: left to its next try.",
                         "%(count)d already pending: left to their next try.", skipped) % {"count": skipped},
                messages.WARNING,
            )  # fmt: skip


@admin.register(SubmitIdempotencyKey)
class SubmitIdempotencyKeyAdmin(ExactSearchMixin, ReadOnlyAdmin):
    """Which Idempotency-Key bound which search (kept 24 h, then purged by beat)."""

    list_display = ["key", "seeker_id", "search", "created_at"]
    list_select_related = ["search"]
    search_fields = ["key"]  # shows the box; the lookups are exact or a uuid prefix (get_search_results)
    search_help_text = gettext_lazy("An exact key, or a search id (or its first characters).")
    exact_search = ("key",)
    uuid_search = ("search_id",)
    show_full_result_count = False
    fields = ["key", "seeker_id", "search", "fingerprint", "created_at"]
    readonly_fields = fields


@admin.register(MatchRequest)
class MatchRequestAdmin(ExactSearchMixin, ReadOnlyAdmin):
    """Who asked whom to ski together, and the answer (`/requests`): the users' records, read-only."""

    list_display = ["request_id", "requester_id", "target_user_id", "status", "created_at", "answered_at"]
    list_filter = ["status"]  # `matchrequest_status_idx` serves each choice, newest first
    search_fields = ["requester_id"]  # shows the box; the lookups are exact or a uuid prefix (get_search_results)
    search_help_text = gettext_lazy("A request id (or its first characters), or an exact user id (either party).")
    exact_search = ("requester_id", "target_user_id")  # each behind its own index
    uuid_search = ("request_id",)
    show_full_result_count = False
    ordering = ["-created_at"]
    sortable_by = ["created_at"]
    fields = ["request_id", "requester_id", "target_user_id", "status", "created_at", "answered_at", "events"]
    readonly_fields = fields

    @admin.display(description=gettext_lazy("events to the user service"))
    def events(self, obj: MatchRequest) -> str:
        rows = obj.events.order_by("pk").only("event_type", "state", "tries")
        # The event type stays the user service's own name (a machine identifier, as it is sent).
        return (
            ", ".join(
                ngettext("%(type)s (%(state)s, %(tries)d try)", "%(type)s (%(state)s, %(tries)d tries)", e.tries)
                % {"type": e.event_type, "state": e.get_state_display(), "tries": e.tries}
                for e in rows
            )
            or "—"
        )


@admin.register(UserEvent)
class UserEventAdmin(ExactSearchMixin, ReadOnlyAdmin):
    """Match-request events to SnowTrace's user service: what was delivered, what is retrying, what is dead."""

    list_display = ["event_type", "match_request", "state", "tries", "last_status_code", "last_attempt_at",
                    "next_attempt_at", "sent_at", "last_error"]  # fmt: skip
    list_filter = ["state", "event_type"]
    list_select_related = ["match_request"]
    search_fields = ["match_request__request_id"]  # shows the box; the lookup is a uuid prefix (get_search_results)
    search_help_text = gettext_lazy("A match request id (or its first characters).")
    uuid_search = ("match_request",)
    show_full_result_count = False
    ordering = ["-id"]  # newest first; with a state or a type, through its index
    sortable_by = ()
    fields = ["event_id", "match_request", "event_type", "state", "created_at", "tries", "last_attempt_at",
              "last_status_code", "last_error", "next_attempt_at", "retry_until", "sent_at", "body"]  # fmt: skip
    readonly_fields = fields
    actions = ["redeliver"]

    def has_redeliver_permission(self, request) -> bool:
        return request.user.has_perm("matching.redeliver_userevent")

    @admin.action(description=gettext_lazy("Redeliver selected events (same Idempotency-Key)"),
                  permissions=["redeliver"])  # fmt: skip
    def redeliver(self, request, queryset):
        count = sum(user_event_redeliver(event=event) for event in queryset)
        skipped = queryset.count() - count
        self.message_user(
            request,
            ngettext("Queued %(count)d event for redelivery.", "Queued %(count)d events for redelivery.", count)
            % {"count": count},
        )
        if skipped:
            self.message_user(
                request,
                ngettext("%(count)d already pending: left to its next try.",
                         "%(count)d already pending: left to their next try.", skipped) % {"count": skipped},
                messages.WARNING,
            )  # fmt: skip


@admin.register(StaffPreference)
class StaffPreferenceAdmin(admin.ModelAdmin):
    """Each staff member sets their own from the console's header; shown here for the record."""

    list_display = ["user", "language", "time_zone", "updated_at"]
    readonly_fields = ["user", "language", "time_zone", "updated_at"]

    def has_add_permission(self, request, obj=None):
        return False
