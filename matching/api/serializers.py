from __future__ import annotations

import datetime
import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from matching.models import TERMINAL_STATUSES, Resort, Role, Search, SearchResult
from matching.regions import REGION_CHOICES
from matching.selectors import profile_knowledge_score, resort_regions, snowtrace_results

MAX_DATES = 60
MAX_RESORTS = 43
MAX_REGIONS = 20
RESORTS_HINT = "GET /matching/resorts lists the known resort ids and regions."
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class StrictIntegerField(serializers.IntegerField):
    """JSON integers only: no "5", no 5.5, no true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictStringField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"})
class StrictDateField(serializers.Field):
    """A calendar date written exactly `YYYY-MM-DD`. (DRF's ISO-8601 date field goes through
    `date.fromisoformat`, which also takes `20260101` and `2026-W01-1`.)"""

    default_error_messages = {"invalid": "Date has wrong format. Use YYYY-MM-DD."}

    def to_internal_value(self, data):
        if not isinstance(data, str) or not DATE_RE.fullmatch(data):
            self.fail("invalid")
        try:
            return datetime.date.fromisoformat(data)
        except ValueError:
            self.fail("invalid")

    def to_representation(self, value):
        return value.isoformat() if isinstance(value, datetime.date) else value


class SearchPreferencesSerializer(serializers.Serializer):
    """The body of POST /matching/searches (docs/contracts.md). Unknown fields are rejected."""

    role = serializers.ChoiceField(choices=Role.choices)
    skill_level_min = StrictIntegerField(min_value=1, max_value=10)
    skill_level_max = StrictIntegerField(min_value=1, max_value=10)
    resorts = serializers.ListField(child=StrictStringField(max_length=64), max_length=MAX_RESORTS, default=list)
    regions = serializers.ListField(child=StrictStringField(max_length=100), max_length=MAX_REGIONS, default=list)
    dates = serializers.ListField(child=StrictDateField(), max_length=MAX_DATES, default=list)
    include_knowledge_score = StrictBooleanField(default=False)
    knowledge_score = StrictIntegerField(min_value=0, max_value=100, required=False, allow_null=True, default=None)
    required_certifications = serializers.ListField(child=StrictStringField(max_length=32), max_length=10, default=list)
    vetting_required = StrictBooleanField(default=False)
    limit = StrictIntegerField(min_value=1, max_value=100, default=20)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        value = super().to_internal_value(data)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return value

    def validate_resorts(self, value: list[str]) -> list[str]:
        return known_resorts(value)

    def validate_regions(self, value: list[str]) -> list[str]:
        return known_regions(value)

    def validate_dates(self, value: list[datetime.date]) -> list[str]:
        return iso_dates(value)

    def validate_required_certifications(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def validate(self, attrs: dict) -> dict:
        errors = {}
        if attrs["skill_level_min"] > attrs["skill_level_max"]:
            errors["skill_level_max"] = ["Must be greater than or equal to skill_level_min."]
        if attrs["role"] != Role.COACH:
            for field in ("required_certifications", "vetting_required"):
                if attrs.get(field):
                    errors[field] = ["Only allowed when role is coach."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def known_resorts(value: list[str]) -> list[str]:
    """Resort ids as the old service and the console both spell them (e.g. `yuzawa_naeba`)."""
    known = resort_regions()
    bad = [r for r in value if r not in known]
    if bad:
        raise serializers.ValidationError(f"Unknown resort(s): {', '.join(sorted(set(bad)))}. {RESORTS_HINT}")
    return list(dict.fromkeys(value))


def known_regions(value: list[str]) -> list[str]:
    """Region names exactly as the resort data spells them (e.g. `Niigata Prefecture`)."""
    known = set(resort_regions().values())
    bad = [r for r in value if r not in known]
    if bad:
        raise serializers.ValidationError(
            f"Unknown region(s): {', '.join(sorted(set(bad)))}. Known regions: {', '.join(sorted(known))}."
        )
    return list(dict.fromkeys(value))


def iso_dates(value: list[datetime.date]) -> list[str]:
    return sorted({d.isoformat() for d in value})


class SnowTraceSearchPreferencesSerializer(serializers.Serializer):
    """SnowTrace's original body of POST /matching/searches, as the old service took it: every field
    optional with the old defaults and ranges. It validates to the console's preferences form.

    The old service compared resorts and regions literally with the candidates' (resort ids from the
    resort service, region names as the resort data spells them), so only those spellings are
    accepted here; anything else could never have matched and is a 400 that points to the list.
    """

    skill_level_min = StrictIntegerField(min_value=1, max_value=10, default=1)
    skill_level_max = StrictIntegerField(min_value=1, max_value=10, default=10)
    preferred_resorts = serializers.ListField(
        child=StrictStringField(max_length=64), max_length=MAX_RESORTS, default=list, allow_null=True
    )
    preferred_regions = serializers.ListField(
        child=StrictStringField(max_length=100), max_length=MAX_REGIONS, default=list, allow_null=True
    )
    availability = serializers.ListField(child=StrictDateField(), max_length=MAX_DATES, default=list, allow_null=True)
    seeking_role = serializers.ChoiceField(choices=Role.choices, default=Role.BUDDY)
    include_knowledge_score = StrictBooleanField(default=False)

    # The old service returned every candidate above the threshold; the console caps a search.
    RESULT_LIMIT = 100

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        value = super().to_internal_value(data)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return value

    def validate_preferred_resorts(self, value: list[str] | None) -> list[str]:
        return known_resorts(value or [])

    def validate_preferred_regions(self, value: list[str] | None) -> list[str]:
        return known_regions(value or [])

    def validate_availability(self, value: list[datetime.date] | None) -> list[str]:
        return iso_dates(value or [])

    def validate(self, attrs: dict) -> dict:
        """The console's one preferences form (docs/contracts.md). The old service did not ask for
        min <= max: a reversed range is accepted and, as there, finds nobody."""
        seeker_id = self.context.get("seeker_id")
        wants_knowledge = attrs["include_knowledge_score"]
        return {
            "role": attrs["seeking_role"],
            "skill_level_min": attrs["skill_level_min"],
            "skill_level_max": attrs["skill_level_max"],
            "resorts": attrs["preferred_resorts"],
            "regions": attrs["preferred_regions"],
            "dates": attrs["availability"],
            "include_knowledge_score": wants_knowledge,
            # The old service looked the seeker's score up; the console keeps a copy of it.
            "knowledge_score": profile_knowledge_score(seeker_id) if wants_knowledge and seeker_id else None,
            "required_certifications": [],
            "vetting_required": False,
            "limit": self.RESULT_LIMIT,
        }


# The same field under its console name and its original SnowTrace name.
ORIGINAL_NAMES = {
    "role": "seeking_role",
    "resorts": "preferred_resorts",
    "regions": "preferred_regions",
    "dates": "availability",
}
_SHARED = {"skill_level_min", "skill_level_max", "include_knowledge_score"}
_ORIGINAL_ONLY = set(SnowTraceSearchPreferencesSerializer().fields) - _SHARED
_CONSOLE_ONLY = set(SearchPreferencesSerializer().fields) - _SHARED


def search_preferences_serializer(data, *, seeker_id: str) -> serializers.Serializer:
    """The serializer for the shape this body is in.

    A body naming any console-only field (`role`, `resorts`, `limit`, …) is in the console's shape;
    any other JSON object (even `{}`) is in SnowTrace's original shape. A body that uses names of
    both shapes is refused: which one it meant cannot be told.
    """
    if not isinstance(data, dict):
        return SearchPreferencesSerializer(data=data)
    original, console = _ORIGINAL_ONLY & set(data), _CONSOLE_ONLY & set(data)
    if original and console:
        errors = {}
        for console_name, original_name in ORIGINAL_NAMES.items():
            if console_name in data and original_name in data:
                message = (
                    f"Both '{console_name}' and '{original_name}' were sent for the same field; send one "
                    f"('{original_name}' is SnowTrace's original name, '{console_name}' the console's)."
                )
                errors[console_name], errors[original_name] = [message], [message]
        if not errors:
            errors["non_field_errors"] = [
                f"The body mixes SnowTrace's original field names ({', '.join(sorted(original))}) with the "
                f"console's ({', '.join(sorted(console))}); use one shape."
            ]
        raise serializers.ValidationError(errors)
    if console:
        return SearchPreferencesSerializer(data=data)
    return SnowTraceSearchPreferencesSerializer(data=data, context={"seeker_id": seeker_id})


class SearchResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = SearchResult
        fields = ["rank", "user_id", "nickname", "score", "breakdown"]


class SearchSubmittedSerializer(serializers.ModelSerializer):
    class Meta:
        model = Search
        fields = ["search_id", "status", "engine"]


class SearchSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Search
        fields = [
            "search_id",
            "status",
            "engine",
            "attempt",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
            "result_count",
            "error",
        ]


class SearchDetailSerializer(SearchSummarySerializer):
    results = serializers.SerializerMethodField()

    class Meta(SearchSummarySerializer.Meta):
        fields = [*SearchSummarySerializer.Meta.fields, "preferences", "results"]

    def get_results(self, search: Search) -> list[dict]:
        rows = search.results.filter(attempt=search.attempt).order_by("rank")
        return SearchResultSerializer(rows, many=True).data


# --- SnowTrace's original answers (API version 1, the default) ------------------------------


class SnowTraceStatus:
    """The old service knew two states. Every console state maps onto them: a search that has
    finished, however it finished, is `completed` (with no results unless it succeeded)."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    CHOICES = [(PROCESSING, "Processing"), (COMPLETED, "Completed")]

    @classmethod
    def of(cls, status: str) -> str:
        return cls.COMPLETED if status in TERMINAL_STATUSES else cls.PROCESSING


class SnowTraceMatchSerializer(serializers.Serializer):
    """One result as the old service gave it (its `MatchSummary`)."""

    user_id = serializers.CharField()
    nickname = serializers.CharField()
    skill_level = serializers.IntegerField(min_value=1, max_value=10)
    self_role = serializers.ChoiceField(choices=Role.choices)
    match_score = serializers.FloatField()


class SnowTraceSearchSerializer(serializers.Serializer):
    """GET /matching/searches/{id} as the old service answered it."""

    status = serializers.SerializerMethodField()
    results = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=SnowTraceStatus.CHOICES))
    def get_status(self, search: Search) -> str:
        return SnowTraceStatus.of(search.status)

    @extend_schema_field(SnowTraceMatchSerializer(many=True))
    def get_results(self, search: Search) -> list[dict]:
        results = snowtrace_results(search_id=search.pk, attempt=search.attempt, status=search.status)
        return SnowTraceMatchSerializer(results, many=True).data


class SnowTraceSearchSubmittedSerializer(serializers.Serializer):
    """POST /matching/searches as the old service answered it."""

    search_id = serializers.UUIDField()


# --- Cancel and reference data ----------------------------------------------------------------


class SearchCancelSerializer(serializers.Serializer):
    reason = StrictStringField(max_length=500, required=False, allow_blank=True, default="")

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        value = super().to_internal_value(data)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return value


class SearchCancelledSerializer(serializers.ModelSerializer):
    class Meta:
        model = Search
        fields = ["search_id", "status", "attempt", "finished_at"]


class ResortSerializer(serializers.ModelSerializer):
    class Meta:
        model = Resort
        fields = ["id", "name", "name_en", "name_ja", "region", "country"]


class ResortListSerializer(serializers.Serializer):
    regions = serializers.ListField(child=serializers.ChoiceField(choices=REGION_CHOICES))
    resorts = ResortSerializer(many=True)
