from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from matching.models import TERMINAL_STATUSES, Resort, Role, Search, SearchResult, SearchStatus
from matching.regions import KNOWN_REGIONS, REGION_CHOICES
from matching.resort_names import resolve_names
from matching.selectors import profile_knowledge_score, resort_name_table, resort_regions, snowtrace_answer
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


# --- SnowTrace's original shape: lenient, as the old service's pydantic model was ---------------

LAX_DATE_TIME_RE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T00:00:00(?:\.0{1,9})?(?:Z|[+-]00:00)")
LAX_TRUE = ("true", "1", "yes", "on", "t", "y")
LAX_FALSE = ("false", "0", "no", "off", "f", "n")
MAX_NAMES = 43
MAX_NAME_LENGTH = 100
IGNORED = "ignored"


@extend_schema_field(
    {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 10}, {"type": "string", "pattern": "^(10|[1-9])$"}]}
)
class LaxSkillField(StrictIntegerField):
    """A skill level 1-10, also written as a string ("5"), as pydantic's lax mode took it."""

    def to_internal_value(self, data):
        if isinstance(data, str) and re.fullmatch(r"[0-9]{1,2}", data):
            data = int(data)
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "anyOf": [
            {"type": "boolean"},
            {"type": "integer", "enum": [0, 1]},
            {"type": "string", "enum": [*LAX_TRUE, *LAX_FALSE]},
        ]
    }
)
class LaxBooleanField(serializers.BooleanField):
    """true/false, 1/0, or the strings pydantic's lax mode reads as booleans ("true", "no", …)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        if isinstance(data, int) and data in (0, 1):
            return bool(data)
        if isinstance(data, str) and data in LAX_TRUE + LAX_FALSE:
            return data in LAX_TRUE
        self.fail("invalid", input=data)


@extend_schema_field(
    {
        "anyOf": [
            {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
            {"type": "string", "format": "date-time", "pattern": "^" + LAX_DATE_TIME_RE.pattern + "$"},
        ]
    }
)
class LaxDateField(StrictDateField):
    """A date `YYYY-MM-DD`, or a date-time at midnight UTC (`2027-01-05T00:00:00Z`), which pydantic's
    lax mode also took for a date."""

    default_error_messages = {"invalid": "Date has wrong format. Use YYYY-MM-DD (or a date-time at midnight UTC)."}

    def to_internal_value(self, data):
        if isinstance(data, str) and (match := LAX_DATE_TIME_RE.fullmatch(data)):
            data = match.group(1)
        return super().to_internal_value(data)


class LaxDateListField(serializers.ListField):
    def __init__(self, **kwargs):
        super().__init__(child=LaxDateField(), max_length=MAX_DATES, **kwargs)

    def to_internal_value(self, data):
        return sorted({d.isoformat() for d in super().to_internal_value(data)})


class DateRangeSerializer(serializers.Serializer):
    """The browser's `date_range`: every date from `start` to `end`, both included."""

    start = LaxDateField()
    end = LaxDateField(
        error_messages={
            "before_start": "Must not be before start.",
            "too_long": f"A date range covers at most {MAX_DATES} days.",
        }
    )

    def validate(self, attrs):
        days = (attrs["end"] - attrs["start"]).days + 1
        if days < 1:
            raise serializers.ValidationError(
                {"end": [serializers.ErrorDetail("Must not be before start.", code="before_start")]}
            )
        if days > MAX_DATES:
            raise serializers.ValidationError(
                {"end": [serializers.ErrorDetail(f"A date range covers at most {MAX_DATES} days.", code="too_long")]}
            )
        return [(attrs["start"] + datetime.timedelta(days=i)).isoformat() for i in range(days)]


@extend_schema_field(
    {
        "type": "array",
        "prefixItems": [{"type": "integer", "minimum": 1, "maximum": 10}] * 2,
        "items": False,
        "minItems": 2,
        "maxItems": 2,
        "anyOf": [{"prefixItems": [{"maximum": k}, {"minimum": k}]} for k in range(1, 11)],
        "description": "The browser's [min, max] skill levels, min <= max.",
    }
)
class SkillRangeField(serializers.ListField):
    default_error_messages = {"below_min": "The second level must be greater than or equal to the first."}

    def __init__(self, **kwargs):
        super().__init__(child=StrictIntegerField(min_value=1, max_value=10), min_length=2, max_length=2, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) != 2:  # the length validators run after this method
            self.fail("min_length" if len(value) < 2 else "max_length", min_length=2, max_length=2)
        low, high = value
        if low > high:
            self.fail("below_min")
        return low, high


class NameListField(serializers.ListField):
    """Resort or region names as people write them (matching/resort_names.py)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_NAMES)
        super().__init__(child=TextField(max_length=MAX_NAME_LENGTH), allow_null=True, default=list, **kwargs)


BROWSER_FIELDS = ("skill_level_range", "date_range", "preferred_role")
CONFLICTING_FIELDS = "conflicting_fields"


class SnowTraceSearchPreferencesSerializer(serializers.Serializer):
    """SnowTrace's original body of POST /matching/searches, as lenient as the old service's
    pydantic model: every field optional with the old defaults and ranges, fields it does not know
    ignored (and listed as warnings), "5" read as 5 and a date-time at midnight as a date. It also
    understands the browser's fields (`skill_level_range`, `date_range`, `preferred_role`). Resort
    and region names are resolved as people write them; a name that resolves to nothing is kept and
    matches no profile's location. It validates to the console's preferences form.

    A reversed `skill_level_min`/`skill_level_max` is accepted, as it was, and finds nobody. Rules
    across fields: a `date_range` ends on or after its start and spans at most 60 days;
    `availability` and `date_range` name at most 60 dates in all; `skill_level_range` and
    `preferred_role`, when sent with `skill_level_min`/`skill_level_max` or `seeking_role`, must
    agree with them; the names resolve to at most 43 resorts.
    """

    skill_level_min = LaxSkillField(min_value=1, max_value=10, default=1)
    skill_level_max = LaxSkillField(min_value=1, max_value=10, default=10)
    preferred_resorts = NameListField(
        help_text="Resort names as people write them (id, name, English or Japanese name, area, short name); "
        "null is []. " + RESORTS_HINT
    )
    preferred_regions = NameListField(max_length=MAX_REGIONS, help_text="Region names, any case; null is [].")
    availability = LaxDateListField(default=list, allow_null=True, help_text="Dates; null is [].")
    seeking_role = serializers.ChoiceField(choices=Role.choices, default=Role.BUDDY)
    include_knowledge_score = LaxBooleanField(default=False)
    # The browser's vocabulary (SnowTrace's snowbuddyApi.ts), JSON-strict: the old service dropped it.
    # null is the same as leaving the field out.
    skill_level_range = SkillRangeField(required=False, allow_null=True)
    date_range = DateRangeSerializer(required=False, allow_null=True)
    preferred_role = serializers.ChoiceField(choices=Role.choices, required=False, allow_null=True)

    # The old service returned every candidate above the threshold; the console caps a search.
    RESULT_LIMIT = 100
    CONFLICT = "Both '{a}' and '{b}' were sent and they disagree; send one."

    schema_open = True  # other fields are ignored, as the old service's pydantic model did
    schema_extra = {
        # A body naming a console-only field is in the console's shape (docs/contracts.md).
        "not": {"anyOf": [{"required": [name]} for name in ("role", "resorts", "regions", "dates", "knowledge_score",
                                                             "required_certifications", "vetting_required", "limit")]},
    }  # fmt: skip

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [serializers.ErrorDetail("Expected a JSON object.", code="invalid")]}
            )
        known = {name: value for name, value in data.items() if name in self.fields}
        self.warnings = [{"field": name, "reason": IGNORED} for name in sorted(set(data) - set(known))]
        if isinstance(known.get("date_range"), dict):
            inner = set(known["date_range"]) - {"start", "end"}
            self.warnings += [{"field": f"date_range.{name}", "reason": IGNORED} for name in sorted(inner)]
            known["date_range"] = {k: v for k, v in known["date_range"].items() if k in ("start", "end")}
        return super().to_internal_value(known)

    def validate(self, attrs: dict) -> dict:
        """The console's one preferences form (docs/contracts.md)."""
        attrs = {name: value for name, value in attrs.items() if value is not None or name not in BROWSER_FIELDS}
        low, high = attrs["skill_level_min"], attrs["skill_level_max"]
        role = attrs["seeking_role"]
        errors = {}
        if "skill_level_range" in attrs:
            sent = {n: attrs[n] for n in ("skill_level_min", "skill_level_max") if n in self.initial_data}
            low, high = attrs["skill_level_range"]
            if any(value != {"skill_level_min": low, "skill_level_max": high}[n] for n, value in sent.items()):
                self._conflict(errors, "skill_level_range", *sent)
        if "preferred_role" in attrs:
            if self.initial_data.get("seeking_role") is not None and attrs["seeking_role"] != attrs["preferred_role"]:
                self._conflict(errors, "preferred_role", "seeking_role")
            role = attrs["preferred_role"]
        dates = sorted({*(attrs["availability"] or []), *attrs.get("date_range", [])})
        if len(dates) > MAX_DATES:
            message = f"availability and date_range name more than {MAX_DATES} dates."
            errors["date_range"] = [serializers.ErrorDetail(message, code="max_length")]
        resolved = resolve_names(
            resort_name_table(), resorts=attrs["preferred_resorts"] or [], regions=attrs["preferred_regions"] or []
        )
        if len(resolved.resorts) > MAX_RESORTS:
            errors["preferred_resorts"] = [
                serializers.ErrorDetail(f"The names resolve to more than {MAX_RESORTS} resorts.", code="max_length")
            ]
        if errors:
            raise serializers.ValidationError(errors)
        for name, kind, field in resolved.unresolved:
            self.warnings.append({"field": field, "value": name, "reason": f"{kind}_location"})
        seeker_id = self.context.get("seeker_id")
        wants_knowledge = attrs["include_knowledge_score"]
        return {
            "role": role,
            "skill_level_min": low,
            "skill_level_max": high,
            "resorts": resolved.resorts,
            "regions": resolved.regions,
            "dates": dates,
            "include_knowledge_score": wants_knowledge,
            # The old service looked the seeker's score up; the console keeps a copy of it.
            "knowledge_score": profile_knowledge_score(seeker_id) if wants_knowledge and seeker_id else None,
            "required_certifications": [],
            "vetting_required": False,
            "limit": self.RESULT_LIMIT,
        }

    def _conflict(self, errors: dict, field: str, *others: str) -> None:
        for other in others:
            message = serializers.ErrorDetail(self.CONFLICT.format(a=field, b=other), code=CONFLICTING_FIELDS)
            errors[field] = errors[other] = [message]


# The same field under its console name and its original SnowTrace name.
ORIGINAL_NAMES = {
    "role": "seeking_role",
    "resorts": "preferred_resorts",
    "regions": "preferred_regions",
    "dates": "availability",
}
_SHARED = {"skill_level_min", "skill_level_max", "include_knowledge_score"}
# The console's shape is closed, the original is open: only names the console alone knows decide.
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


class InputWarningSerializer(serializers.Serializer):
    """Something in an original-shape body the console did not use: a field it ignored (`ignored`)
    or a resort or region name that resolves to nothing (`unknown_location`, `ambiguous_location`)."""

    field = serializers.CharField()
    value = serializers.CharField(required=False, help_text="The name, for a location warning.")
    reason = serializers.ChoiceField(choices=["ignored", "unknown_location", "ambiguous_location"])


class SearchSubmittedSerializer(serializers.ModelSerializer):
    warnings = InputWarningSerializer(many=True, required=False, help_text="Only when there are any.")

    class Meta:
        model = Search
        fields = ["search_id", "status", "engine", "warnings"]


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
    """The old service knew two states; SnowTrace's smart-matching page reads a third, `failed`.
    Every console state maps onto them: a search that failed or timed out is `failed`, any other
    finished search is `completed` (with no results unless it succeeded)."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CHOICES = [(PROCESSING, "Processing"), (COMPLETED, "Completed"), (FAILED, "Failed")]
    FAILURES = frozenset({SearchStatus.FAILED, SearchStatus.TIMED_OUT})

    @classmethod
    def of(cls, status: str) -> str:
        if status in cls.FAILURES:
            return cls.FAILED
        return cls.COMPLETED if status in TERMINAL_STATUSES else cls.PROCESSING


class SnowTraceMatchSerializer(serializers.Serializer):
    """One result as the old service gave it (its `MatchSummary`)."""

    user_id = serializers.CharField()
    nickname = serializers.CharField()
    skill_level = serializers.IntegerField(min_value=1, max_value=10)
    self_role = serializers.ChoiceField(choices=Role.choices)
    match_score = serializers.FloatField()


class BrowserBreakdownSerializer(serializers.Serializer):
    """The score's parts under the names SnowTrace's MatchScoreCard reads (0..1 each)."""

    skill_score = serializers.FloatField()
    location_score = serializers.FloatField()
    time_score = serializers.FloatField(help_text="The availability part.")
    role_score = serializers.FloatField()
    knowledge_score = serializers.FloatField(help_text="0 when the search did not include knowledge.")


class BrowserMatchSerializer(serializers.Serializer):
    """One result as SnowTrace's smart-matching page reads it (snowbuddyApi.ts `MatchResult`)."""

    user_id = serializers.CharField()
    score = serializers.FloatField()
    breakdown = BrowserBreakdownSerializer()


class SnowTraceSearchSerializer(serializers.Serializer):
    """GET /matching/searches/{id} as the old service answered it (`status`, `results`), plus what
    SnowTrace's smart-matching page reads (`matches`, and `failed` among the states)."""

    status = serializers.SerializerMethodField()
    results = serializers.SerializerMethodField()
    matches = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=SnowTraceStatus.CHOICES))
    def get_status(self, search: Search) -> str:
        return SnowTraceStatus.of(search.status)

    @extend_schema_field(SnowTraceMatchSerializer(many=True))
    def get_results(self, search: Search) -> list[dict]:
        return SnowTraceMatchSerializer(self._answer(search).results, many=True).data

    @extend_schema_field(BrowserMatchSerializer(many=True))
    def get_matches(self, search: Search) -> list[dict]:
        return BrowserMatchSerializer(self._answer(search).matches, many=True).data

    def _answer(self, search: Search):
        cached = getattr(search, "_snowtrace_answer", None)
        if cached is None:
            cached = search._snowtrace_answer = snowtrace_answer(
                search_id=search.pk, attempt=search.attempt, status=search.status
            )
        return cached


class SnowTraceSearchSubmittedSerializer(serializers.Serializer):
    """POST /matching/searches as the old service answered it, plus `warnings` when there are any."""

    search_id = serializers.UUIDField()
    warnings = InputWarningSerializer(many=True, required=False, help_text="Only when there are any.")


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
