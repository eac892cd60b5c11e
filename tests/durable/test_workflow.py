"""The durable workflow, run by AWS's in-process durable runner against moto DynamoDB (server mode)
and local HTTP stand-ins for the console (its matches endpoint), GlobalCoach and the callback receiver."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import boto3
import pytest

from matching.engine import Profile, SearchRequest, match_baseline
from tests.helpers.polling import wait_for
from workflows.durable import signing, workflow
from workflows.durable.state import WorkflowStateStore, execution_name_for

from .conftest import (
    INAWASHIRO,
    NEKOMA,
    WEBHOOK_SECRET,
    FakeConsole,
    FakeReceiver,
    console_ranking,
    fixture_resort_regions,
    profile,
)

BUDDY_PREFS = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 8, "resorts": [INAWASHIRO], "limit": 10}
COACH_PREFS = {
    "role": "coach",
    "skill_level_min": 3,
    "skill_level_max": 9,
    "resorts": [INAWASHIRO],
    "vetting_required": True,
    "limit": 10,
}


def candidates() -> list[dict[str, Any]]:
    return [
        profile("coach-a", skill=6, role="coach"),
        profile("coach-b", skill=7, role="coach", resorts=(NEKOMA,)),  # same region only
        profile("coach-c", skill=5, role="coach"),
        profile("coach-d", skill=4, role="coach", resorts=(NEKOMA,)),
        profile("buddy-e", skill=5, role="buddy"),
        profile("closed-f", skill=5, role="coach", open_to_matching=False),
        profile("expert-g", skill=10, role="coach"),  # out of the skill range
    ]


def start(runner: Any, search_id: str, prefs: dict[str, Any], receiver: FakeReceiver, **extra: Any) -> str:
    event = {
        "search_id": search_id,
        "attempt": 1,
        "seeker_id": "seeker-1",
        "preferences": prefs,
        "callback_webhook": receiver.url,
        "timeout_seconds": 3600,
        **extra,
    }
    return runner.run_async(input=json.dumps(event), execution_name=execution_name_for(search_id, event["attempt"]))


def expected_ranking(prefs: dict[str, Any], profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    request = SearchRequest.from_preferences("seeker-1", prefs)
    regions = fixture_resort_regions()
    parsed = [Profile.from_dict(p) for p in profiles]
    nicknames = {p.user_id: p.nickname for p in parsed}
    return [{**m.to_dict(), "nickname": nicknames[m.user_id]} for m in match_baseline(request, parsed, regions)]


def awaiting_vetting(store: WorkflowStateStore, search_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (item := store.get(search_id)) and item["status"] == "awaiting_vetting" and item,
        timeout=15,
    )


@pytest.fixture
def seeded(console: FakeConsole) -> FakeConsole:
    console.profiles = candidates()
    return console


@pytest.mark.usefixtures("workflow_env")
def test_search_without_vetting_succeeds_with_the_engines_ranking_and_a_signed_callback(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver
) -> None:
    arn = start(runner, "search-plain", BUDDY_PREFS, receiver)
    result = runner.wait_for_result(arn, timeout=30)

    assert result.status.value == "SUCCEEDED"
    assert json.loads(result.result) == {
        "search_id": "search-plain",
        "attempt": 1,
        "status": "succeeded",
        "version": json.loads(result.result)["version"],
        "callback_delivery": "delivered",
    }
    item = store.get("search-plain")
    expected = expected_ranking(BUDDY_PREFS, seeded.profiles)
    assert expected, "the fixture data must produce matches"
    assert item["status"] == "succeeded"
    assert item["results"] == expected
    # Five of the seven pass the filters (closed-f is closed, expert-g out of the skill range).
    assert item["candidate_count"] == console_ranking("seeker-1", BUDDY_PREFS, seeded.profiles)["candidate_count"] == 5
    assert item["error"] is None
    assert item["execution_name"] == "search-plain-a1"
    assert item["execution_arn"] == arn
    assert item["callback_delivery"]["state"] == "delivered"
    assert "pending_callback" not in item
    assert [e["event"] for e in item["timeline"]] == ["running", "succeeded"]
    assert item["updated_at"].endswith("Z") and len(item["updated_at"]) == len("2025-01-01T00:00:00.000Z")

    [delivery] = receiver.deliveries()
    body = delivery.json()
    assert body["status"] == "succeeded"
    assert body["payload"]["results"] == expected
    assert body["search_id"] == "search-plain" and body["attempt"] == 1
    # The webhook carries the version of the terminal write; delivery bookkeeping came after it.
    assert body["version"] == item["version"] - 1
    assert delivery.headers["webhook-id"] == f"msg_search-plain-a1_v{body['version']}"
    assert signing.verify(WEBHOOK_SECRET, delivery.headers, delivery.body) == delivery.headers["webhook-id"]
    # One read of the console's ranking, with the service token.
    [request] = seeded.ranking_requests()
    assert request.path == "/internal/searches/search-plain/matches"
    assert request.headers["authorization"].startswith("Bearer ")


def checkpoint_bytes(result: Any) -> dict[str, int]:
    """Bytes each step checkpointed (its serialized result), by step name."""
    return {op.name: len(op.result or "") for op in result.operations if getattr(op, "result", None) is not None}


@pytest.mark.usefixtures("workflow_env")
def test_only_the_ranked_top_k_is_checkpointed_never_the_candidates(
    runner: Any, store: WorkflowStateStore, console: FakeConsole, receiver: FakeReceiver
) -> None:
    console.profiles = [profile(f"buddy-{i:04d}", skill=3 + i % 6, role="buddy") for i in range(3000)]
    prefs = {**BUDDY_PREFS, "limit": 20}
    result = runner.wait_for_result(start(runner, "search-many", prefs, receiver), timeout=60)

    assert result.status.value == "SUCCEEDED"
    assert [op.name for op in result.operations] == [
        "mark-running",
        "rank-candidates",
        "write-result",
        "deliver-callback",
    ]
    assert len(console.ranking_requests()) == 1
    item = store.get("search-many")
    assert item["candidate_count"] == 3000 and len(item["results"]) == 20
    assert item["results"] == expected_ranking(prefs, console.profiles)
    sizes = checkpoint_bytes(result)
    # 3,000 candidates would be ~700 KB of pages; the ranking step holds 20 matches.
    assert sizes["rank-candidates"] < 8_000, sizes
    assert sum(sizes.values()) < 16_000, sizes


@pytest.mark.usefixtures("workflow_env")
def test_a_failing_ranking_read_is_retried_and_the_search_still_succeeds(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver
) -> None:
    seeded.failures = [500]
    result = runner.wait_for_result(start(runner, "search-retry", BUDDY_PREFS, receiver), timeout=30)

    assert result.status.value == "SUCCEEDED"
    assert len(seeded.ranking_requests()) == 2
    assert result.get_step("rank-candidates").attempt == 2  # succeeded on its second attempt
    assert store.get("search-retry")["status"] == "succeeded"


@pytest.mark.usefixtures("workflow_env")
def test_a_rejected_service_token_fails_the_search_without_retrying(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver, monkeypatch
) -> None:
    monkeypatch.setenv("MATCHING_INTERNAL_TOKEN", "wrong-token")
    result = runner.wait_for_result(start(runner, "search-401", BUDDY_PREFS, receiver), timeout=30)

    assert result.status.value == "SUCCEEDED"  # the workflow did its job: it reported the failure
    assert len(seeded.ranking_requests()) == 1
    item = store.get("search-401")
    assert item["status"] == "failed"
    assert item["error"]["code"] == "candidates_unavailable"
    assert "401" in item["error"]["message"]
    assert receiver.bodies("failed")[0]["payload"]["error"]["code"] == "candidates_unavailable"


@pytest.mark.usefixtures("workflow_env")
def test_vetting_waits_for_globalcoach_and_keeps_only_approved_candidates(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver, globalcoach
) -> None:
    arn = start(runner, "search-vet-ok", COACH_PREFS, receiver)
    item = awaiting_vetting(store, "search-vet-ok")

    ranking = expected_ranking(COACH_PREFS, seeded.profiles)
    top3 = [m["user_id"] for m in ranking[:3]]
    pending = item["pending_callback"]
    assert pending["name"] == "vetting"
    assert pending["candidate_ids"] == top3
    assert pending["callback_id"] and pending["deadline"] > item["updated_at"]
    assert item["candidates"] == ranking  # staff can see whom they are vetting
    [vetting_request] = wait_for(globalcoach.vetting_requests)
    assert vetting_request["candidate_ids"] == top3
    assert vetting_request["callback_url"].endswith("/workflows/matching/vetting-callback")
    token = vetting_request["token"]
    assert token.startswith("search-vet-ok.")
    assert hashlib.sha256(token.encode()).hexdigest() == pending["token_sha256"]
    # The console was told early that the search is waiting for vetting.
    notice = wait_for(lambda: receiver.bodies("awaiting_vetting"))[0]
    assert notice["payload"]["pending_callback"]["candidate_ids"] == top3
    assert "callback_id" not in notice["payload"]["pending_callback"]

    approved = [top3[2], top3[0]]
    answer = {"approved_user_ids": approved, "rejected_user_ids": [top3[1]], "decided_by": "provider"}
    runner.send_callback_success(pending["callback_id"], json.dumps(answer).encode())
    result = runner.wait_for_result(arn, timeout=30)

    assert result.status.value == "SUCCEEDED"
    item = store.get("search-vet-ok")
    assert item["status"] == "succeeded"
    assert [m["user_id"] for m in item["results"]] == [top3[0], top3[2]]  # ranking order kept
    assert [m["rank"] for m in item["results"]] == [1, 2]
    assert "pending_callback" not in item
    assert receiver.bodies("succeeded")[0]["payload"]["results"] == item["results"]


@pytest.mark.usefixtures("workflow_env")
def test_a_vetting_rejection_fails_the_search(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver
) -> None:
    from aws_durable_execution_sdk_python.lambda_service import ErrorObject

    arn = start(runner, "search-vet-no", COACH_PREFS, receiver)
    pending = awaiting_vetting(store, "search-vet-no")["pending_callback"]
    runner.send_callback_failure(
        pending["callback_id"],
        ErrorObject(message="not certified", type="VettingRejected", data=None, stack_trace=None),
    )
    result = runner.wait_for_result(arn, timeout=30)

    assert result.status.value == "SUCCEEDED"
    item = store.get("search-vet-no")
    assert item["status"] == "failed"
    assert item["error"] == {"code": "vetting_rejected", "message": "not certified"}
    assert item["results"] is None
    assert receiver.bodies("failed")[0]["payload"]["error"]["code"] == "vetting_rejected"


@pytest.mark.usefixtures("workflow_env")
def test_a_vetting_answer_that_approves_nobody_fails_the_search(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver
) -> None:
    arn = start(runner, "search-vet-none", COACH_PREFS, receiver)
    pending = awaiting_vetting(store, "search-vet-none")["pending_callback"]
    answer = {"approved_user_ids": ["someone-not-vetted"], "rejected_user_ids": pending["candidate_ids"]}
    runner.send_callback_success(pending["callback_id"], json.dumps(answer).encode())
    runner.wait_for_result(arn, timeout=30)

    item = store.get("search-vet-none")
    assert item["status"] == "failed"
    assert item["error"]["code"] == "vetting_rejected"


@pytest.mark.usefixtures("workflow_env")
def test_no_vetting_answer_before_the_deadline_times_the_search_out(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver
) -> None:
    arn = start(runner, "search-vet-late", COACH_PREFS, receiver, timeout_seconds=2)
    result = runner.wait_for_result(arn, timeout=30)

    assert result.status.value == "SUCCEEDED"
    item = store.get("search-vet-late")
    assert item["status"] == "timed_out"
    assert item["error"]["code"] == "vetting_timeout"
    assert "pending_callback" not in item
    assert receiver.bodies("timed_out")[0]["payload"]["error"]["code"] == "vetting_timeout"


@pytest.mark.usefixtures("workflow_env")
def test_globalcoach_unreachable_after_retries_fails_the_search(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver, globalcoach
) -> None:
    globalcoach.failures = [503, 503, 503]
    result = runner.wait_for_result(start(runner, "search-vet-down", COACH_PREFS, receiver), timeout=30)

    assert result.status.value == "SUCCEEDED"
    attempts = globalcoach.vetting_requests()
    assert len(attempts) == 3  # MATCHING_FETCH_MAX_ATTEMPTS, each answered 503
    assert len({a["token"] for a in attempts}) == 1  # retries resend the same (checkpointed) token
    item = store.get("search-vet-down")
    assert item["status"] == "failed"
    assert item["error"]["code"] == "vetting_unavailable"


@pytest.mark.usefixtures("workflow_env")
def test_callback_delivery_is_retried_then_dead_lettered_and_the_execution_still_completes(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver, moto_endpoint, monkeypatch
) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_endpoint)
    queue_url = sqs.create_queue(QueueName=f"callback-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_endpoint)
    monkeypatch.setenv("MATCHING_CALLBACK_DLQ_URL", queue_url)
    receiver.status = 500
    result = runner.wait_for_result(start(runner, "search-dlq", BUDDY_PREFS, receiver), timeout=30)

    assert result.status.value == "SUCCEEDED"
    assert json.loads(result.result)["callback_delivery"] == "dead_letter"
    deliveries = receiver.deliveries()
    assert len(deliveries) == 3  # MATCHING_CALLBACK_MAX_ATTEMPTS
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1  # one message, retried
    item = store.get("search-dlq")
    assert item["status"] == "succeeded"
    delivery = item["callback_delivery"]
    assert (delivery["state"], delivery["attempts"]) == ("dead_letter", 3)
    assert "HTTP 500" in delivery["last_error"]
    assert item["timeline"][-1]["event"] == "dead_letter"
    # A copy waits in the dead-letter queue for redrive, with the exact body the console refused.
    [message] = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    dead = json.loads(message["Body"])
    assert dead["webhook_id"] == deliveries[0].headers["webhook-id"]
    assert dead["callback_webhook"] == receiver.url
    assert dead["body"].encode() == deliveries[0].body


@pytest.mark.usefixtures("workflow_env")
def test_a_search_cancelled_before_it_runs_is_left_alone(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver
) -> None:
    store.create({"search_id": "search-early-cancel", "attempt": 1, "status": "cancelled", "seeker_id": "seeker-1"})
    result = runner.wait_for_result(start(runner, "search-early-cancel", BUDDY_PREFS, receiver), timeout=30)

    assert json.loads(result.result)["callback_delivery"] == "skipped"
    assert store.get("search-early-cancel")["status"] == "cancelled"
    assert seeded.ranking_requests() == []
    assert receiver.deliveries() == []


@pytest.mark.usefixtures("workflow_env")
def test_a_search_cancelled_while_it_ran_is_not_written_over_and_gets_no_callback(store: WorkflowStateStore) -> None:
    store.create({"search_id": "search-late-cancel", "attempt": 1, "status": "cancelled", "seeker_id": "seeker-1"})
    job = workflow.SearchJob.from_event(
        {"search_id": "search-late-cancel", "attempt": 1, "seeker_id": "seeker-1", "preferences": BUDDY_PREFS}
    )

    final = workflow.write_result(workflow.WorkflowConfig.from_env(), job, {"status": "succeeded", "results": []})

    assert final == {"written": False, "status": "cancelled", "reason": "cancelled"}  # the handler sends nothing
    assert store.get("search-late-cancel")["status"] == "cancelled"


@pytest.mark.usefixtures("workflow_env")
def test_a_second_execution_of_the_same_attempt_changes_nothing(
    runner: Any, store: WorkflowStateStore, seeded: FakeConsole, receiver: FakeReceiver
) -> None:
    first = start(runner, "search-twice", BUDDY_PREFS, receiver)
    second = runner.run_async(
        input=json.dumps(
            {
                "search_id": "search-twice",
                "attempt": 1,
                "seeker_id": "seeker-1",
                "preferences": BUDDY_PREFS,
                "callback_webhook": receiver.url,
            }
        ),
        execution_name="search-twice-a1",
    )
    outcomes = [json.loads(runner.wait_for_result(arn, timeout=30).result) for arn in (first, second)]

    assert sorted(o["callback_delivery"] for o in outcomes) == ["delivered", "skipped"]
    item = store.get("search-twice")
    assert item["status"] == "succeeded"
    assert item["execution_arn"] in (first, second)
    assert len(receiver.bodies("succeeded")) == 1


@pytest.mark.usefixtures("workflow_env")
def test_missing_configuration_fails_the_search_with_a_clear_error(
    runner: Any, store: WorkflowStateStore, receiver: FakeReceiver, monkeypatch
) -> None:
    monkeypatch.delenv("MATCHING_INTERNAL_TOKEN")
    store.create({"search_id": "search-misconfigured", "attempt": 1, "status": "dispatched", "seeker_id": "s"})
    result = runner.wait_for_result(start(runner, "search-misconfigured", BUDDY_PREFS, receiver), timeout=30)

    assert result.status.value == "FAILED"
    assert "MATCHING_INTERNAL_TOKEN" in result.error.message
    item = store.get("search-misconfigured")
    assert item["status"] == "failed"
    assert item["error"]["code"] == "configuration_error"
    assert "MATCHING_INTERNAL_TOKEN" in item["error"]["message"]


def test_config_reports_every_missing_variable_at_once() -> None:
    with pytest.raises(workflow.ConfigError) as exc:
        workflow.WorkflowConfig.from_env({})
    assert "MATCHING_CONSOLE_BASE_URL" in str(exc.value)
    assert "MATCHING_INTERNAL_TOKEN" in str(exc.value)
    assert "MATCHING_WEBHOOK_SECRET" in str(exc.value)


def test_config_rejects_a_malformed_number() -> None:
    env = {
        "MATCHING_CONSOLE_BASE_URL": "http://console",
        "MATCHING_INTERNAL_TOKEN": "t",
        "MATCHING_WEBHOOK_SECRET": "raw-secret",
        "MATCHING_VETTING_TOP_N": "lots",
    }
    with pytest.raises(workflow.ConfigError, match="MATCHING_VETTING_TOP_N"):
        workflow.WorkflowConfig.from_env(env)


@pytest.mark.parametrize(
    ("search_id", "attempt", "expected"),
    [
        ("0b6f3c1e-8a0e-4c0b-9a57-3f1f2a9d2b11", 2, "0b6f3c1e-8a0e-4c0b-9a57-3f1f2a9d2b11-a2"),
        ("x" * 64, 1, None),
        ("has spaces/and:colons", 3, None),
    ],
)
def test_execution_names_are_valid_and_deterministic(search_id: str, attempt: int, expected: str | None) -> None:
    name = execution_name_for(search_id, attempt)
    assert name == execution_name_for(search_id, attempt)
    assert 1 <= len(name) <= 64
    assert set(name) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    assert name.endswith(f"-a{attempt}")
    if expected:
        assert name == expected
    assert execution_name_for(search_id, attempt + 1) != name
