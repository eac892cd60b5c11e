"""DynamoDB state store for table ``matching-workflow-state`` (see docs/durable-state.md).

One item per search (partition key ``search_id``). Every write is conditional: creation on
``attribute_not_exists(search_id)``, every later write on ``version = :expected``, and each write
bumps ``version`` by one and moves ``updated_at`` forward. Two writers racing (the workflow's
final write and a cancel, say) therefore give one winner; the loser sees ``VersionConflict`` and
re-reads. ``mutate`` packages that read-modify-write loop.

The GSI ``sync-index`` on (``sync_bucket``, ``updated_at``) lets the console pull what changed
since a watermark. Every item uses the single bucket ``"all"``: the whole table's change feed is
one ordered query, which at this service's write rate (a handful of writes per search) stays far
below one GSI partition's limit, and the console never has to enumerate shards.

Uses the low-level client (thread-safe, unlike boto3 resources) so one client can be shared by
the threads of a Lambda invocation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

DEFAULT_TABLE_NAME = "matching-workflow-state"
SYNC_INDEX = "sync-index"
SYNC_BUCKET = "all"
MAX_TIMELINE = 100  # keeps the item well under DynamoDB's 400 KB item limit

# Lifecycle (ARCHITECTURE.md). The console's `pending` never reaches this table.
DISPATCHED = "dispatched"
RUNNING = "running"
AWAITING_VETTING = "awaiting_vetting"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
ACTIVE_STATUSES = frozenset({DISPATCHED, RUNNING, AWAITING_VETTING})
TERMINAL_STATUSES = frozenset({SUCCEEDED, FAILED, CANCELLED, TIMED_OUT})

# Fields never shown to API clients: the vetting token is a bearer credential (only its hash is
# stored), sync_bucket is an index detail.
_PRIVATE_PENDING_FIELDS = ("token_sha256",)
_PRIVATE_FIELDS = ("sync_bucket",)

_EXECUTION_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class StateStoreError(Exception):
    """Base class of the state store's errors."""


class AlreadyExists(StateStoreError):
    """A create found an item with that search_id."""


class VersionConflict(StateStoreError):
    """The item changed (or vanished) since it was read: re-read and decide again."""


class ItemNotFound(StateStoreError):
    """No item for that search_id."""


class StoreUnavailable(StateStoreError):
    """DynamoDB could not be reached or refused the request for a reason other than a condition."""


def utc_now_iso(moment: dt.datetime | None = None) -> str:
    """UTC ISO-8601 with milliseconds and a ``Z``, e.g. ``2025-01-31T09:15:02.123Z``."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _next_updated_at(previous: str | None) -> str:
    # Writers run on different hosts; never let an item's updated_at go backwards, or a console
    # that pulls by watermark could skip a change.
    now = dt.datetime.now(dt.UTC)
    if previous:
        try:
            floor = parse_iso(previous) + dt.timedelta(milliseconds=1)
        except ValueError:
            floor = now
        now = max(now, floor)
    return utc_now_iso(now)


def execution_name_for(search_id: str, attempt: int) -> str:
    """The durable execution name for (search_id, attempt): ``[A-Za-z0-9_-]{1,64}``, deterministic.

    Readable (``<search_id>-a<attempt>``) when that fits, else a hash of the search id.
    """
    suffix = f"-a{int(attempt)}"
    if search_id and set(search_id) <= _EXECUTION_NAME_CHARS and len(search_id) + len(suffix) <= 64:
        return search_id + suffix
    digest = hashlib.sha256(search_id.encode("utf-8")).hexdigest()[: 64 - len(suffix) - 2]
    return f"s-{digest}{suffix}"


def timeline_entry(step: str, event: str, detail: Any = None, *, at: str | None = None) -> dict[str, Any]:
    return {"at": at or utc_now_iso(), "step": step, "event": event, "detail": detail}


# --- (de)serialisation -------------------------------------------------------------------------


def _to_dynamo_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (str, int, Decimal)):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {str(k): _to_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo_value(v) for v in value]
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def _from_dynamo_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_from_dynamo_value(v) for v in value]
    if isinstance(value, set):
        return sorted(_from_dynamo_value(v) for v in value)
    return value


def serialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo_value(v)) for k, v in item.items()}


def deserialize_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo_value(_deserializer.deserialize(v)) for k, v in raw.items()}


# --- the store -----------------------------------------------------------------------------------


@dataclass
class Changes:
    """What a ``mutate`` callback wants written: fields to set, fields to remove, timeline entries."""

    set: dict[str, Any] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    # Timeline entries to take out again (a claim released after it failed): needs the item read.
    untimeline: list[dict[str, Any]] = field(default_factory=list)


def make_dynamodb_client(region: str | None = None, endpoint_url: str | None = None) -> Any:
    """A DynamoDB client. ``AWS_ENDPOINT_URL_DYNAMODB`` (honoured by botocore) points it at moto."""
    kwargs: dict[str, Any] = {
        "config": Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)
    }
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return boto3.client("dynamodb", **kwargs)


class WorkflowStateStore:
    """Versioned access to the search items. All reads are strongly consistent."""

    def __init__(self, table_name: str = DEFAULT_TABLE_NAME, client: Any | None = None) -> None:
        self.table_name = table_name
        self.client = client if client is not None else make_dynamodb_client()

    @classmethod
    def from_env(cls, client: Any | None = None) -> WorkflowStateStore:
        return cls(os.environ.get("MATCHING_STATE_TABLE") or DEFAULT_TABLE_NAME, client)

    # reads

    def get(self, search_id: str) -> dict[str, Any] | None:
        try:
            response = self.client.get_item(
                TableName=self.table_name, Key={"search_id": {"S": search_id}}, ConsistentRead=True
            )
        except ClientError as exc:
            raise StoreUnavailable(_client_error_message(exc)) from exc
        raw = response.get("Item")
        return deserialize_item(raw) if raw else None

    def require(self, search_id: str) -> dict[str, Any]:
        item = self.get(search_id)
        if item is None:
            raise ItemNotFound(search_id)
        return item

    def batch_get(self, search_ids: Sequence[str], *, max_rounds: int = 8) -> dict[str, dict[str, Any]]:
        """Items by search_id (missing ones are absent). Follows ``UnprocessedKeys`` with backoff."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(search_ids))
        for start in range(0, len(unique), 100):  # BatchGetItem takes at most 100 keys
            pending: dict[str, Any] = {
                self.table_name: {
                    "Keys": [{"search_id": {"S": sid}} for sid in unique[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            for round_ in range(max_rounds):
                try:
                    response = self.client.batch_get_item(RequestItems=pending)
                except ClientError as exc:
                    raise StoreUnavailable(_client_error_message(exc)) from exc
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    item = deserialize_item(raw)
                    found[item["search_id"]] = item
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                # Throttled keys come back unprocessed; back off before asking again.
                time.sleep(min(1.0, 0.05 * (2**round_)) * (0.5 + random.random() / 2))  # noqa: S311
            else:
                raise StoreUnavailable("BatchGetItem kept returning unprocessed keys")
        return found

    def changed_since(self, watermark: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """Items whose ``updated_at`` is at or after ``watermark``, oldest first (the console's pull)."""
        try:
            response = self.client.query(
                TableName=self.table_name,
                IndexName=SYNC_INDEX,
                KeyConditionExpression="sync_bucket = :b AND updated_at >= :w",
                ExpressionAttributeValues={":b": {"S": SYNC_BUCKET}, ":w": {"S": watermark}},
                Limit=limit,
            )
        except ClientError as exc:
            raise StoreUnavailable(_client_error_message(exc)) from exc
        return [deserialize_item(raw) for raw in response.get("Items", [])]

    # writes

    def create(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Write a new item at version 1; ``AlreadyExists`` if the search_id is taken."""
        now = utc_now_iso()
        new = dict(item)
        new.update(version=1, created_at=now, updated_at=now, sync_bucket=SYNC_BUCKET)
        new.setdefault("timeline", [])
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=serialize_item(new),
                ConditionExpression="attribute_not_exists(search_id)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise AlreadyExists(item["search_id"]) from exc
            raise StoreUnavailable(_client_error_message(exc)) from exc
        return new

    def replace(self, item: Mapping[str, Any], expected_version: int) -> dict[str, Any]:
        """Overwrite the whole item (a new attempt), conditional on ``expected_version``."""
        new = dict(item)
        new.update(version=expected_version + 1, sync_bucket=SYNC_BUCKET)
        new["updated_at"] = _next_updated_at(item.get("updated_at"))
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=serialize_item(new),
                ConditionExpression="version = :expected",
                ExpressionAttributeValues={":expected": {"N": str(expected_version)}},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise VersionConflict(item["search_id"]) from exc
            raise StoreUnavailable(_client_error_message(exc)) from exc
        return new

    def update(
        self,
        search_id: str,
        expected_version: int,
        changes: Changes,
        *,
        previous_updated_at: str | None = None,
        previous_timeline: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Apply ``changes`` if the item is still at ``expected_version``; returns the new item.

        Timeline entries are appended to ``previous_timeline`` (capped) when the caller read the
        item, else appended in place with ``list_append``.
        """
        to_set = {k: v for k, v in changes.set.items() if k != "timeline"}
        to_set["version"] = expected_version + 1
        to_set["updated_at"] = _next_updated_at(previous_updated_at)
        to_set["sync_bucket"] = SYNC_BUCKET

        names: dict[str, str] = {"#version": "version"}
        values: dict[str, Any] = {":expected": {"N": str(expected_version)}}
        set_parts: list[str] = []
        for i, (key, value) in enumerate(to_set.items()):
            names[f"#s{i}"] = key
            values[f":s{i}"] = _serializer.serialize(_to_dynamo_value(value))
            set_parts.append(f"#s{i} = :s{i}")
        if changes.untimeline and previous_timeline is None:
            raise ValueError("removing timeline entries needs the timeline that was read")
        if changes.timeline or changes.untimeline:
            names["#tl"] = "timeline"
            if previous_timeline is not None:
                kept = [e for e in previous_timeline if e not in changes.untimeline]
                timeline = [*kept, *changes.timeline][-MAX_TIMELINE:]
                values[":tl"] = _serializer.serialize(_to_dynamo_value(timeline))
                set_parts.append("#tl = :tl")
            else:
                values[":tl"] = _serializer.serialize(_to_dynamo_value(changes.timeline))
                values[":empty"] = {"L": []}
                set_parts.append("#tl = list_append(if_not_exists(#tl, :empty), :tl)")
        remove_parts: list[str] = []
        for i, key in enumerate(k for k in changes.remove if k not in to_set and k != "timeline"):
            names[f"#r{i}"] = key
            remove_parts.append(f"#r{i}")
        expression = "SET " + ", ".join(set_parts)
        if remove_parts:
            expression += " REMOVE " + ", ".join(remove_parts)
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key={"search_id": {"S": search_id}},
                UpdateExpression=expression,
                ConditionExpression="#version = :expected",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise VersionConflict(search_id) from exc
            raise StoreUnavailable(_client_error_message(exc)) from exc
        return deserialize_item(response["Attributes"])

    def mutate(
        self,
        search_id: str,
        decide: Callable[[dict[str, Any] | None], Changes | None],
        *,
        max_tries: int = 6,
    ) -> tuple[dict[str, Any] | None, bool]:
        """Read, let ``decide`` choose the changes, write under the version condition; repeat on conflict.

        ``decide`` gets the current item (None if absent) and returns ``Changes`` or None for
        "nothing to do"; it may raise to abort. Returns (item after the call, whether we wrote).
        ``decide`` must not create items: a missing item stays missing unless it raises.
        """
        for attempt in range(max_tries):
            item = self.get(search_id)
            changes = decide(item)
            if changes is None or item is None:
                return item, False
            try:
                return (
                    self.update(
                        search_id,
                        int(item["version"]),
                        changes,
                        previous_updated_at=item.get("updated_at"),
                        previous_timeline=item.get("timeline") or [],
                    ),
                    True,
                )
            except VersionConflict:
                if attempt == max_tries - 1:
                    raise
                time.sleep(0.01 * (attempt + 1) * (0.5 + random.random()))  # noqa: S311
        raise VersionConflict(search_id)  # pragma: no cover - loop always returns or raises


def public_view(item: Mapping[str, Any], *, include_candidates: bool = False) -> dict[str, Any]:
    """The item as API clients see it: no credentials, no index bookkeeping."""
    view = {k: v for k, v in item.items() if k not in _PRIVATE_FIELDS}
    if not include_candidates:
        view.pop("candidates", None)
    pending = view.get("pending_callback")
    if isinstance(pending, Mapping):
        view["pending_callback"] = {k: v for k, v in pending.items() if k not in _PRIVATE_PENDING_FIELDS}
    return view


def create_table(client: Any, table_name: str = DEFAULT_TABLE_NAME, *, wait: bool = True) -> None:
    """Create the table and its sync GSI (on-demand billing). A no-op if it already exists."""
    try:
        client.create_table(
            TableName=table_name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "search_id", "AttributeType": "S"},
                {"AttributeName": "sync_bucket", "AttributeType": "S"},
                {"AttributeName": "updated_at", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "search_id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": SYNC_INDEX,
                    "KeySchema": [
                        {"AttributeName": "sync_bucket", "KeyType": "HASH"},
                        {"AttributeName": "updated_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    if wait:
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _client_error_message(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
