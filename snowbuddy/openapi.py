"""How the console describes itself in OpenAPI 3.1 (docs/contracts.md, "OpenAPI schemas").

drf-spectacular builds the schema from the views and serializers; drf-standardized-errors adds an
error response in the project's one shape (snowbuddy/errors.py) for each status an operation can
answer. This module keeps that list to the statuses that can really happen here, and gives every
error its real codes, so that a client generator, and schemathesis, can trust it:

* 400 `validation_error` names the fields and their codes (from the serializers), and a
  `client_error` for a body that is not strict JSON or has a malformed `Content-Length`;
* 411, 413, 415 only where a body is read (POST, PUT, PATCH); 405 nowhere (only the methods
  listed are served: any other is a 405 with `Allow`, docs/contracts.md);
* 404 for a path parameter, or a page past the last one; 429 only where a throttle applies;
* request bodies of `ClosedSerializer`s are `additionalProperties: false`, with the cross-field
  rules JSON Schema can say (`schema_extra`).

The internal endpoints (the workflow's feed, GlobalCoach's answer) are plain Django views; they are
described in the internal schema (snowbuddy/openapi_internal.py).
"""

from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiExample, OpenApiWebhook, PolymorphicProxySerializer, extend_schema_field
from drf_standardized_errors.openapi import AutoSchema as StandardizedErrorsAutoSchema
from drf_standardized_errors.openapi_serializers import ClientErrorEnum, ServerErrorEnum
from drf_standardized_errors.openapi_utils import get_validation_error_serializer
from rest_framework import serializers

from snowbuddy.openapi_json import OPEN_FIELDS

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# drf-standardized-errors writes a list index as this token in `attr` (`dates.INDEX`); the answer
# carries the number (`dates.0`). postprocess_error_attrs turns the token into a pattern.
INDEX_PLACEHOLDER = "INDEX"
# An unknown field's name in a validation error: a placeholder postprocess_error_attrs turns into
# "any name the body does not define".
UNKNOWN_FIELD_ATTR = "unknown_field_name"


@extend_schema_field({"type": "null"})
class NullField(serializers.Field):
    """`attr` of an error that is not about one field."""


def error_response(name: str, codes: list[str], *, description: str, server: bool = False) -> type:
    """A serializer of the one error shape with exactly these codes (`attr` null)."""
    entry = type(
        f"{name}Entry",
        (serializers.Serializer,),
        {
            "code": serializers.ChoiceField(choices=[(c, c) for c in codes]),
            "detail": serializers.CharField(help_text="For people; may change."),
            "attr": NullField(),
            # The suffix keeps drf-standardized-errors' enum hook from hoisting `code` into a shared enum.
            "Meta": type("Meta", (), {"ref_name": f"{name}ErrorComponent"}),
        },
    )
    enum = ServerErrorEnum if server else ClientErrorEnum
    return type(
        name,
        (serializers.Serializer,),
        {
            "__doc__": description,
            "type": serializers.ChoiceField(choices=enum.choices),
            "errors": entry(many=True),
            "Meta": type("Meta", (), {"ref_name": name}),
        },
    )


def raw_error_schema(
    codes: list[str], *, server: bool = False, description: str = "", validation_attr: dict | None = None
) -> dict:
    """The same shape as plain JSON Schema, for bodies described without serializers. With
    `validation_attr` (the schema of each error's `attr`, the field at fault), a validation error."""
    kind = "validation_error" if validation_attr is not None else "server_error" if server else "client_error"
    return {
        "type": "object",
        "description": description,
        "required": ["type", "errors"],
        "properties": {
            "type": {"const": kind},
            "errors": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["code", "detail", "attr"],
                    "properties": {
                        "code": {"type": "string", "enum": codes},
                        "detail": {"type": "string"},
                        "attr": validation_attr if validation_attr is not None else {"type": "null"},
                    },
                },
            },
        },
    }


# A body that is not strict JSON (snowbuddy/json_input.py), or a malformed Content-Length.
PARSE_ERROR_CODES = ["invalid_json", "too_deep", "duplicate_key", "unsupported_character", "invalid_content_length"]
BadRequestResponse = error_response(
    "ErrorResponse400",
    PARSE_ERROR_CODES,
    description="The body is not strict JSON (malformed, nested deeper than 32, a key twice, NaN, a string "
    "holding NUL or half a surrogate pair), or Content-Length is malformed.",
)
UnauthorizedResponse = error_response(
    "ErrorResponse401",
    ["not_authenticated", "authentication_failed"],
    description="No credentials, or credentials that do not verify (the detail says which).",
)
ForbiddenResponse = error_response(
    "ErrorResponse403", ["permission_denied"], description="The credentials are valid but may not do this."
)
NotFoundResponse = error_response(
    "ErrorResponse404", ["not_found"], description="No such object of the acting user, or no such page."
)
NotAcceptableResponse = error_response(
    "ErrorResponse406",
    ["not_acceptable"],
    description="`Accept` names neither JSON nor a known API version (1 or 2).",
)
LengthRequiredResponse = error_response(
    "ErrorResponse411", ["length_required"], description="A body sent chunked, without Content-Length."
)
PayloadTooLargeResponse = error_response("ErrorResponse413", ["payload_too_large"], description="A body over 64 KB.")
UnsupportedMediaTypeResponse = error_response(
    "ErrorResponse415", ["unsupported_media_type"], description="A body that is not application/json."
)
ThrottledResponse = error_response(
    "ErrorResponse429", ["throttled"], description="Over a rate limit; `Retry-After` says when to try again."
)
ServerErrorResponse = error_response(
    "ErrorResponse500", ["server_error"], description="A bug or an outage; never the exception's text.", server=True
)

ERROR_SCHEMAS = {
    "401": UnauthorizedResponse,
    "403": ForbiddenResponse,
    "404": NotFoundResponse,
    "406": NotAcceptableResponse,
    "411": LengthRequiredResponse,
    "413": PayloadTooLargeResponse,
    "415": UnsupportedMediaTypeResponse,
    "429": ThrottledResponse,
    "500": ServerErrorResponse,
}

EXAMPLE_DETAILS = {
    "not_authenticated": "Authentication credentials were not provided.",
    "permission_denied": "You do not have permission to perform this action.",
    "not_found": "Not found.",
    "not_acceptable": "Could not satisfy the request Accept header.",
    "length_required": "A request body needs a Content-Length header.",
    "payload_too_large": "Request body exceeds 65536 bytes.",
    "unsupported_media_type": 'Unsupported media type "text/plain" in request.',
    "throttled": "Request was throttled. Expected available in 42 seconds.",
    "server_error": "Internal error.",
}

RESPONSE_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": "The schemes the operation accepts.",
        }
    },
    "429": {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 0},
            "description": "Seconds until a request may succeed.",
            "required": True,
        }
    },
}


class AutoSchema(StandardizedErrorsAutoSchema):
    """drf-standardized-errors' AutoSchema, kept to the statuses this API can really answer."""

    def _should_add_error_response(self, responses: dict, status_code: str) -> bool:
        if status_code in responses or getattr(self.view, "plain_django_view", False):
            return False
        if status_code == "405":
            return False
        if status_code in ("411", "413"):  # the middleware's, on every POST, PUT, PATCH
            return self.method in BODY_METHODS
        if status_code == "415":  # DRF's, where a body is parsed
            return self.method in BODY_METHODS and self._get_request_body() is not None
        return super()._should_add_error_response(responses, status_code)

    def _should_add_parse_error_response(self) -> bool:
        return self.method in BODY_METHODS and super()._should_add_parse_error_response()

    def _should_add_http404_error_response(self) -> bool:
        has_path_parameters = any(p["in"] == "path" for p in self._get_parameters())
        return has_path_parameters or self._paginates()

    def _should_add_http406_error_response(self) -> bool:
        return True  # every view negotiates Accept (and its version)

    def _paginates(self) -> bool:
        return self.method == "GET" and self._is_list_view() and self._get_paginator() is not None

    def _get_extra_validation_errors(self) -> dict[str, set[str]]:
        extra = dict(super()._get_extra_validation_errors())
        if self._paginates():
            for name, codes in getattr(self._get_paginator(), "validation_error_codes", {}).items():
                extra[name] = extra.get(name, set()) | set(codes)
        return extra

    def _get_http400_serializer(self):
        variants = {}
        if self._should_add_validation_error_response():
            variants["validation_error"] = self._get_serializer_for_validation_error_response()
        if self._should_add_parse_error_response():
            variants["client_error"] = BadRequestResponse
        if len(variants) == 1:
            return next(iter(variants.values()))
        return PolymorphicProxySerializer(
            component_name=f"{_camel(self.get_operation_id())}ErrorResponse400",
            serializers=variants,
            resource_type_field_name="type",
        )

    def _get_serializer_for_validation_error_response(self):
        codes_by_field = self._get_validation_error_codes_by_field(self._determine_fields_with_error_codes())
        if self._request_body_is_closed():
            # Each unknown field is named in `attr`: any name but the body's own fields.
            codes_by_field[UNKNOWN_FIELD_ATTR] = {"unknown_field"}
        return get_validation_error_serializer(self.get_operation_id(), codes_by_field)

    def _request_body_is_closed(self) -> bool:
        if self.method not in BODY_METHODS:
            return False
        serializer = self.get_request_serializer()
        if isinstance(serializer, PolymorphicProxySerializer):
            members = serializer.serializers
            members = list(members.values() if isinstance(members, dict) else members)
            # Any closed member answers unknown_field (the console's shape; SnowTrace's original is open).
            return any(getattr(m, "schema_closed", False) for m in members)
        return getattr(serializer, "schema_closed", False)

    def _get_error_response_examples(self) -> list:
        """One example per status, with this project's codes (the package's say `error` for a 500)."""
        examples = []
        for status_code, serializer in ERROR_SCHEMAS.items():
            entry = serializer().fields["errors"].child.fields["code"]
            code = next(iter(entry.choices))
            kind = "server_error" if status_code.startswith("5") else "client_error"
            examples.append(
                OpenApiExample(
                    f"{status_code} {code}",
                    value={"type": kind, "errors": [{"code": code, "detail": EXAMPLE_DETAILS[code], "attr": None}]},
                    response_only=True,
                    status_codes=[status_code],
                )
            )
        return examples

    def _get_response_headers_for_code(self, status_code, direction="response"):
        headers = super()._get_response_headers_for_code(status_code, direction)
        return {**RESPONSE_HEADERS.get(str(status_code), {}), **headers}

    def _get_request_body(self, direction="request"):
        """A body is required unless the view names the action among `optional_body_actions` (a
        cancel's reason is optional): drf-spectacular would make a body of optional fields optional."""
        body = super()._get_request_body(direction)
        if body is not None:
            optional = getattr(self.view, "action", None) in getattr(self.view, "optional_body_actions", ())
            body["required"] = not optional
        return body

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if schema.get("type") != "object":
            return schema
        if getattr(serializer, "schema_closed", False):
            schema["additionalProperties"] = False
        elif getattr(serializer, "schema_open", False):
            schema.update(OPEN_FIELDS)  # a body whose other fields are ignored (as pydantic did)
        schema.update(getattr(serializer, "schema_extra", {}))  # cross-field rules JSON Schema can say
        return schema


def _camel(operation_id: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\W]+", operation_id) if part)


# --- postprocessing hooks (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) -----------------------


def postprocess_error_attrs(result, generator, **kwargs):
    r"""Make the validation error components say what the answers carry.

    drf-standardized-errors names an error inside a list `dates.INDEX`, as an enum value; the answer
    says `dates.0`: that value becomes a pattern (`^dates\.[0-9]+$`). The unknown-field entry's
    `attr` becomes any string (its code, `unknown_field`, is no other entry's, so `oneOf` still picks
    one). The `attr` discriminator cannot map patterns, so it is dropped.
    """
    schemas = result.get("components", {}).get("schemas", {})
    for schema in schemas.values():
        discriminator = schema.get("discriminator")
        if not discriminator or discriminator.get("propertyName") != "attr":
            continue
        del schema["discriminator"]
        for ref in schema.get("oneOf", []):
            entry = schemas[ref["$ref"].rsplit("/", 1)[-1]]
            values = [v for v in entry["properties"]["attr"].get("enum", []) if v is not None]
            if values == [UNKNOWN_FIELD_ATTR]:
                entry["properties"]["attr"] = {
                    "type": "string",
                    "description": "The name of a field the body does not define.",
                }
            elif len(values) == 1 and INDEX_PLACEHOLDER in values[0].split("."):
                parts = [r"[0-9]+" if p == INDEX_PLACEHOLDER else re.escape(p) for p in values[0].split(".")]
                entry["properties"]["attr"] = {"type": "string", "pattern": "^" + r"\.".join(parts) + "$"}
    return result


# --- webhooks (SPECTACULAR_SETTINGS["WEBHOOKS"]) ---------------------------------------------------

NOTIFICATION_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["search_id", "attempt", "status", "payload"],
    "properties": {
        "search_id": {"type": "string", "format": "uuid"},
        "attempt": {"type": "integer", "minimum": 1},
        "status": {
            "type": "string",
            "enum": ["succeeded", "failed", "cancelled", "timed_out"],
            "description": "How the attempt ended (all are `completed` in the old vocabulary).",
        },
        "payload": {
            "type": "object",
            "additionalProperties": False,
            "required": ["seeker_id", "finished_at", "error", "result_count", "results"],
            "properties": {
                "seeker_id": {"type": "string"},
                "finished_at": {"type": ["string", "null"], "format": "date-time"},
                "error": {"type": ["string", "null"]},
                "result_count": {"type": "integer", "minimum": 0},
                "results": {
                    "type": "array",
                    "description": "Best first, in the old shape; empty unless the attempt succeeded.",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["user_id", "nickname", "skill_level", "self_role", "match_score"],
                        "properties": {
                            "user_id": {"type": "string"},
                            "nickname": {"type": "string"},
                            "skill_level": {"type": "integer", "minimum": 1, "maximum": 10},
                            "self_role": {"type": "string", "enum": ["buddy", "student", "coach"]},
                            "match_score": {"type": "number", "minimum": 0, "maximum": 1},
                        },
                    },
                },
            },
        },
    },
}

SEARCH_FINISHED = OpenApiWebhook(
    name="searchFinished",
    decorator={
        "post": {
            "operationId": "search_finished_notification",
            "summary": "The console tells SnowTrace that a search attempt finished (signed, Standard Webhooks).",
            "description": "Sent to MATCHING_NOTIFICATION_WEBHOOK_URL once per search attempt, when it finishes on "
            "either engine. Headers `webhook-id` (`msg_<search id hex>_<attempt>`, the same on every try: dedupe "
            'on it), `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` '
            "with MATCHING_NOTIFICATION_WEBHOOK_SECRET (`whsec_<base64>`). A 2xx delivers it; a timeout, a "
            "connection error, 5xx, 408, 425 or 429 is retried with backoff, then dead-lettered; any other answer "
            "dead-letters it at once (staff can redeliver).",
            "parameters": [
                {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
                for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": NOTIFICATION_BODY}}},
            "responses": {
                "2XX": {"description": "Delivered."},
                "default": {"description": "Retried (5xx, 408, 425, 429) or dead-lettered (anything else)."},
            },
        }
    },
)
