"""Fixtures for the execution mirror: DynamoDB from moto in server mode (on 127.0.0.1), a scripted
stand-in for the Lambda durable-execution read API (the far side that cannot run here), and
searches created through the services."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
from django.utils import timezone

from matching.models import Engine, Search
from tests.helpers.aws import REGION, fake_aws_credentials, moto_server
from tests.helpers.bodies import BUDDY as PREFS
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.http import FakeHandler, LoopbackHttpServer
from workflows.dispatch.submit import search_submit
from workflows.durable.state import WorkflowStateStore, create_table, serialize_item, utc_now_iso
from workflows.durable_console.dynamo import DynamoConfig, dynamodb_client

RESULTS = [
    {
        "user_id": "u000042",
        "nickname": "PowderKaze42",
        "score": 0.91,
        "rank": 1,
        "breakdown": {"skill": 1, "location": 1, "availability": 1, "role": 1, "knowledge": 0.95},
    },
    {
        "user_id": "u000007",
        "nickname": "SoraRidge7",
        "score": 0.74,
        "rank": 2,
        "breakdown": {"skill": 1, "location": 0.5, "availability": 0.2, "role": 1, "knowledge": 0.7},
    },
]


def iso(moment: dt.datetime) -> str:
    return utc_now_iso(moment)


def ago(**delta: float) -> str:
    return iso(dt.datetime.now(dt.UTC) - dt.timedelta(**delta))


# --- AWS: credentials, moto in server mode, a table per test ----------------------------------------


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, settings) -> None:
    fake_aws_credentials(monkeypatch, REGION)
    settings.AWS_REGION = REGION


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@dataclass
class StateTable:
    """The test's view of `matching-workflow-state`: writes items as the durable side would."""

    name: str
    client: Any
    store: WorkflowStateStore

    def put(
        self,
        search: Search | str,
        *,
        status: str = "running",
        version: int = 2,
        attempt: int = 1,
        updated_at: str | None = None,
        timeline: list[dict] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Write an item exactly as given (no version bump), e.g. with an `updated_at` in the past."""
        search_id = str(search.pk if isinstance(search, Search) else search)
        updated_at = updated_at or utc_now_iso()
        item = {
            "search_id": search_id,
            "attempt": attempt,
            "status": status,
            "version": version,
            "execution_name": f"{search_id}-a{attempt}",
            "execution_arn": fields.pop("execution_arn", f"arn:local:durable:{search_id}-a{attempt}"),
            "created_at": updated_at,
            "updated_at": updated_at,
            "sync_bucket": "all",
            "timeline": timeline
            if timeline is not None
            else [
                {"at": updated_at, "step": "start", "event": "dispatched", "detail": {"attempt": attempt}},
                {"at": updated_at, "step": "mark-running", "event": "running", "detail": None},
            ],
            "error": None,
            "results": None,
            **fields,
        }
        self.client.put_item(TableName=self.name, Item=serialize_item(item))
        return item

    def update(self, search: Search | str, **changes: Any) -> dict[str, Any]:
        """A versioned write, as the workflow makes one: version + 1, `updated_at` now."""
        from workflows.durable.state import Changes

        search_id = str(search.pk if isinstance(search, Search) else search)
        timeline = changes.pop("timeline", [])
        item = self.store.require(search_id)
        return self.store.update(
            search_id,
            int(item["version"]),
            Changes(set=changes, timeline=timeline),
            previous_updated_at=item.get("updated_at"),
            previous_timeline=item.get("timeline") or [],
        )

    def delete(self, search: Search | str) -> None:
        search_id = str(search.pk if isinstance(search, Search) else search)
        self.client.delete_item(TableName=self.name, Key={"search_id": {"S": search_id}})


@pytest.fixture
def state(moto_endpoint, monkeypatch, settings, aws_env) -> StateTable:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint)
    name = f"matching-workflow-state-{uuid.uuid4().hex[:10]}"
    create_table(client, name)
    settings.MATCHING_WORKFLOW_STATE_TABLE = name
    settings.MATCHING_MIRROR_SYNC_SKEW_SECONDS = 5
    return StateTable(name=name, client=client, store=WorkflowStateStore(name, client))


class RequestCounter:
    """Counts the HTTP requests a botocore client sends (a `before-send` hook), by operation."""

    def __init__(self, client: Any):
        self.operations: list[str] = []
        client.meta.events.register("before-send.dynamodb", self._count)

    def _count(self, request: Any, **kwargs: Any) -> None:
        self.operations.append(request.headers.get("X-Amz-Target", b"").decode().split(".")[-1])

    def __len__(self) -> int:
        return len(self.operations)


@pytest.fixture
def dynamo_requests(state) -> Callable[[DynamoConfig | None], RequestCounter]:
    """Count requests on the console's cached client for a config (default: the sync's)."""

    def counter(config: DynamoConfig | None = None) -> RequestCounter:
        return RequestCounter(dynamodb_client(config or DynamoConfig.from_settings()))

    return counter


# --- the Lambda durable-execution read API (scripted) --------------------------------------------


@dataclass
class FakeExecution:
    arn: str
    status: str = "RUNNING"
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    ended: dt.datetime | None = None
    error: dict[str, str] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def _error_type(name: str) -> dict[str, str]:
    return {"x-amzn-errortype": name}


class FakeLambda:
    """GetDurableExecution and GetDurableExecutionHistory over HTTP, in Lambda's REST-JSON shapes, so
    the console's real boto3 client serialises and parses them."""

    def __init__(self) -> None:
        self.executions: dict[str, FakeExecution] = {}
        self.requests: list[tuple[str, str]] = []
        self.failing = False
        self.on_get: Callable[[str], None] | None = None
        fake = self

        class Handler(FakeHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                segments = parts.path.strip("/").split("/")
                if segments[:2] != ["2025-12-01", "durable-executions"] or len(segments) not in (3, 4):
                    self.reply(404, {"message": "no route"}, headers=_error_type("UnknownOperationException"))
                    return
                arn = unquote(segments[2])
                operation = "history" if len(segments) == 4 else "get"
                fake.requests.append((operation, arn))
                if fake.failing:
                    self.reply(503, {"message": "scripted outage"}, headers=_error_type("ServiceException"))
                    return
                execution = fake.executions.get(arn)
                if execution is None:
                    self.reply(
                        404,
                        {"Type": "User", "message": "Durable Execution does not exist"},
                        headers=_error_type("ResourceNotFoundException"),
                    )
                    return
                if operation == "get":
                    if fake.on_get:
                        fake.on_get(arn)
                    self.reply(200, fake._describe(execution))
                    return
                query = parse_qs(parts.query)
                size = int(query.get("MaxItems", ["1000"])[0])
                start = int(query.get("Marker", ["0"])[0])
                page = execution.events[start : start + size]
                body: dict[str, Any] = {"Events": page}
                if start + size < len(execution.events):
                    body["NextMarker"] = str(start + size)
                self.reply(200, body)

        self._server = LoopbackHttpServer(Handler)
        self.url = self._server.url

    @staticmethod
    def _describe(execution: FakeExecution) -> dict[str, Any]:
        body: dict[str, Any] = {
            "DurableExecutionArn": execution.arn,
            "DurableExecutionName": execution.arn.rsplit(":", 1)[-1],
            "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:matching-workflow:$LATEST",
            "Status": execution.status,
            "StartTimestamp": execution.started.timestamp(),
        }
        if execution.ended:
            body["EndTimestamp"] = execution.ended.timestamp()
        if execution.error:
            body["Error"] = execution.error
        return body

    def add(self, arn: str, status: str = "RUNNING", **fields: Any) -> FakeExecution:
        if status != "RUNNING":
            fields.setdefault("ended", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30))
        execution = FakeExecution(arn=arn, status=status, **fields)
        self.executions[arn] = execution
        return execution

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def lambda_api(monkeypatch, aws_env) -> Iterator[FakeLambda]:
    fake = FakeLambda()
    fake.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", fake.url)
    yield fake
    fake.stop()


def history_event(event_id: int, event_type: str, name: str = "", seconds_ago: float = 60, **details: Any) -> dict:
    event = {
        "EventId": event_id,
        "EventType": event_type,
        "Id": f"op-{event_id}",
        "EventTimestamp": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)).timestamp(),
    }
    if name:
        event["Name"] = name
    event.update(details)
    return event


# --- searches ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_dispatch(monkeypatch) -> None:
    stub_dispatch_send(monkeypatch)


@pytest.fixture
def make_search(resorts) -> Callable[..., Search]:
    """A search submitted through the service, then placed on an engine/status as a test needs."""

    def make(
        *, engine: str = Engine.DURABLE, status: str = "pending", idle_seconds: float = 0, seeker_id: str = "owner-1"
    ) -> Search:
        search = search_submit(seeker_id=seeker_id, preferences=PREFS)
        updated = timezone.now() - dt.timedelta(seconds=idle_seconds)
        # Test setup only: put the search where the scenario starts (services would need a whole run).
        Search.objects.filter(pk=search.pk).update(engine=engine, status=status, updated_at=updated)
        search.refresh_from_db()
        return search

    return make
