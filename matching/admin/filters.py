"""List filters with fixed choices and index-served searches (no SELECT DISTINCT, no UPPER(col) = …)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from matching.models import Role, SearchResult, SearchStatus
from matching.selectors import needs_attention_q, stuck_q, vetting_overdue_q

_HEX = re.compile(r"^[0-9a-f]{1,32}$")


def uuid_prefix_q(term: str, field: str = "pk") -> Q | None:
    """A search id, whole or a prefix, as a range on the uuid: what the primary key's index serves."""
    hexed = term.lower().replace("-", "")
    if not _HEX.match(hexed):
        return None
    low, high = uuid.UUID(hexed.ljust(32, "0")), uuid.UUID(hexed.ljust(32, "f"))
    if len(hexed) == 32:
        return Q(**{field: low})
    return Q(**{f"{field}__gte": low, f"{field}__lte": high})


class ExactSearchMixin:
    """Admin search through exact or prefix lookups an index serves. `exact_search` maps the
    lookups tried for every term; `uuid_search` names uuid fields matched by prefix."""

    exact_search: tuple[str, ...] = ()
    uuid_search: tuple[str, ...] = ()

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        query = Q()
        for lookup in self.exact_search:
            query |= Q(**{lookup: term})
        for field in self.uuid_search:
            prefix = uuid_prefix_q(term, field)
            if prefix is not None:
                query |= prefix
        return queryset.filter(query), False


class RoleFilter(admin.SimpleListFilter):
    title = _("sought role")
    parameter_name = "role"

    def lookups(self, request, model_admin):
        return Role.choices

    def queryset(self, request, queryset):
        if self.value() not in Role.values:
            return queryset
        # A lookup on the expression itself (what `search_role_created_idx` indexes), not an alias named
        # `sought_role`: that would replace the list's annotation of the same name, and every row would
        # then load its deferred preferences to show the role (a query per row).
        return queryset.filter(Exact(KT("preferences__role"), self.value()))


class CreatedFilter(admin.SimpleListFilter):
    """Created within a fixed window: one range on the created_at index (no month list of every row)."""

    title = _("created")
    parameter_name = "created"
    WINDOWS = {"1h": (_("Last hour"), timedelta(hours=1)), "24h": (_("Last 24 hours"), timedelta(days=1)),
               "7d": (_("Last 7 days"), timedelta(days=7)), "30d": (_("Last 30 days"), timedelta(days=30))}  # fmt: skip

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.WINDOWS.items()]

    def queryset(self, request, queryset):
        if self.value() in self.WINDOWS:
            return queryset.filter(created_at__gte=timezone.now() - self.WINDOWS[self.value()][1])
        return queryset


class AttentionFilter(admin.SimpleListFilter):
    title = _("needs attention")
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [
            ("any", _("Any reason")),
            ("stuck", _("Stuck past its threshold")),
            ("drift", _("Drift flagged")),
            ("dead_letter", _("Callback dead-lettered")),
            ("vetting", _("Vetting past half its deadline")),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        chosen = {
            "any": needs_attention_q,
            "stuck": stuck_q,
            "drift": lambda now: Q(drift_flagged=True),
            "dead_letter": lambda now: Q(callback_dead_lettered=True),
            "vetting": vetting_overdue_q,
        }.get(self.value())
        return queryset.filter(chosen(now)) if chosen else queryset


def candidate_search_ids(user_id: str, limit: int = 1000) -> list:
    """Searches in which `user_id` was a result (newest result rows first), via result_user_idx."""
    return list(
        SearchResult.objects.filter(user_id=user_id).order_by("-id").values_list("search_id", flat=True)[:limit]
    )


def fixed_filter(field: str, title, choices) -> type[admin.SimpleListFilter]:
    """A list filter on a field without `choices`, with fixed lookups (no SELECT DISTINCT). `choices`
    is a list of (value, label), or a function returning one per request (labels in its language)."""

    class FixedFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request, model_admin):
            return choices() if callable(choices) else choices

        def queryset(self, request, queryset):
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    FixedFilter.title = title
    FixedFilter.__name__ = f"{field.title().replace('_', '')}Filter"
    return FixedFilter


STATUS_CHOICES = list(SearchStatus.choices)


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows (`SELECT count(*) FROM (… LIMIT cap + 1)`), so a list of a
    million rows never counts them all; past the cap the page says "more than 10,000"."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        # Without the ordering (Django keeps ORDER BY in a sliced subquery, so a list ordered by a
        # column no index serves would sort the whole table just to count to the cap) and with only
        # the primary key selected (annotations such as the search list's role need every row's heap).
        if isinstance(self.object_list, QuerySet):
            return self.object_list.order_by().values("pk")[: self.COUNT_CAP + 1].count()
        return len(self.object_list[: self.COUNT_CAP + 1])

    @property
    def capped(self) -> bool:
        return self.count > self.COUNT_CAP
