from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from matching.models import TERMINAL_STATUSES, Resort, Role, Search, SearchResult
from matching.regions import KNOWN_REGIONS, REGION_CHOICES
from matching.selectors import profile_knowledge_score, resort_regions, snowtrace_results
from snowbuddy.openapi_json import NO_NUL_PATTERN

MAX_DATES = 60
MAX_RESORTS = 43
MAX_REGIONS = 20
MAX_CERTIFICATIONS = 10
RESORTS_HINT = "GET /matching/resorts lists the known resort ids and regions."
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _fixture_resort_ids() -> list[str]:
    """The resort ids of matching/fixtures/resorts.json: the schema's enum (the API checks the
    database's list, which is loaded from that fixture)."""
    rows = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "resorts.json").read_text())
    return sorted(row["pk"] for row in rows if row["model"] == "matching.resort")


RESORT_IDS = _fixture_resort_ids()


class ClosedSerializer(serializers.Serializer):
    """A request body whose unknown fields are a 400 (code `unknown_field`), each named. The OpenAPI
    schema marks these bodies `additionalProperties: false` (snowbuddy/openapi.py)."""

    schema_closed = True
    UNKNOWN_FIELD = "Unknown field."

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [serializers.ErrorDetail("Expected a JSON object.", code="invalid")]}
            )
        unknown = {
            name: [serializers.ErrorDetail(self.UNKNOWN_FIELD, code="unknown_field")]
            for name in sorted(set(data) - set(self.fields))
        }
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class StrictIntegerField(serializers.IntegerField):
    """JSON integers only: no "5", no 5.5, no true. A number with no fraction (5.0) is the integer 5,
    as JSON Schema counts it (JSON itself does not tell 5 from 5.0)."""

    def to_internal_value(self, data):
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictStringField(serializers.CharField):
    """JSON strings only, taken as sent: no trimming (" x" is not "x", as the schema says)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "pattern": NO_NUL_PATTERN})
class TextField(StrictStringField):
    """Free text (a reason, a certification code): any characters but NUL."""


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


class DateListField(serializers.ListField):
    """Dates, returned sorted and without repeats."""

    def __init__(self, **kwargs):
        super().__init__(child=StrictDateField(), max_length=MAX_DATES, **kwargs)

    def to_internal_value(self, data):
        return sorted({d.isoformat() for d in super().to_internal_value(data)})


@extend_schema_field({"type": "string", "enum": RESORT_IDS})
class ResortIdField(StrictStringField):
    pass


@extend_schema_field({"type": "string", "enum": list(KNOWN_REGIONS)})
class RegionField(StrictStringField):
    pass


class ResortListField(serializers.ListField):
    """Resort ids as the old service and the console both spell them (e.g. `yuzawa_naeba`): those
    of the resort table (loaded from matching/fixtures/resorts.json). Returned without repeats."""

    default_error_messages = {"unknown_resort": "Unknown resort(s): {names}. " + RESORTS_HINT}

    def __init__(self, **kwargs):
        super().__init__(child=ResortIdField(max_length=64), max_length=MAX_RESORTS, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        known = resort_regions()
        bad = sorted({r for r in value if r not in known})
        if bad:
            self.fail("unknown_resort", names=", ".join(bad))
        return list(dict.fromkeys(value))


class RegionListField(serializers.ListField):
    """Region names exactly as the resort data spells them (e.g. `Niigata Prefecture`)."""

    default_error_messages = {"unknown_region": "Unknown region(s): {names}. Known regions: {known}."}

    def __init__(self, **kwargs):
        super().__init__(child=RegionField(max_length=100), max_length=MAX_REGIONS, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        known = set(resort_regions().values())
        bad = sorted({r for r in value if r not in known})
        if bad:
            self.fail("unknown_region", names=", ".join(bad), known=", ".join(sorted(known)))
        return list(dict.fromkeys(value))


def _skill_range_schema() -> dict:
    """min <= max in JSON Schema: some level k lies between them."""
    return {
        "anyOf": [
            {"properties": {"skill_level_min": {"maximum": k}, "skill_level_max": {"minimum": k}}} for k in range(1, 11)
        ]
    }


class SearchPreferencesSerializer(ClosedSerializer):
    """The console's body of POST /matching/searches (docs/contracts.md). Unknown fields are
    rejected; `skill_level_min` must not exceed `skill_level_max`; `required_certifications` and
    `vetting_required` are for coach searches only (`role: coach`)."""

    role = serializers.ChoiceField(choices=Role.choices, help_text="The role sought.")
    skill_level_min = StrictIntegerField(min_value=1, max_value=10)
    skill_level_max = StrictIntegerField(
        min_value=1,
        max_value=10,
        help_text="At least skill_level_min.",
        error_messages={"below_min": "Must be greater than or equal to skill_level_min."},
    )
    resorts = ResortListField(default=list, help_text=f"Known resort ids. {RESORTS_HINT}")
    regions = RegionListField(default=list, help_text="Known region names.")
    dates = DateListField(default=list, help_text="Dates written YYYY-MM-DD.")
    include_knowledge_score = StrictBooleanField(default=False)
    knowledge_score = StrictIntegerField(
        min_value=0, max_value=100, required=False, allow_null=True, default=None, help_text="The seeker's own score."
    )
    required_certifications = serializers.ListField(
        child=TextField(min_length=1, max_length=32),
        max_length=MAX_CERTIFICATIONS,
        default=list,
        help_text="Coach searches only: a candidate must hold at least one of these codes (e.g. CASI-3).",
        error_messages={"coach_only": "Only allowed when role is coach."},
    )
    vetting_required = StrictBooleanField(
        default=False,
        help_text="Coach searches only: GlobalCoach vets the top candidates before the search succeeds.",
        error_messages={"coach_only": "Only allowed when role is coach."},
    )
    limit = StrictIntegerField(min_value=1, max_value=100, default=20, help_text="At most this many results.")

    # What JSON Schema can say of the rules above (snowbuddy/openapi.py adds it to the component).
    schema_extra = {
        "allOf": [
            _skill_range_schema(),
            {
                "anyOf": [
                    {"properties": {"role": {"const": Role.COACH.value}}},
                    {"properties": {"required_certifications": {"maxItems": 0}, "vetting_required": {"const": False}}},
                ]
            },
        ]
    }

    def validate_required_certifications(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def validate(self, attrs: dict) -> dict:
        errors = {}
        if attrs["skill_level_min"] > attrs["skill_level_max"]:
            errors["skill_level_max"] = [self._field_error("skill_level_max", "below_min")]
        if attrs["role"] != Role.COACH:
            for name in ("required_certifications", "vetting_required"):
                if attrs.get(name):
                    errors[name] = [self._field_error(name, "coach_only")]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def _field_error(self, name: str, code: str) -> serializers.ErrorDetail:
        return serializers.ErrorDetail(self.fields[name].error_messages[code], code=code)


class SnowTraceSearchPreferencesSerializer(ClosedSerializer):
    """SnowTrace's original body of POST /matching/searches, as the old service took it: every field
    optional with the old defaults and ranges. It validates to the console's preferences form.

    The old service compared resorts and regions literally with the candidates' (resort ids from the
    resort service, region names as the resort data spells them), so only those spellings are
    accepted here; anything else could never have matched and is a 400 that points to the list.
    A reversed skill range is accepted, as it was, and finds nobody.
    """

    skill_level_min = StrictIntegerField(min_value=1, max_value=10, default=1)
    skill_level_max = StrictIntegerField(min_value=1, max_value=10, default=10)
    preferred_resorts = ResortListField(default=list, allow_null=True, help_text="null is the same as [].")
    preferred_regions = RegionListField(default=list, allow_null=True, help_text="null is the same as [].")
    availability = DateListField(default=list, allow_null=True, help_text="Dates written YYYY-MM-DD; null is [].")
    seeking_role = serializers.ChoiceField(choices=Role.choices, default=Role.BUDDY)
    include_knowledge_score = StrictBooleanField(default=False)

    # The old service returned every candidate above the threshold; the console caps a search.
    RESULT_LIMIT = 100

    def validate(self, attrs: dict) -> dict:
        """The console's one preferences form (docs/contracts.md). The old service did not ask for
        min <= max: a reversed range is accepted and, as there, finds nobody."""
        seeker_id = self.context.get("seeker_id")
        wants_knowledge = attrs["include_knowledge_score"]
        return {
            "role": attrs["seeking_role"],
            "skill_level_min": attrs["skill_level_min"],
            "skill_level_max": attrs["skill_level_max"],
            "resorts": attrs["preferred_resorts"] or [],
            "regions": attrs["preferred_regions"] or [],
            "dates": attrs["availability"] or [],
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
MIXED_SHAPES = "mixed_shapes"
MIXED_SHAPE_ATTRS = sorted({*ORIGINAL_NAMES, *ORIGINAL_NAMES.values(), "non_field_errors"})


def search_preferences_serializer(data, *, seeker_id: str) -> serializers.Serializer:
    """The serializer for the shape this body is in.

    A body naming any console-only field (`role`, `resorts`, `limit`, …) is in the console's shape;
    any other JSON object (even `{}`) is in SnowTrace's original shape. A body that uses names of
    both shapes is refused (code `mixed_shapes`): which one it meant cannot be told.
    """
    if not isinstance(data, dict):
        return SearchPreferencesSerializer(data=data)
    original, console = _ORIGINAL_ONLY & set(data), _CONSOLE_ONLY & set(data)
    if original and console:
        errors = {}
        for console_name, original_name in ORIGINAL_NAMES.items():
            if console_name in data and original_name in data:
                message = serializers.ErrorDetail(
                    f"Both '{console_name}' and '{original_name}' were sent for the same field; send one "
                    f"('{original_name}' is SnowTrace's original name, '{console_name}' the console's).",
                    code=MIXED_SHAPES,
                )
                errors[console_name], errors[original_name] = [message], [message]
        if not errors:
            errors["non_field_errors"] = [
                serializers.ErrorDetail(
                    f"The body mixes SnowTrace's original field names ({', '.join(sorted(original))}) with the "
                    f"console's ({', '.join(sorted(console))}); use one shape.",
                    code=MIXED_SHAPES,
                )
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


class SearchCancelSerializer(ClosedSerializer):
    reason = TextField(max_length=500, required=False, allow_blank=True, default="")


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


class HostSnapshotSerializer(serializers.Serializer):
    name = serializers.CharField()
    profiles = serializers.IntegerField(allow_null=True)
    age_seconds = serializers.FloatField(allow_null=True, help_text="Seconds since its data was read.")


class ProcessIndexSerializer(serializers.Serializer):
    profiles = serializers.IntegerField(help_text="Profiles a search can see.")
    snapshot = serializers.CharField(allow_null=True, help_text="The host snapshot its base is mapped from.")
    overlay_profiles = serializers.IntegerField(help_text="Changed profiles held privately beside the base.")
    staleness_seconds = serializers.FloatField(help_text="Seconds since its newest data was read.")
    loaded_at = serializers.DateTimeField()


class IndexHealthSerializer(serializers.Serializer):
    snapshot = HostSnapshotSerializer(allow_null=True, help_text="This host's warm index snapshot (null: none).")
    process = ProcessIndexSerializer(
        allow_null=True, help_text="The answering process's warm index (null: it has not loaded one)."
    )


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[("ok", "ok"), ("unavailable", "unavailable")])
    database = serializers.CharField(help_text='"ok" or "error: <exception type>".')
    broker = serializers.CharField(help_text='"ok" or "error: <exception type>".')
    index = IndexHealthSerializer(help_text="The warm candidate index on this host (informational).")
