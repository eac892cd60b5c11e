"""The API's input fields: closed serializers, strict fields for the console's shape and lax ones that
read SnowTrace's original body as leniently as the old service did."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from matching.selectors import resort_regions
from matching.vocabulary.regions import KNOWN_REGIONS
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
    """Resort or region names as people write them (matching/vocabulary/resort_names.py)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_NAMES)
        super().__init__(child=TextField(max_length=MAX_NAME_LENGTH), allow_null=True, default=list, **kwargs)
