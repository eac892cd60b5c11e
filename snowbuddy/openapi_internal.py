"""The internal OpenAPI 3.1 schema (`/api/schema/internal/`): what the console serves to the durable
workflow and to GlobalCoach, not to SnowTrace (docs/contracts.md, "OpenAPI schemas").

Long on purpose: the internal schema is one document (its operations, the webhook and the
shared components reference each other), read and diffed as a whole.

* operations: the candidates feed (`GET /internal/searches/{search_id}/candidates`, bearer
  `MATCHING_INTERNAL_TOKEN`) and GlobalCoach's vetting answer (`POST /webhooks/globalcoach/{search_id}`,
  the per-attempt token in the body);
* `webhooks.searchCallback`: the signed workflow callback, which the workflow posts to the console's
  `POST /webhooks/matching` (the `callback_webhook` it was started with).

Those endpoints are plain Django views (workflows/webhooks.py): they read raw bytes (a signature is over
them) and answer in the one error shape themselves. Their descriptions live here, keyed by URL name,
as JSON Schema written to the rules the views apply; `InternalSchemaGenerator` turns them into
operations with drf-spectacular's own machinery. tests/api/test_openapi.py checks that every route
is described in one of the two schemas, and schemathesis runs over this one too.
"""

from __future__ import annotations

from functools import cache

from django.urls import URLPattern, URLResolver
from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator
from drf_spectacular.settings import patched_settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework.views import APIView

from matching.api.profile_schemas import PROFILE_FIELD_SCHEMAS
from matching.engine import PROFILE_FIELDS
from snowbuddy.openapi import PARSE_ERROR_CODES, raw_error_schema
from snowbuddy.openapi_json import JSON_VALUE, NO_NUL_PATTERN, OPEN_FIELDS
from workflows.durable_console.callback_contract import (
    BREAKDOWN_DIMENSIONS,
    CALLBACK_REQUIRED,
    DEFAULT_CANDIDATE_PAGE,
    MATCH_FIELDS,
    MATCH_REQUIRED,
    MAX_ATTEMPT,
    MAX_CANDIDATE_PAGE,
    MAX_CURSOR,
    MAX_ERROR_CHARS,
    MAX_ERROR_CODE_CHARS,
    MAX_NICKNAME_CHARS,
    MAX_RESULTS,
    MAX_USER_ID_CHARS,
    MAX_VERSION,
    OPTIONAL_DIMENSION,
    WEBHOOK_STATUSES,
)
from workflows.models import CALLBACK_ANSWER_OUTCOMES

INTERNAL_SCHEME = "InternalServiceToken"
# A search the schema's examples name (tests/api/test_schemathesis.py creates it, so the examples
# reach a real search).
EXAMPLE_SEARCH_ID = "5b0c6a52-7d1e-4c5a-9b8e-2f3a4d5e6f70"
EXAMPLE_VETTING_TOKEN = "example-token-of-the-vetting-request"  # noqa: S105 (an example, not a secret)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


PARSE_CODES = PARSE_ERROR_CODES
SCORE = {"type": "number", "minimum": 0, "maximum": 1}
TEXT = {"type": "string", "pattern": NO_NUL_PATTERN}
BREAKDOWN = {
    "type": "object",
    "additionalProperties": False,
    "required": list(BREAKDOWN_DIMENSIONS),
    "properties": {
        **dict.fromkeys(BREAKDOWN_DIMENSIONS, SCORE),
        OPTIONAL_DIMENSION: {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    },
}

COMPONENTS = {
    "JsonValue": JSON_VALUE,
    "Profile": {
        "type": "object",
        "description": "A candidate in the engine's wire form (matching/engine/types.py).",
        "required": list(PROFILE_FIELDS),
        "properties": PROFILE_FIELD_SCHEMAS,
    },
    "CandidatesPage": {
        "type": "object",
        "required": ["profiles", "next_cursor"],
        "properties": {
            "profiles": {"type": "array", "maxItems": MAX_CANDIDATE_PAGE, "items": _ref("Profile")},
            "next_cursor": {
                "type": ["string", "null"],
                "pattern": "^[0-9]{1,19}$",
                "description": "The `cursor` of the next page; null on the last one.",
            },
        },
    },
    "MatchesPage": {
        "type": "object",
        "additionalProperties": False,
        "required": ["matches", "candidate_count", "indexed_profiles"],
        "properties": {
            "matches": {
                "type": "array",
                "maxItems": MAX_RESULTS,
                "description": "The top `limit` of the search, best first (ranks 1..n).",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": list(MATCH_FIELDS),
                    "properties": {
                        "user_id": {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID_CHARS},
                        "nickname": {"type": "string"},
                        "score": SCORE,
                        "rank": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS},
                        "breakdown": BREAKDOWN,
                    },
                },
            },
            "candidate_count": {
                "type": "integer",
                "minimum": 0,
                "description": "Every profile past the filters and the threshold, before the cap.",
            },
            "indexed_profiles": {"type": "integer", "minimum": 0, "description": "Profiles in the warm index."},
        },
    },
    "VettingAnswer": {
        "type": "object",
        "description": "GlobalCoach's answer. Other fields are ignored (GlobalCoach may add some).",
        "required": ["token"],
        **OPEN_FIELDS,
        "properties": {
            "token": {
                "type": "string",
                "minLength": 1,
                "maxLength": 512,
                "pattern": NO_NUL_PATTERN,
                "description": "The opaque token of the vetting request this answers (the credential).",
            },
            "approved_user_ids": {"type": "array", "maxItems": 1000, "items": TEXT, "default": []},
            "rejected_user_ids": {"type": "array", "maxItems": 1000, "items": TEXT, "default": []},
        },
        "examples": [{"token": EXAMPLE_VETTING_TOKEN, "approved_user_ids": ["u000002"], "rejected_user_ids": []}],
    },
    "VettingAccepted": {
        "type": "object",
        "required": ["accepted", "outcome"],
        "additionalProperties": False,
        "properties": {
            "accepted": {"const": True},
            "outcome": {
                "type": "string",
                "enum": ["succeeded", "failed"],
                "description": "How the search ended: the approved candidates, or none approved.",
            },
        },
    },
    "VettingAlreadyAnswered": {
        "type": "object",
        "required": ["accepted", "reason"],
        "additionalProperties": False,
        "properties": {"accepted": {"const": False}, "reason": {"const": "already_answered"}},
    },
    "CallbackMatch": {
        "type": "object",
        "additionalProperties": False,
        "required": list(MATCH_REQUIRED),
        "properties": {
            "user_id": {**TEXT, "minLength": 1, "maxLength": MAX_USER_ID_CHARS, "description": "Unique in `results`."},
            "nickname": {**TEXT, "maxLength": MAX_NICKNAME_CHARS},
            "score": SCORE,
            "rank": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "description": "Unique in `results`."},
            "breakdown": BREAKDOWN,
        },
    },
    "WorkflowCallback": {
        "type": "object",
        "additionalProperties": False,
        "required": list(CALLBACK_REQUIRED),
        "description": "A search's state after a workflow step. A `version` no newer than the last one "
        "applied, or anything after a terminal state, changes nothing; `webhook-id` is the idempotency key.",
        "properties": {
            "search_id": {"type": "string", "format": "uuid"},
            "attempt": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPT},
            "status": {"type": "string", "enum": sorted(status.value for status in WEBHOOK_STATUSES)},
            "version": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_VERSION,
                "description": "The DynamoDB item's version.",
            },
            "payload": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    "results": {
                        "type": ["array", "null"],
                        "maxItems": MAX_RESULTS,
                        "items": _ref("CallbackMatch"),
                        "description": "Best first; ranks and user ids unique.",
                    },
                    "error": {
                        "oneOf": [
                            {"type": "null"},
                            {**TEXT, "maxLength": MAX_ERROR_CHARS},
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["code"],
                                "properties": {
                                    "code": {**TEXT, "minLength": 1, "maxLength": MAX_ERROR_CODE_CHARS},
                                    "message": {**TEXT, "type": ["string", "null"], "maxLength": MAX_ERROR_CHARS},
                                },
                            },
                        ]
                    },
                    "pending_callback": {"type": ["object", "null"], **OPEN_FIELDS, "description": "Shown as it is."},
                },
            },
        },
        "examples": [
            {
                "search_id": EXAMPLE_SEARCH_ID,
                "attempt": 1,
                "status": "succeeded",
                "version": 7,
                "payload": {
                    "results": [
                        {
                            "user_id": "u000002",
                            "nickname": "Rider2",
                            "score": 0.87,
                            "rank": 1,
                            "breakdown": {"skill": 1, "location": 1, "availability": 0.2, "role": 1, "knowledge": None},
                        }
                    ],
                    "error": None,
                    "pending_callback": None,
                },
            }
        ],
    },
    "CallbackOutcome": {
        "type": "object",
        "required": ["outcome"],
        "additionalProperties": False,
        "properties": {
            "outcome": {
                "type": "string",
                "enum": [outcome.value for outcome in CALLBACK_ANSWER_OUTCOMES],
            }
        },
    },
    "InternalBadRequest": raw_error_schema(
        PARSE_CODES, description="The body is not strict JSON, or its length is malformed."
    ),
    "FeedBadRequest": raw_error_schema(
        ["invalid"],
        description="`cursor` or `page_size` is not ASCII digits, or out of range.",
        validation_attr={"type": "string", "enum": ["cursor", "page_size"]},
    ),
    "FeedUnauthorized": raw_error_schema(["authentication_failed"], description="A missing or wrong service token."),
    "InvalidPreferences": raw_error_schema(
        ["invalid_preferences"], description="The search's stored preferences are ones the engine refuses."
    ),
    "UnknownSearch": raw_error_schema(["unknown_search"], description="No such search (or an id that is not a UUID)."),
    "WrongEngine": raw_error_schema(
        ["wrong_engine"], description="The search runs on the Celery engine: a durable callback changes nothing."
    ),
    "NotFound": raw_error_schema(["not_found"], description="The path does not name a search (not a UUID)."),
    "VettingBadRequest": raw_error_schema(
        [*PARSE_CODES, "invalid_vetting_answer"], description="Not strict JSON, or not a vetting answer."
    ),
    "VettingUnauthorized": raw_error_schema(["invalid_token"], description="A missing or wrong token."),
    "NotAwaitingVetting": raw_error_schema(
        ["not_awaiting_vetting"], description="The search no longer waits for vetting (cancelled, timed out)."
    ),
    "CallbackBadRequest": {
        "oneOf": [
            raw_error_schema(
                [*PARSE_CODES, "invalid_webhook_id"],
                description="The body is not strict JSON, its length is malformed, or webhook-id is not printable.",
            ),
            raw_error_schema(
                ["invalid", "invalid_choice", "unknown_field", "out_of_range", "too_long", "duplicate"],
                description="Every field at fault, by its dotted path (`payload.results.1.rank`); nothing was applied.",
                validation_attr={"type": ["string", "null"]},
            ),
        ]
    },
    "CallbackUnauthorized": raw_error_schema(
        ["missing_headers", "bad_timestamp", "timestamp_out_of_tolerance", "bad_signature"],
        description="The Standard Webhooks signature does not verify (the code says why).",
    ),
    "NotConfigured": raw_error_schema(
        ["not_configured"], server=True, description="MATCHING_WEBHOOK_SECRET is not set: callbacks are refused."
    ),
    "LengthRequired": raw_error_schema(["length_required"], description="A body sent chunked, without Content-Length."),
    "PayloadTooLarge": raw_error_schema(["payload_too_large"], description="A body over 64 KB."),
    "ServerError": raw_error_schema(["server_error"], server=True, description="A bug or an outage."),
}


def _json(name: str, description: str = "") -> OpenApiResponse:
    return OpenApiResponse(response=_ref(name), description=description)


SEARCH_ID = OpenApiParameter(
    "search_id",
    OpenApiTypes.UUID,
    OpenApiParameter.PATH,
    description="The search.",
    examples=[OpenApiExample("a search", value=EXAMPLE_SEARCH_ID)],
)
BODY_ERRORS = {
    400: _json("InternalBadRequest"),
    411: _json("LengthRequired"),
    413: _json("PayloadTooLarge"),
    500: _json("ServerError"),
}

# URL name -> {method: extend_schema(...)}: the operations of the internal schema.
INTERNAL_OPERATIONS = {
    "internal-search-matches": {
        "get": extend_schema(
            operation_id="internal_search_matches",
            summary="A search ranked on the console's warm candidate index: its top K (the durable workflow).",
            description="Internal: for the durable workflow only (its rank-candidates step). The console ranks "
            "the search's stored seeker and preferences on its warm candidate index. Any method but GET is a 405.",
            tags=["internal"],
            auth=[{INTERNAL_SCHEME: []}],
            parameters=[SEARCH_ID],
            responses={
                200: _json("MatchesPage"),
                400: _json("InvalidPreferences"),
                401: _json("FeedUnauthorized"),
                404: _json("UnknownSearch"),
                500: _json("ServerError"),
            },
        )
    },
    "internal-search-candidates": {
        "get": extend_schema(
            operation_id="internal_search_candidates",
            summary="Prefiltered candidates of a search, one keyset page at a time (the durable workflow).",
            description="Internal: for the durable workflow only. The console prefilters in the database "
            "(skill range, open to matching, location overlap, not the seeker). Any method but GET is a 405.",
            tags=["internal"],
            auth=[{INTERNAL_SCHEME: []}],
            parameters=[
                SEARCH_ID,
                OpenApiParameter(
                    "cursor",
                    {"type": "integer", "minimum": 0, "maximum": MAX_CURSOR},
                    OpenApiParameter.QUERY,
                    description="The `next_cursor` of the previous page (ASCII digits); none for the first page.",
                ),
                OpenApiParameter(
                    "page_size",
                    {"type": "integer", "minimum": 1, "maximum": MAX_CANDIDATE_PAGE, "default": DEFAULT_CANDIDATE_PAGE},
                    OpenApiParameter.QUERY,
                    description="Profiles per page (ASCII digits).",
                ),
            ],
            responses={
                200: _json("CandidatesPage"),
                400: _json("FeedBadRequest"),
                401: _json("FeedUnauthorized"),
                404: _json("UnknownSearch"),
                500: _json("ServerError"),
            },
        )
    },
    "globalcoach-callback": {
        "post": extend_schema(
            operation_id="globalcoach_vetting_answer",
            summary="GlobalCoach's answer to a vetting request (searches on the Celery engine).",
            description="Internal: for GlobalCoach only. The credential is the request's `token` in the body "
            "(only its hash is stored, compared in constant time). The approved candidates among those sent "
            "become the results; none approved fails the search. Any method but POST is a 405.",
            tags=["internal"],
            auth=[],
            parameters=[SEARCH_ID],
            request={"application/json": _ref("VettingAnswer")},
            responses={
                202: _json("VettingAccepted", "Applied: the search finished."),
                200: _json("VettingAlreadyAnswered", "A second answer: nothing changed."),
                400: _json("VettingBadRequest"),
                401: _json("VettingUnauthorized"),
                404: _json("NotFound"),
                409: _json("NotAwaitingVetting"),
                411: _json("LengthRequired"),
                413: _json("PayloadTooLarge"),
                500: _json("ServerError"),
            },
        )
    },
}


def _raw_response(name: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


SIGNATURE_HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "maxLength": 200, "pattern": "^[!-~](?:[ -~]{0,198}[!-~])?$"},
        "description": "The idempotency key: a redelivery carries the same one (1-200 printable ASCII).",
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "schema": {"type": "integer"},
        "description": "Unix seconds; more than 5 minutes off the console's clock is refused.",
    },
]
SIGNATURE_SCHEME = "WebhookSignature"
SIGNATURE_SCHEME_DEFINITION = {
    "type": "apiKey",
    "in": "header",
    "name": "webhook-signature",
    "description": 'Standard Webhooks: `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{raw body}">` '
    "with MATCHING_WEBHOOK_SECRET (`whsec_<base64>` or raw text); several space-separated during a secret "
    "rotation. Checked over the raw bytes, in constant time, before the body is parsed.",
}

SEARCH_CALLBACK = OpenApiWebhook(
    name="searchCallback",
    decorator={
        "post": {
            "operationId": "workflow_search_callback",
            "summary": "The durable workflow reports a search's state (signed, Standard Webhooks).",
            "description": "Sent by the durable workflow to its `callback_webhook`, which is the console's "
            "`POST /webhooks/matching` (MATCHING_WORKFLOW_CALLBACK_URL). The console verifies the signature "
            "over the raw bytes first, then parses them strictly and validates the whole body before "
            "anything is stored. Any method but POST is a 405.",
            "tags": ["internal"],
            "security": [{SIGNATURE_SCHEME: []}],
            "parameters": SIGNATURE_HEADERS,
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("WorkflowCallback")}}},
            "responses": {
                "200": _raw_response("CallbackOutcome", "Received; `outcome` says what it changed."),
                "400": _raw_response("CallbackBadRequest", "Nothing was applied and no delivery recorded."),
                "401": _raw_response("CallbackUnauthorized", "The signature does not verify."),
                "404": _raw_response("UnknownSearch", "No such search."),
                "409": _raw_response("WrongEngine", "The search does not run on the durable engine."),
                "411": _raw_response("LengthRequired", "A body sent chunked."),
                "413": _raw_response("PayloadTooLarge", "A body over 64 KB."),
                "500": _raw_response("ServerError", "A bug or an outage."),
                "503": _raw_response("NotConfigured", "MATCHING_WEBHOOK_SECRET is not set."),
            },
        }
    },
)

SETTINGS = {
    "TITLE": "Snowbuddy console: internal endpoints",
    "DESCRIPTION": "Internal: not for SnowTrace. What the console serves to the durable workflow (the "
    "candidates feed, the signed callback as a webhook) and to GlobalCoach (the vetting answer). "
    "SnowTrace's REST API is described at /api/schema/.",
    "WEBHOOKS": ["snowbuddy.openapi_internal.SEARCH_CALLBACK"],
    "APPEND_COMPONENTS": {
        "schemas": COMPONENTS,
        "securitySchemes": {
            SIGNATURE_SCHEME: SIGNATURE_SCHEME_DEFINITION,
            INTERNAL_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "MATCHING_INTERNAL_TOKEN, compared in constant time.",
            },
        },
    },
    "ENUM_NAME_OVERRIDES": {},
    "POSTPROCESSING_HOOKS": [],
}


class PlainViewDescription(APIView):
    """The stand-in drf-spectacular inspects for a plain Django view: it carries only that view's
    `extend_schema` description. It is never routed; the real view is the URL's own callback."""

    authentication_classes: list = []
    permission_classes: list = []
    plain_django_view = True  # snowbuddy.openapi.AutoSchema adds no error responses of its own


@cache
def _description_callback(url_name: str):
    methods = {}
    for method, decorator in INTERNAL_OPERATIONS[url_name].items():

        def handler(self, request, *args, **kwargs):
            raise AssertionError("a description is never routed")

        methods[method] = decorator(handler)
    return type(f"{url_name.title().replace('-', '')}Description", (PlainViewDescription,), methods).as_view()


class InternalEndpointEnumerator(EndpointEnumerator):
    def _get_api_endpoints(self, patterns, prefix):
        endpoints = []
        for pattern in self.patterns if patterns is None else patterns:
            path_regex = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                endpoints += self._get_api_endpoints(pattern.url_patterns, path_regex)
            elif isinstance(pattern, URLPattern) and pattern.name in INTERNAL_OPERATIONS:
                path = self.get_path_from_regex(path_regex)
                callback = _description_callback(pattern.name)
                endpoints += [
                    (path, path_regex, method.upper(), callback) for method in INTERNAL_OPERATIONS[pattern.name]
                ]
        return endpoints


class InternalSchemaGenerator(SchemaGenerator):
    endpoint_inspector_cls = InternalEndpointEnumerator

    def get_schema(self, request=None, public=False):
        with patched_settings(SETTINGS):
            return super().get_schema(request, public)
