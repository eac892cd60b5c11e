"""Fixtures for the durable (AWS) side: moto DynamoDB in server mode, the in-process durable runner,
and small local HTTP servers for the far side of the network (the console's matches endpoint,
GlobalCoach, the console's callback webhook).

No Django here: run with ``pytest -p no:django tests/durable``.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from matching.engine import Profile, SearchRequest, match_baseline
from tests.helpers.aws import REGION, fake_aws_credentials, moto_server
from tests.helpers.http import FakeHandler, Recorded, serve
from workflows.durable import api as durable_api
from workflows.durable import signing, workflow
from workflows.durable.state import WorkflowStateStore, create_table

INTERNAL_TOKEN = "internal-token-for-tests"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"durable-tests-webhook-secret-32b").decode()

# Resorts and regions from matching/fixtures/resorts.json.
INAWASHIRO = "fukushima_inawashiro"
NEKOMA = "fukushima_nekoma_mountain"
FUKUSHIMA = "Fukushima Prefecture"
RESORTS_FIXTURE = Path(__file__).resolve().parents[2] / "matching" / "fixtures" / "resorts.json"


def fixture_resort_regions() -> dict[str, str]:
    """resort id → region, from the console's resort fixture."""
    rows = json.loads(RESORTS_FIXTURE.read_text(encoding="utf-8"))
    return {str(row["pk"]): str(row["fields"]["region"]) for row in rows}


def console_ranking(seeker_id: str, preferences: dict[str, Any], profiles: list[dict[str, Any]]) -> dict[str, Any]:
    """What the console's matches endpoint answers for these profiles: the engine's top K with
    nicknames, and how many matched before the cap."""
    request = SearchRequest.from_preferences(seeker_id, preferences)
    parsed = [Profile.from_dict(p) for p in profiles]
    regions = fixture_resort_regions()
    everyone = match_baseline(replace(request, limit=len(parsed) + 1), parsed, regions)
    nicknames = {p.user_id: p.nickname for p in parsed}
    top = match_baseline(request, parsed, regions)
    return {
        "matches": [{**m.to_dict(), "nickname": nicknames[m.user_id]} for m in top],
        "candidate_count": len(everyone),
    }


# --- AWS: credentials, moto, the table -------------------------------------------------------------


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def dynamodb(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, aws_env: None) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def table(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh table per test (moto's server is shared by the whole session)."""
    name = f"matching-workflow-state-{uuid.uuid4().hex[:10]}"
    create_table(dynamodb, name)
    monkeypatch.setenv("MATCHING_STATE_TABLE", name)
    return name


@pytest.fixture
def store(table: str, dynamodb: Any) -> WorkflowStateStore:
    return WorkflowStateStore(table, dynamodb)


# --- the far side of the network -------------------------------------------------------------------


@dataclass
class FakeHttpService:
    """A threaded HTTP server whose answers a test scripts; it records every request."""

    respond: Callable[[Recorded], tuple[int, Any]]
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._server = serve(_ScriptedHandler, self)
        self.url = self._server.url

    def stop(self) -> None:
        self._server.stop()

    def snapshot(self) -> list[Recorded]:
        with self._lock:
            return list(self.requests)


class _ScriptedHandler(FakeHandler):
    def _serve(self) -> None:
        service: FakeHttpService = self.fake
        recorded = self.record()
        with service._lock:
            service.requests.append(recorded)
        status, body = service.respond(recorded)
        self.reply(status, b"" if body is None else body)

    do_GET = do_POST = _serve


def profile(
    user_id: str,
    *,
    skill: int = 5,
    role: str = "coach",
    resorts: tuple[str, ...] = (INAWASHIRO,),
    dates: tuple[str, ...] = (),
    open_to_matching: bool = True,
    certifications: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "nickname": f"nick-{user_id}",
        "skill_level": skill,
        "role": role,
        "resorts": list(resorts),
        "regions": [],
        "available_dates": list(dates),
        "open_to_matching": open_to_matching,
        "knowledge_score": None,
        "certifications": list(certifications),
        "languages": ["en"],
    }


class FakeConsole:
    """The console's internal matches endpoint: ranks ``profiles`` for the search's seeker and
    preferences (looked up by ``search_of``, which the fixtures point at the state item)."""

    def __init__(self) -> None:
        self.profiles: list[dict[str, Any]] = []
        self.failures: list[int] = []  # statuses to answer before serving normally
        self.search_of: Callable[[str], tuple[str, dict[str, Any]] | None] = lambda _search_id: None
        self.service = FakeHttpService(self._respond)

    def _respond(self, request: Recorded) -> tuple[int, Any]:
        if request.headers.get("authorization") != f"Bearer {INTERNAL_TOKEN}":
            return 401, {"error": "unauthorized"}
        if self.failures:
            return self.failures.pop(0), {"error": "scripted failure"}
        if not request.path.startswith("/internal/searches/") or not request.path.endswith("/matches"):
            return 404, {"error": "not found"}
        search = self.search_of(request.path.split("/")[3])
        if search is None:
            return 404, {"detail": "Unknown search."}
        return 200, console_ranking(*search, self.profiles)

    def ranking_requests(self) -> list[Recorded]:
        return [r for r in self.service.snapshot() if r.path.endswith("/matches")]


class FakeGlobalCoach:
    """The vetting provider: accepts vetting requests (or fails as scripted)."""

    def __init__(self) -> None:
        self.failures: list[int] = []
        self.service = FakeHttpService(self._respond)

    def _respond(self, request: Recorded) -> tuple[int, Any]:
        if self.failures:
            return self.failures.pop(0), {"error": "scripted failure"}
        if request.method == "POST" and request.path == "/vetting-requests":
            return 202, {"status": "queued"}
        return 404, {"error": "not found"}

    def vetting_requests(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.service.snapshot() if r.path == "/vetting-requests"]


class FakeReceiver:
    """The console's callback webhook: verifies the Standard Webhooks signature of every delivery."""

    def __init__(self) -> None:
        self.status = 204
        self.service = FakeHttpService(self._respond)

    def _respond(self, request: Recorded) -> tuple[int, Any]:
        signing.verify(WEBHOOK_SECRET, request.headers, request.body)  # raises: the test sees a 500
        return self.status, None

    @property
    def url(self) -> str:
        return self.service.url + "/webhooks/matching"

    def deliveries(self) -> list[Recorded]:
        return [r for r in self.service.snapshot() if r.path == "/webhooks/matching"]

    def bodies(self, status: str | None = None) -> list[dict[str, Any]]:
        bodies = [r.json() for r in self.deliveries()]
        return [b for b in bodies if status is None or b["status"] == status]


@pytest.fixture
def console() -> Iterator[FakeConsole]:
    fake = FakeConsole()
    fake.service.start()
    yield fake
    fake.service.stop()


@pytest.fixture
def globalcoach() -> Iterator[FakeGlobalCoach]:
    fake = FakeGlobalCoach()
    fake.service.start()
    yield fake
    fake.service.stop()


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    fake = FakeReceiver()
    fake.service.start()
    yield fake
    fake.service.stop()


@pytest.fixture
def workflow_env(
    monkeypatch: pytest.MonkeyPatch,
    table: str,
    store: WorkflowStateStore,
    console: FakeConsole,
    globalcoach: FakeGlobalCoach,
) -> None:
    # The real console knows each search from its own database; the fake reads the state item.
    console.search_of = lambda search_id: (
        (item["seeker_id"], item["preferences"]) if (item := store.get(search_id)) else None
    )
    monkeypatch.setenv("MATCHING_CONSOLE_BASE_URL", console.service.url)
    monkeypatch.setenv("MATCHING_INTERNAL_TOKEN", INTERNAL_TOKEN)
    monkeypatch.setenv("MATCHING_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("MATCHING_VETTING_URL", globalcoach.service.url)
    monkeypatch.setenv("MATCHING_VETTING_CALLBACK_URL", "http://127.0.0.1:9/workflows/matching/vetting-callback")
    monkeypatch.setenv("MATCHING_VETTING_TOP_N", "3")
    monkeypatch.setenv("MATCHING_FETCH_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("MATCHING_CALLBACK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("MATCHING_RETRY_INITIAL_DELAY_SECONDS", "1")
    monkeypatch.setenv("MATCHING_HTTP_TIMEOUT_SECONDS", "5")


# --- the durable runner ------------------------------------------------------------------------------


@pytest.fixture
def runner() -> Iterator[Any]:
    """AWS's in-process durable runner; retry backoffs are skipped, callback timeouts are real."""
    from aws_durable_execution_sdk_python_testing import DurableFunctionTestRunner

    with DurableFunctionTestRunner(handler=workflow.handler, poll_interval=0.05) as durable_runner:
        yield durable_runner


class RunnerLambdaClient:
    """The slice of the boto3 Lambda client the Durable API calls, served by the durable runner.

    Parameters are validated against botocore's own Lambda service model, so a call the real
    client would reject fails here too; the operations then act on real durable executions.
    """

    def __init__(self, durable_runner: Any) -> None:
        self.runner = durable_runner
        self.invocations: list[dict[str, Any]] = []
        self.fail_invokes = 0
        self.fail_callback_answers = 0
        self._model = boto3.client("lambda", region_name=REGION).meta.service_model
        self._lock = threading.Lock()

    def _validate(self, operation: str, params: dict[str, Any]) -> None:
        report = ParamValidator().validate(params, self._model.operation_model(operation).input_shape)
        if report.has_errors():
            raise AssertionError(report.generate_report())

    @staticmethod
    def _error_object(error: dict[str, Any]) -> Any:
        from aws_durable_execution_sdk_python.lambda_service import ErrorObject

        return ErrorObject(message=error.get("ErrorMessage"), type=error.get("ErrorType"), data=None, stack_trace=None)

    @staticmethod
    def _client_error(code: str, message: str, operation: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": message}}, operation)

    def invoke(self, **params: Any) -> dict[str, Any]:
        self._validate("Invoke", params)
        with self._lock:
            if self.fail_invokes:
                self.fail_invokes -= 1
                raise self._client_error("ServiceException", "scripted failure", "Invoke")
            self.invocations.append(params)
        arn = self.runner.run_async(
            input=params["Payload"].decode(),
            function_name=params["FunctionName"].split(":")[0],
            execution_name=params["DurableExecutionName"],
        )
        return {"StatusCode": 202, "DurableExecutionArn": arn}

    def stop_durable_execution(self, **params: Any) -> dict[str, Any]:
        self._validate("StopDurableExecution", params)
        error = self._error_object(params.get("Error") or {})
        self.runner._executor.stop_execution(params["DurableExecutionArn"], error)
        return {}

    def send_durable_execution_callback_success(self, **params: Any) -> dict[str, Any]:
        self._validate("SendDurableExecutionCallbackSuccess", params)
        with self._lock:
            if self.fail_callback_answers:
                self.fail_callback_answers -= 1
                raise self._client_error("ServiceException", "scripted failure", "CallbackSuccess")
        try:
            self.runner.send_callback_success(params["CallbackId"], params.get("Result"))
        except Exception as exc:  # the runner reports any unknown/finished callback this way
            raise self._client_error("ResourceNotFoundException", str(exc), "CallbackSuccess") from None
        return {}

    def send_durable_execution_callback_failure(self, **params: Any) -> dict[str, Any]:
        self._validate("SendDurableExecutionCallbackFailure", params)
        try:
            self.runner.send_callback_failure(params["CallbackId"], self._error_object(params.get("Error") or {}))
        except Exception as exc:
            raise self._client_error("ResourceNotFoundException", str(exc), "CallbackFailure") from None
        return {}


@pytest.fixture
def lambda_client(runner: Any) -> RunnerLambdaClient:
    return RunnerLambdaClient(runner)


@pytest.fixture
def api_config(table: str) -> durable_api.ApiConfig:
    return durable_api.ApiConfig(table_name=table, workflow_function="matching-workflow:$LATEST")


@pytest.fixture
def durable(
    api_config: durable_api.ApiConfig,
    store: WorkflowStateStore,
    lambda_client: RunnerLambdaClient,
    workflow_env: None,
) -> durable_api.DurableApi:
    return durable_api.DurableApi(api_config, store, lambda_client)


def function_url_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    iam: bool = False,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """A Function URL payload-v2.0 event, as AWS (or the local API server) hands it to the handler."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": {"content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}},
        "requestContext": {"http": {"method": method, "path": path}, "requestId": str(uuid.uuid4())},
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if raw_body is not None:
        event["body"] = raw_body
    elif body is not None:
        event["body"] = json.dumps(body)
    if iam:
        event["requestContext"]["authorizer"] = {"iam": {"accessKey": "AKIDEXAMPLE", "accountId": "123456789012"}}
    return event


def call(api: durable_api.DurableApi, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
    response = api.handle(function_url_event(method, path, body, **kwargs))
    return response["statusCode"], json.loads(response["body"])
