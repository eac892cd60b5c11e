from __future__ import annotations

import datetime
import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from matching.models import Engine, Role, Search, SearchResult
from matching.selectors import resort_regions
from workflows.orchestrator import choose_engine

MAX_DATES = 60
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
    resorts = serializers.ListField(child=StrictStringField(max_length=64), max_length=43, default=list)
    regions = serializers.ListField(child=StrictStringField(max_length=100), max_length=20, default=list)
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
        known = resort_regions()
        bad = [r for r in value if r not in known]
        if bad:
            raise serializers.ValidationError(f"Unknown resort(s): {', '.join(sorted(set(bad)))}.")
        return list(dict.fromkeys(value))

    def validate_regions(self, value: list[str]) -> list[str]:
        known = set(resort_regions().values())
        bad = [r for r in value if r not in known]
        if bad:
            raise serializers.ValidationError(f"Unknown region(s): {', '.join(sorted(set(bad)))}.")
        return list(dict.fromkeys(value))

    def validate_dates(self, value: list[datetime.date]) -> list[str]:
        return sorted({d.isoformat() for d in value})

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
        elif attrs.get("vetting_required") and choose_engine() != Engine.DURABLE:
            errors["vetting_required"] = ["Certification vetting needs the durable engine, which is not enabled."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


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
