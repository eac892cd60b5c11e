"""The OpenAPI schemas say what the API does (docs/contracts.md, "OpenAPI schemas"): which statuses
each operation answers and with which codes, the bounds and enums of every input, both request
shapes and both answer versions, the security alternatives, and the internal endpoints."""

import json

import jsonschema
import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from drf_spectacular.generators import EndpointEnumerator
from drf_spectacular.validation import validate_schema

from matching.api.fields import RESORT_IDS
from matching.engine import PROFILE_FIELDS
from matching.models import SearchNotification, SearchStatus
from matching.vocabulary.regions import KNOWN_REGIONS
from snowbuddy.openapi_internal import INTERNAL_OPERATIONS
from tests.helpers.bodies import BUDDY as CONSOLE
from tests.helpers.errors import error_attrs, error_codes
from tests.helpers.factories import SearchFactory, SearchResultFactory, SkierProfileFactory
from workflows.outbound.notifications import notification_body

pytestmark = pytest.mark.django_db

# Routes that are not API operations: the admin, the schema and its docs page, the root redirect,
# and the Prometheus exposition (text format, bearer METRICS_TOKEN; tests/observability/test_metrics.py).
NOT_OPERATIONS = {"home", "schema", "schema-internal", "api-docs", "metrics", "staff-login"}
# The staff console's HTML pages (the admin, the staff door, the sign-in through the IdP): not API operations.
STAFF_PAGES = {"admin/", "staff/", "oidc/"}
# The route the internal schema describes as its webhook (the signed workflow callback).
WEBHOOK_RECEIVERS = {"matching-callback": "searchCallback"}


def _schema(client, path="/api/schema/", **params) -> dict:
    response = client.get(path, {"format": "json", **params})
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def schemas(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        client = Client()
        return {
            "1": _schema(client),
            "2": _schema(client, version="2"),
            "internal": _schema(client, "/api/schema/internal/"),
        }


def _components(schema) -> dict:
    return schema["components"]["schemas"]


def _resolve(schema, node):
    while "$ref" in node:
        node = _components(schema)[node["$ref"].rsplit("/", 1)[-1]]
    return node


@pytest.mark.parametrize("name", ["1", "2", "internal"])
def test_each_schema_is_valid_openapi_3_1(schemas, name):
    assert schemas[name]["openapi"] == "3.1.0"
    validate_schema(schemas[name])


def _routes(patterns=None, prefix=""):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if str(pattern.pattern) not in STAFF_PAGES:
                yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield pattern.name, prefix + str(pattern.pattern)


def test_every_route_is_described_in_one_of_the_schemas(schemas):
    """A new endpoint is a DRF view (described from its serializers) or a plain view that needs an
    entry in snowbuddy/openapi_internal.INTERNAL_OPERATIONS: either way it is in a schema, so
    schemathesis covers it (tests/api/test_schemathesis.py)."""
    described = {p for name in ("1", "2", "internal") for p in schemas[name]["paths"]}
    undescribed = []
    for name, route in _routes():
        if name in NOT_OPERATIONS:
            continue
        if name in WEBHOOK_RECEIVERS:
            assert WEBHOOK_RECEIVERS[name] in schemas["internal"]["webhooks"]
            continue
        path = EndpointEnumerator().get_path_from_regex(route)
        if path not in described:
            undescribed.append((name, path))
    assert not undescribed, f"routes in no schema (describe them): {undescribed}"


# Every status each operation can answer, and no other (docs/contracts.md "Errors").
BODY = {"400", "411", "413", "415"}  # where a body is read
STATUSES = {
    ("get", "/health"): {"200", "503", "406", "500"},
    ("get", "/matching/resorts"): {"200", "401", "406", "500"},
    ("get", "/matching/searches"): {"200", "400", "401", "404", "406", "500"},
    ("post", "/matching/searches"): {"202", *BODY, "401", "406", "422", "429", "500"},  # 422: a reused Idempotency-Key
    ("get", "/matching/searches/{search_id}"): {"200", "401", "404", "406", "500"},
    ("post", "/matching/searches/{search_id}/cancel"): {"202", *BODY, "401", "404", "406", "409", "500"},
    # Profile push (trusted-service keys: 403 for the others); a close reads no body (no 415).
    ("get", "/matching/profiles/{user_id}"): {"200", "400", "401", "403", "404", "406", "500"},
    ("put", "/matching/profiles/{user_id}"): {"200", "201", *BODY, "401", "403", "404", "406", "500"},
    ("delete", "/matching/profiles/{user_id}"): {"204", "400", "401", "403", "404", "406", "500"},
    ("post", "/matching/profiles/{user_id}:close"): {"200", "400", "401", "403", "404", "406", "411", "413", "500"},
    ("post", "/matching/profiles:batch"): {"200", *BODY, "401", "403", "406", "500"},
    # Match requests, at the site root as the old service had them: 403 is the other party's action,
    # 409 a second answer; a refused send costs no throttle, an accepted one may be a 429.
    ("get", "/requests"): {"200", "400", "401", "404", "406", "500"},
    ("post", "/requests"): {"202", *BODY, "401", "406", "429", "500"},
    ("get", "/requests/{request_id}"): {"200", "401", "404", "406", "500"},
    ("put", "/requests/{request_id}"): {"200", *BODY, "401", "403", "404", "406", "409", "500"},
    # The old trip calls: always a 404 saying they moved to the user service (no body is read).
    ("post", "/trips/{trip_id}/apply"): {"404", "406", "411", "413", "500"},
    ("put", "/trips/{trip_id}/applications/{request_id}"): {"404", "406", "411", "413", "500"},
    ("get", "/trips/{trip_id}/participants"): {"404", "406", "500"},
    ("delete", "/trips/{trip_id}/participants/{user_id}"): {"404", "406", "500"},
}
INTERNAL_STATUSES = {
    ("get", "/internal/searches/{search_id}/matches"): {"200", "400", "401", "404", "500"},
    ("get", "/internal/searches/{search_id}/candidates"): {"200", "400", "401", "404", "500"},
    ("post", "/webhooks/globalcoach/{search_id}"): {"202", "200", "400", "401", "404", "409", "411", "413", "500"},
}


@pytest.mark.parametrize("version", ["1", "2"])
def test_each_operation_lists_exactly_the_statuses_it_can_answer(schemas, version):
    operations = {(m, p): set(op["responses"]) for p, ops in schemas[version]["paths"].items() for m, op in ops.items()}
    for operation, statuses in STATUSES.items():
        assert operations.pop(operation) == statuses, operation
    assert not operations, f"operations added without a line here: {sorted(operations)}"


def test_each_internal_operation_lists_exactly_the_statuses_it_can_answer(schemas):
    paths = schemas["internal"]["paths"]
    operations = {(m, p): set(op["responses"]) for p, ops in paths.items() for m, op in ops.items()}
    assert operations == INTERNAL_STATUSES
    callback = schemas["internal"]["webhooks"]["searchCallback"]["post"]
    assert set(callback["responses"]) == {"200", "400", "401", "404", "409", "411", "413", "500", "503"}


def test_errors_carry_the_projects_codes(schemas):
    schema = schemas["1"]
    create = schema["paths"]["/matching/searches"]["post"]["responses"]
    error_codes_of = {}
    for status in ("401", "406", "411", "413", "415", "429", "500"):
        body = _resolve(schema, create[status]["content"]["application/json"]["schema"])
        entry = _resolve(schema, body["properties"]["errors"]["items"])
        error_codes_of[status] = sorted(entry["properties"]["code"]["enum"])
    assert error_codes_of == {
        "401": ["authentication_failed", "not_authenticated"],
        "406": ["not_acceptable"],
        "411": ["length_required"],
        "413": ["payload_too_large"],
        "415": ["unsupported_media_type"],
        "429": ["throttled"],
        "500": ["server_error"],
    }
    assert create["429"]["headers"]["Retry-After"]["required"] is True
    assert "WWW-Authenticate" in create["401"]["headers"]


def test_a_field_error_in_a_list_is_described_by_its_index_pattern(schemas):
    components = _components(schemas["1"])
    dates = components["MatchingSearchesCreateDatesINDEXErrorComponent"]["properties"]
    assert dates["attr"] == {"type": "string", "pattern": r"^dates\.[0-9]+$"}
    assert "invalid" in dates["code"]["enum"]
    resorts = components["MatchingSearchesCreateResortsErrorComponent"]["properties"]["code"]["enum"]
    assert {"unknown_resort", "max_length", "mixed_shapes"} <= set(resorts)


def test_both_request_shapes_are_closed_with_their_bounds_and_enums(schemas):
    components = _components(schemas["1"])
    body = schemas["1"]["paths"]["/matching/searches"]["post"]["requestBody"]
    assert body["required"] is True
    shapes = [
        _resolve(schemas["1"], s)
        for s in _resolve(schemas["1"], body["content"]["application/json"]["schema"])["oneOf"]
    ]
    original, console = shapes
    assert original is components["SnowTraceSearchPreferences"] and console is components["SearchPreferences"]
    # SnowTrace's original shape is open (unknown fields are ignored, as pydantic did), the console's closed.
    assert console["additionalProperties"] is False
    assert original["additionalProperties"] == {"$ref": "#/components/schemas/JsonValue"}
    for bound in ("skill_level_min", "skill_level_max"):
        assert (console["properties"][bound]["minimum"], console["properties"][bound]["maximum"]) == (1, 10)
        integer, string = original["properties"][bound]["anyOf"]
        assert (integer["minimum"], integer["maximum"], string["pattern"]) == (1, 10, "^(10|[1-9])$")
    assert set(console["required"]) == {"role", "skill_level_min", "skill_level_max"}
    assert "required" not in original
    assert components["ResortIdEnum"]["enum"] == RESORT_IDS
    assert components["RegionEnum"]["enum"] == list(KNOWN_REGIONS)
    assert components["RoleEnum"]["enum"] == ["buddy", "student", "coach"]
    assert original["properties"]["preferred_resorts"]["items"]["maxLength"] == 100  # names as people write them
    limit = console["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 20)
    assert console["properties"]["dates"]["maxItems"] == 60
    assert console["properties"]["dates"]["items"]["pattern"] == "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    assert original["properties"]["availability"]["maxItems"] == 60
    assert original["properties"]["availability"]["items"]["anyOf"][0]["pattern"] == "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    assert console["properties"]["resorts"]["maxItems"] == 43
    assert console["properties"]["required_certifications"]["maxItems"] == 10
    assert _components(schemas["1"])["SearchCancel"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        (CONSOLE, True),
        ({**CONSOLE, "skill_level_min": 8}, False),
        ({**CONSOLE, "skill_level_min": 7}, True),
        ({**CONSOLE, "vetting_required": True}, False),
        ({**CONSOLE, "required_certifications": ["CASI-3"]}, False),
        ({**CONSOLE, "role": "coach", "vetting_required": True, "required_certifications": ["CASI-3"]}, True),
        ({**CONSOLE, "vetting_required": False, "required_certifications": []}, True),
        ({**CONSOLE, "colour": "red"}, False),
        ({**CONSOLE, "dates": ["20260101"]}, False),
        ({**CONSOLE, "resorts": ["Naeba"]}, False),
        ({}, True),
        ({"skill_level_min": 9, "skill_level_max": 2}, True),  # the original shape, as the old service took it
        ({"seeking_role": "coach", "role": "coach"}, False),
        ({"skill_level": "intermediate", "preferred_regions": ["hokkaido"]}, True),  # unknown fields ignored
        ({"skill_level_min": "5"}, True),
        ({"skill_level_range": [2, 6], "preferred_role": "coach"}, True),
        ({"skill_level_range": [6, 2]}, False),
        ({"preferred_resorts": ["niseko"], "limit": 5}, False),  # a console-only name: the console's shape
    ],
)
def test_the_schema_states_the_cross_field_rules_json_schema_can_say(schemas, body, valid):
    """min <= max and the coach-only fields are in the console shape's component, not only in prose."""
    schema = schemas["1"]
    request = schema["paths"]["/matching/searches"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({**request, "components": schema["components"]})
    assert validator.is_valid(body) is valid


def test_the_console_shape_says_its_rules_in_words_too(schemas):
    console = _components(schemas["1"])["SearchPreferences"]
    assert "must not exceed" in console["description"] and "coach searches only" in console["description"]
    assert "Coach searches only" in console["properties"]["vetting_required"]["description"]


def test_the_page_parameter_starts_at_1(schemas):
    params = {p["name"]: p for p in schemas["1"]["paths"]["/matching/searches"]["get"]["parameters"]}
    assert params["page"]["schema"]["minimum"] == 1


@pytest.mark.parametrize("page", ["", "0", "-1", "+1", " 1", "1_0", "abc", "1.5", "99999999999"])
def test_a_page_that_is_not_a_whole_number_from_1_is_a_400_naming_page(owner, page):
    response = owner.get("/matching/searches", {"page": page})
    assert error_attrs(response, 400) == {"page"}


def test_a_page_past_the_last_one_is_a_404_and_page_1_of_nothing_is_empty(owner):
    assert error_codes(owner.get("/matching/searches", {"page": "2"}), 404) == {"not_found"}
    assert owner.get("/matching/searches", {"page": "1"}).json()["results"] == []


def test_a_format_parameter_chooses_nothing(owner):
    """DRF would answer `?format=xml` with a 404 on every endpoint; the API speaks JSON only."""
    response = owner.get("/matching/searches", {"format": "xml"})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")


def test_reads_and_writes_list_their_security_alternatives(schemas):
    paths = schemas["1"]["paths"]
    writes = [{"SnowTraceApiKey": [], "SnowTraceUserToken": []}, {"SnowTraceApiKey": [], "SnowTraceUserId": []}]
    assert paths["/matching/searches"]["post"]["security"] == writes
    assert paths["/matching/searches"]["get"]["security"] == [*writes, {"SnowTraceUserToken": []}]
    assert paths["/health"]["get"]["security"] == [{}]
    schemes = schemas["1"]["components"]["securitySchemes"]
    assert schemes["SnowTraceUserToken"] == {**schemes["SnowTraceUserToken"], "type": "http", "scheme": "bearer"}
    assert schemes["SnowTraceApiKey"]["name"] == "X-API-Key" and schemes["SnowTraceUserId"]["name"] == "X-User-Id"


def test_version_2_describes_the_consoles_answers_under_its_media_type(schemas):
    read = schemas["2"]["paths"]["/matching/searches/{search_id}"]["get"]["responses"]["200"]["content"]
    assert list(read) == ["application/json; version=2"]
    assert read["application/json; version=2"]["schema"]["$ref"].endswith("/SearchDetail")
    read_v1 = schemas["1"]["paths"]["/matching/searches/{search_id}"]["get"]["responses"]["200"]["content"]
    assert read_v1["application/json"]["schema"]["$ref"].endswith("/SnowTraceSearch")


def test_the_internal_schema_is_marked_internal_and_apart(schemas):
    internal = schemas["internal"]
    assert "Internal" in internal["info"]["description"]
    for ops in internal["paths"].values():
        for op in ops.values():
            assert op["tags"] == ["internal"] and op["description"].startswith("Internal:")
    assert not set(internal["paths"]) & set(schemas["1"]["paths"])
    feed = internal["paths"]["/internal/searches/{search_id}/candidates"]["get"]
    assert feed["security"] == [{"InternalServiceToken": []}]
    assert set(INTERNAL_OPERATIONS) == {"internal-search-matches", "internal-search-candidates", "globalcoach-callback"}


def test_a_profile_is_described_by_the_engines_fields_in_both_schemas(schemas):
    # One description of each profile field: the stored profile's answer and the feed's candidate.
    candidate = _components(schemas["internal"])["Profile"]
    assert list(candidate["properties"]) == list(PROFILE_FIELDS) == candidate["required"]
    read = schemas["1"]["paths"]["/matching/profiles/{user_id}"]["get"]["responses"]["200"]
    stored = _resolve(schemas["1"], read["content"]["application/json"]["schema"])
    assert list(stored["properties"]) == [*PROFILE_FIELDS, "updated_at"]
    assert {k: v for k, v in stored["properties"].items() if k != "updated_at"} == candidate["properties"]


def test_the_signed_callback_is_a_webhook_of_the_internal_schema(schemas):
    callback = schemas["internal"]["webhooks"]["searchCallback"]["post"]
    assert callback["security"] == [{"WebhookSignature": []}]
    assert schemas["internal"]["components"]["securitySchemes"]["WebhookSignature"]["name"] == "webhook-signature"
    assert {p["name"] for p in callback["parameters"]} == {"webhook-id", "webhook-timestamp"}
    body = _resolve(schemas["internal"], callback["requestBody"]["content"]["application/json"]["schema"])
    assert body["additionalProperties"] is False
    assert body["properties"]["version"]["maximum"] == 2**63 - 1


@pytest.mark.parametrize("name", ["running", "awaiting_vetting", "succeeded", "failed"])
def test_the_workflows_callbacks_fit_the_webhooks_schema(schemas, name):
    """The fixtures are what the durable workflow sends (tests/workflows/test_webhook.py)."""
    from tests.workflows.test_webhook import FIXTURES

    body = json.loads(
        (FIXTURES / f"{name}.json").read_text().replace("{{search_id}}", "5b0c6a52-7d1e-4c5a-9b8e-2f3a4d5e6f70")
    )
    schema = schemas["internal"]
    validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/WorkflowCallback", **schema})
    assert list(validator.iter_errors(body)) == []


def test_the_completion_notification_is_a_webhook_of_the_public_schema(schemas):
    finished = schemas["1"]["webhooks"]["searchFinished"]["post"]
    assert {p["name"] for p in finished["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    body = finished["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False

    search = SearchFactory(status=SearchStatus.SUCCEEDED, finished_at=timezone.now(), result_count=2)
    for rank, user_id in enumerate(["c1", "c2"], start=1):
        SkierProfileFactory(user_id=user_id, role="coach", skill_level=7)
        SearchResultFactory(search=search, user_id=user_id, rank=rank, nickname=f"Rider {rank}", score=0.9 - rank / 10)
    notification = SearchNotification.objects.create(search=search, attempt=1, status=SearchStatus.SUCCEEDED)
    sent = json.loads(notification_body(notification))
    assert len(sent["payload"]["results"]) == 2
    assert list(jsonschema.Draft202012Validator(body).iter_errors(sent)) == []


@pytest.mark.parametrize("name", ["non_field_errors", "dates.0", "role "])
def test_an_unknown_field_of_any_name_is_answered_as_the_schema_says(schemas, owner, resorts, name):
    """Even a body field named like an error attr: the answer fits the documented 400."""
    response = owner.post("/matching/searches", {**CONSOLE, name: 1})
    assert error_codes(response, 400) == {"unknown_field"} and error_attrs(response) == {name}
    schema = schemas["2"]
    answer = schema["paths"]["/matching/searches"]["post"]["responses"]["400"]["content"]
    (media,) = answer.values()
    validator = jsonschema.Draft202012Validator({**media["schema"], "components": schema["components"]})
    assert list(validator.iter_errors(response.json())) == []
