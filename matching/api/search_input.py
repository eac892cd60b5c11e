"""A search's preferences as submitted: the console's strict shape, SnowTrace's original one, and the
choice between them."""

from __future__ import annotations

import datetime

from rest_framework import serializers

from matching.api.fields import (
    IGNORED,
    MAX_CERTIFICATIONS,
    MAX_DATES,
    MAX_REGIONS,
    MAX_RESORTS,
    RESORTS_HINT,
    ClosedSerializer,
    DateListField,
    LaxBooleanField,
    LaxDateField,
    LaxDateListField,
    LaxSkillField,
    NameListField,
    RegionListField,
    ResortListField,
    SkillRangeField,
    StrictBooleanField,
    StrictIntegerField,
    TextField,
    _skill_range_schema,
)
from matching.models import Role
from matching.selectors import profile_knowledge_score, resort_name_table
from matching.vocabulary.resort_names import resolve_names


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


class SearchCancelSerializer(ClosedSerializer):
    reason = TextField(max_length=500, required=False, allow_blank=True, default="")
