"""The console's one module for DynamoDB: reads of the durable engine's state table.

The console only reads `matching-workflow-state`; the Durable API and the workflow are its writers.
The item layout, (de)serialisation and table creation live in `workflows.durable.state` (shared
with the Lambda side); this module adds the console's typed config, its own exception types and
the paginated reads the mirror needs. `AWS_ENDPOINT_URL_DYNAMODB` is honoured by botocore itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from workflows.durable.state import (
    DEFAULT_TABLE_NAME,
    SYNC_BUCKET,
    SYNC_INDEX,
    StateStoreError,
    WorkflowStateStore,
    deserialize_item,
)
from workflows.durable_console.aws import cached_client

logger = logging.getLogger(__name__)


class DynamoStateError(Exception):
    """Base class: reading the workflow state table failed."""


class DynamoConfigError(DynamoStateError):
    """The console's DynamoDB settings are incomplete or wrong."""


class DynamoStateUnavailable(DynamoStateError):
    """DynamoDB could not be reached, throttled us past botocore's retries, or refused the request."""


@dataclass(frozen=True)
class DynamoConfig:
    table_name: str = DEFAULT_TABLE_NAME
    region: str = ""
    page_size: int = 1000  # items per Query/Scan request (DynamoDB also stops a page at 1 MB)
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_attempts: int = 4

    @classmethod
    def from_settings(cls, **overrides: Any) -> DynamoConfig:
        region = settings.AWS_REGION  # AWS_REGION, else AWS_DEFAULT_REGION (snowbuddy/settings.py)
        if not region:
            raise DynamoConfigError("AWS_REGION (or AWS_DEFAULT_REGION) is required to read the workflow state table")
        values: dict[str, Any] = {
            "table_name": settings.MATCHING_WORKFLOW_STATE_TABLE,
            "region": region,
            "page_size": int(settings.MATCHING_MIRROR_PAGE_SIZE),
        }
        values.update(overrides)
        if not 1 <= values["page_size"] <= 10_000:
            raise DynamoConfigError(f"page size must be 1..10000, got {values['page_size']}")
        return cls(**values)

    @classmethod
    def for_reads_on_request(cls) -> DynamoConfig:
        """Tight limits for a read made while an API request waits (one try, short timeouts)."""
        timeout = int(settings.MATCHING_MIRROR_REFRESH_TIMEOUT_MS) / 1000
        return cls.from_settings(connect_timeout=timeout, read_timeout=timeout, max_attempts=1)


def dynamodb_client(config: DynamoConfig) -> Any:
    """A low-level client (thread-safe), one per process and configuration."""
    return cached_client(
        "dynamodb",
        region=config.region,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_attempts=config.max_attempts,
        max_pool_connections=20,
    )


# What the mirror reads of an item. Leaves out what only the workflow needs (preferences,
# candidates, the vetting token's hash, dispatch bookkeeping): less to transfer and to parse.
SYNC_ATTRIBUTES = (
    "search_id",
    "attempt",
    "status",
    "version",
    "execution_name",
    "execution_arn",
    "error",
    "results",
    "started_at",
    "finished_at",
    "updated_at",
    "timeline",
    "callback_delivery",
)
_PROJECTION = {
    "ProjectionExpression": ", ".join(f"#p{i}" for i in range(len(SYNC_ATTRIBUTES))),
    "ExpressionAttributeNames": {f"#p{i}": name for i, name in enumerate(SYNC_ATTRIBUTES)},
}


@dataclass
class Page:
    items: list[dict[str, Any]]
    scanned: int  # items DynamoDB read for this page (before any filter)
    last: bool


class WorkflowStateReader:
    """Reads of the state table: one item, a batch, the sync index since a watermark, or a full scan."""

    def __init__(self, config: DynamoConfig, client: Any | None = None):
        self.config = config
        self.client = client if client is not None else dynamodb_client(config)
        self._store = WorkflowStateStore(config.table_name, self.client)

    @classmethod
    def from_settings(cls, **overrides: Any) -> WorkflowStateReader:
        return cls(DynamoConfig.from_settings(**overrides))

    def get(self, search_id: str) -> dict[str, Any] | None:
        try:
            return self._store.get(search_id)
        except (StateStoreError, BotoCoreError) as exc:
            raise DynamoStateUnavailable(f"GetItem {search_id}: {exc}") from exc

    def batch_get(self, search_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        try:
            return self._store.batch_get(search_ids)
        except (StateStoreError, BotoCoreError) as exc:
            raise DynamoStateUnavailable(f"BatchGetItem: {exc}") from exc

    def changed_since(self, watermark: str) -> Iterator[Page]:
        """Pages of items with `updated_at >= watermark`, oldest first, following LastEvaluatedKey."""
        params: dict[str, Any] = {
            "TableName": self.config.table_name,
            "IndexName": SYNC_INDEX,
            "KeyConditionExpression": "#sb = :b AND #ua >= :w",
            "ExpressionAttributeValues": {":b": {"S": SYNC_BUCKET}, ":w": {"S": watermark}},
            "Limit": self.config.page_size,
            "ProjectionExpression": _PROJECTION["ProjectionExpression"],
            "ExpressionAttributeNames": {
                **_PROJECTION["ExpressionAttributeNames"],
                "#sb": "sync_bucket",
                "#ua": "updated_at",
            },
        }
        yield from self._pages("query", params)

    def scan(self) -> Iterator[Page]:
        """Pages of the whole table (Scan), following LastEvaluatedKey."""
        yield from self._pages(
            "scan", {"TableName": self.config.table_name, "Limit": self.config.page_size, **_PROJECTION}
        )

    def _pages(self, operation: str, params: dict[str, Any]) -> Iterator[Page]:
        call = getattr(self.client, operation)
        while True:
            try:
                response = call(**params)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                raise DynamoStateUnavailable(
                    f"{operation} {self.config.table_name}: {error.get('Code')}: {error.get('Message')}"
                ) from exc
            except BotoCoreError as exc:
                raise DynamoStateUnavailable(f"{operation} {self.config.table_name}: {exc}") from exc
            last_key = response.get("LastEvaluatedKey")
            yield Page(
                items=[deserialize_item(raw) for raw in response.get("Items", [])],
                scanned=int(response.get("ScannedCount", response.get("Count", 0))),
                last=not last_key,
            )
            if not last_key:
                return
            params = {**params, "ExclusiveStartKey": last_key}
