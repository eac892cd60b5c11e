"""The OpenAPI description of the profile push endpoints (matching/api/profiles.py).

The bodies are checked by matching/vocabulary/profile_input.py's FieldChecker, not by DRF serializers, so
they are described here as JSON Schema written to its rules (tests/api/test_openapi.py and the
schemathesis runs keep the two in step).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from matching.api.fields import RESORT_IDS
from matching.models import Role
from matching.vocabulary.profile_input import (
    MAX_CERTIFICATION_LENGTH,
    MAX_CODES,
    MAX_DATES,
    MAX_LANGUAGE_LENGTH,
    MAX_NICKNAME,
    MAX_REGIONS,
)
from matching.vocabulary.regions import KNOWN_REGIONS
from snowbuddy.openapi import PARSE_ERROR_CODES, raw_error_schema
from snowbuddy.openapi_json import JSON_VALUE_REF, NO_NUL_PATTERN, OPEN_FIELDS

USER_ID_PATTERN = "^[A-Za-z0-9_.:@-]{1,64}$"
BATCH_MAX = 1000
ROLES = list(Role.values)


def _nullable(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


def _codes(max_length: int) -> dict:
    return {
        "type": ["array", "null"],
        "maxItems": MAX_CODES,
        "items": {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NO_NUL_PATTERN},
    }


NICKNAME = {"type": ["string", "null"], "maxLength": MAX_NICKNAME, "pattern": NO_NUL_PATTERN}
RESORTS = {"type": ["array", "null"], "maxItems": len(RESORT_IDS), "items": {"type": "string", "enum": RESORT_IDS}}
REGIONS = {"type": ["array", "null"], "maxItems": MAX_REGIONS, "items": {"type": "string", "enum": list(KNOWN_REGIONS)}}
DATES = {
    "type": ["array", "null"],
    "maxItems": MAX_DATES,
    "items": {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
}
USER_ID = {"type": "string", "pattern": USER_ID_PATTERN}
# In a body, null is the same as absent.
BODY_USER_ID = {
    "type": ["string", "null"],
    "pattern": USER_ID_PATTERN,
    "description": "Optional on PUT, where it must repeat the URL's (null: as absent); required in a batch.",
}

CONSOLE_PROFILE = {
    "type": "object",
    "title": "ConsoleProfile",
    "description": "The console's own profile JSON (the engine's Profile form). Every field is replaced; an "
    "absent optional one takes its default (null is the same as absent). Unknown fields are refused.",
    "additionalProperties": False,
    "required": ["skill_level", "role"],
    "properties": {
        "user_id": BODY_USER_ID,
        "nickname": NICKNAME,
        "skill_level": {"type": "integer", "minimum": 1, "maximum": 10},
        "role": {"type": "string", "enum": ROLES},
        "resorts": RESORTS,
        "regions": REGIONS,
        "available_dates": DATES,
        "open_to_matching": {"type": ["boolean", "null"], "default": True},
        "knowledge_score": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
        "certifications": _codes(MAX_CERTIFICATION_LENGTH),
        "languages": _codes(MAX_LANGUAGE_LENGTH),
    },
}
USER_SERVICE_RECORD = {
    "type": "object",
    "title": "UserServiceRecord",
    "description": "A record of SnowTrace's user service (as `GET /users` gives them). Fields matching does not "
    "use are ignored, at both levels; `certifications` and `languages` are kept as stored when absent.",
    "required": ["self_role"],
    **OPEN_FIELDS,
    "properties": {
        "user_id": BODY_USER_ID,
        "nickname": NICKNAME,
        "skill_level": {"type": ["integer", "null"], "minimum": 1, "maximum": 10, "default": 5},
        "self_role": {"type": "string", "enum": ROLES},
        "preferences": {
            "type": ["object", "null"],
            **OPEN_FIELDS,
            "properties": {
                "preferred_resorts": RESORTS,
                "preferred_regions": REGIONS,
                "availability": DATES,
                "open_to_matching": {"type": ["boolean", "null"], "default": True},
                "certifications": _codes(MAX_CERTIFICATION_LENGTH),
                "languages": _codes(MAX_LANGUAGE_LENGTH),
            },
        },
    },
}
PROFILE_BODY = {
    "oneOf": [CONSOLE_PROFILE, USER_SERVICE_RECORD],
    "description": "Either shape: a body with `self_role` or `preferences` is a user-service record.",
}

# Each profile field as the console holds it (the engine's fields, in their order); the stored
# profile's answer and the internal schema's candidate (snowbuddy/openapi_internal.py) both use it.
PROFILE_FIELD_SCHEMAS = {
    "user_id": USER_ID,
    "nickname": {"type": "string"},
    "skill_level": {"type": "integer", "minimum": 1, "maximum": 10},
    "role": {"type": "string", "enum": ROLES},
    "resorts": {"type": "array", "items": {"type": "string"}},
    "regions": {"type": "array", "items": {"type": "string"}},
    "available_dates": {"type": "array", "items": {"type": "string", "format": "date"}},
    "open_to_matching": {"type": "boolean"},
    "knowledge_score": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
    "certifications": {"type": "array", "items": {"type": "string"}},
    "languages": {"type": "array", "items": {"type": "string"}},
}
STORED_PROFILE = {
    "type": "object",
    "additionalProperties": False,
    "required": [*PROFILE_FIELD_SCHEMAS, "updated_at"],
    "properties": {**PROFILE_FIELD_SCHEMAS, "updated_at": {"type": "string", "format": "date-time"}},
}
WRITTEN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "profile"],
    "properties": {
        "status": {"type": "string", "enum": ["created", "updated", "unchanged"]},
        "profile": STORED_PROFILE,
    },
}
CLOSED = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user_id", "status"],
    "properties": {"user_id": USER_ID, "status": {"type": "string", "enum": ["closed", "unchanged"]}},
}
FIELD_ERROR = {
    "type": "object",
    "required": ["code", "detail", "attr"],
    "properties": {
        "code": {"type": "string", "enum": ["required", "invalid", "unknown_field"]},
        "detail": {"type": "string"},
        "attr": {
            "type": ["string", "null"],
            "description": "The field's dotted path (`preferences.availability`), or `non_field_errors`.",
        },
    },
}
PROFILE_VALIDATION_ERROR = {
    "type": "object",
    "description": "Every field at fault, by its dotted path; nothing was written.",
    "required": ["type", "errors"],
    "properties": {
        "type": {"const": "validation_error"},
        "errors": {"type": "array", "minItems": 1, "items": FIELD_ERROR},
    },
}
BATCH_BODY = {
    "type": "object",
    "description": f'`{{"profiles": [...]}}` or the user service\'s `{{"items": [...]}}` (≤ {BATCH_MAX} records, '
    "≤ MATCHING_PROFILE_BATCH_MAX_BYTES, 2 MB by default). Each record is checked on its own, as PUT checks a "
    "body (either shape, `user_id` required): one that is not a profile is answered `rejected` with its errors "
    "and the others are applied. A user id twice in one batch: the second is rejected.",
    **OPEN_FIELDS,
    "oneOf": [
        {
            "required": ["profiles"],
            "properties": {"profiles": {"type": "array", "maxItems": BATCH_MAX, "items": JSON_VALUE_REF}},
        },
        {
            "required": ["items"],
            "not": {"required": ["profiles"]},
            "properties": {"items": {"type": "array", "maxItems": BATCH_MAX, "items": JSON_VALUE_REF}},
        },
    ],
}
BATCH_ANSWER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["counts", "results"],
    "properties": {
        "counts": {
            "type": "object",
            "additionalProperties": False,
            "required": ["created", "updated", "unchanged", "rejected"],
            "properties": {
                name: {"type": "integer", "minimum": 0} for name in ("created", "updated", "unchanged", "rejected")
            },
        },
        "results": {
            "type": "array",
            "description": "One per record, in request order.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["index", "user_id", "status"],
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "user_id": {"type": ["string", "null"]},
                    "status": {"type": "string", "enum": ["created", "updated", "unchanged", "rejected"]},
                    "errors": {"type": "array", "items": FIELD_ERROR, "description": "Why a record was rejected."},
                },
            },
        },
    },
}

USER_ID_PARAMETER = OpenApiParameter(
    "user_id",
    {"type": "string", "pattern": USER_ID_PATTERN},
    OpenApiParameter.PATH,
    description="The user (1-64 of A-Z a-z 0-9 _ . : @ -). A path ending in `:close` is the close action.",
)


def _json(schema: dict, description: str = "") -> OpenApiResponse:
    return OpenApiResponse(response=schema, description=description)


BAD_USER_ID = _json(PROFILE_VALIDATION_ERROR, "The user id in the path is not one.")
# Where a POST or PUT arrives: field errors, or a body that is not strict JSON or a malformed length.
BAD_WRITE = _json(
    {"oneOf": [PROFILE_VALIDATION_ERROR, raw_error_schema(PARSE_ERROR_CODES)]},
    "Field errors (nothing written), or a body that is not strict JSON.",
)

describe_get = extend_schema(
    summary="A profile, in the console's shape.",
    parameters=[USER_ID_PARAMETER],
    responses={200: _json(STORED_PROFILE), 400: BAD_USER_ID},
)
describe_put = extend_schema(
    summary="Create or replace a profile.",
    parameters=[USER_ID_PARAMETER],
    request={"application/json": PROFILE_BODY},
    responses={
        200: _json(WRITTEN, "Updated, or unchanged."),
        201: _json(WRITTEN, "Created."),
        400: BAD_WRITE,
    },
)
describe_close = extend_schema(
    summary="Take a profile out of matching (open_to_matching false).",
    parameters=[USER_ID_PARAMETER],
    request=None,
    responses={200: _json(CLOSED), 400: BAD_WRITE},
)
describe_delete = extend_schema(
    summary="Delete a profile (a tombstone; idempotent).",
    parameters=[USER_ID_PARAMETER],
    responses={
        204: OpenApiResponse(description="Deleted (or already)."),
        400: BAD_USER_ID,
    },
)
describe_batch = extend_schema(
    summary=f"Create or replace up to {BATCH_MAX} profiles, each on its own.",
    request={"application/json": BATCH_BODY},
    responses={
        200: _json(BATCH_ANSWER),
        400: BAD_WRITE,
    },
)
