"""The Durable API handler, driving real durable executions (AWS's in-process runner behind a
boto3-shaped Lambda client) and moto DynamoDB in server mode."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import pytest
from botocore.stub import Stubber

from matching.engine import Profile, SearchRequest, match_baseline
from tests.helpers.polling import wait_for
from workflows.durable import api as durable_api
from workflows.durable.state import WorkflowStateStore

from .conftest import (
    INAWASHIRO,
    FakeConsole,
    FakeGlobalCoach,
    FakeReceiver,
    RunnerLambdaClient,
    call,
    fixture_resort_regions,
    function_url_event,
    profile,
)

BUDDY_PREFS = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 8, "resorts": [INAWASHIRO]}
COACH_PREFS = {**BUDDY_PREFS, "role": "coach", "vetting_required": True}


@pytest.fixture(autouse=True)
def seeded(console: FakeConsole) -> FakeConsole:
    console.profiles = [
        profile("coach-a", skill=6),
        profile("coach-b", skill=5),
        profile("coach-c", skill=4),
        profile("buddy-d", skill=5, role="buddy"),
    ]
    return console


def start_body(search_id: str, receiver: FakeReceiver, prefs: dict[str, Any] | None = None, **extra: Any) -> dict:
    return {
        "search_id": search_id,
        "attempt": 1,
        "seeker_id": "seeker-1",
        "preferences": prefs or BUDDY_PREFS,
        "callback_webhook": receiver.url,
        "timeout_seconds": 3600,
        **extra,
    }


def expected_results(prefs: dict[str, Any], profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    request = SearchRequest.from_preferences("seeker-1", prefs)
    parsed = [Profile.from_dict(p) for p in profiles]
    nicknames = {p.user_id: p.nickname for p in parsed}
    return [
        {**m.to_dict(), "nickname": nicknames[m.user_id]}
        for m in match_baseline(request, parsed, fixture_resort_regions())
    ]


def status_of(api: durable_api.DurableApi, search_id: str) -> dict[str, Any]:
    return call(api, "GET", f"/workflows/matching/{search_id}")[1]


def settled(api: durable_api.DurableApi, search_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
    return wait_for(lambda: (body := status_of(api, search_id)).get("status") == status and body, timeout=timeout)


# --- start ------------------------------------------------------------------------------------------


def test_a_repeated_start_returns_the_same_execution_and_starts_only_one(
    durable: durable_api.DurableApi, lambda_client: RunnerLambdaClient, receiver: FakeReceiver, seeded: FakeConsole
) -> None:
    first_status, first = call(durable, "POST", "/workflows/matching/start", start_body("s-idem", receiver))
    again_status, again = call(durable, "POST", "/workflows/matching/start", start_body("s-idem", receiver))

    assert (first_status, first["created"]) == (202, True)
    assert (again_status, again["created"]) == (200, False)
    assert again["execution_name"] == first["execution_name"] == "s-idem-a1"
    assert again["execution_arn"] == first["execution_arn"] is not None
    assert len(lambda_client.invocations) == 1
    invocation = lambda_client.invocations[0]
    assert invocation["InvocationType"] == "Event"
    assert invocation["DurableExecutionName"] == "s-idem-a1"
    assert invocation["FunctionName"] == "matching-workflow:$LATEST"

    done = settled(durable, "s-idem", "succeeded")
    assert done["results"] == expected_results(BUDDY_PREFS, seeded.profiles)
    wait_for(lambda: receiver.bodies("succeeded"))  # delivered in the step after the write
    assert len(receiver.bodies("succeeded")) == 1
    # Even after it finished, a late repeat neither restarts nor changes it.
    assert call(durable, "POST", "/workflows/matching/start", start_body("s-idem", receiver))[0] == 200
    assert len(lambda_client.invocations) == 1


def test_concurrent_starts_of_one_attempt_invoke_exactly_once(
    durable: durable_api.DurableApi, lambda_client: RunnerLambdaClient, receiver: FakeReceiver
) -> None:
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait(timeout=5)
        statuses.append(call(durable, "POST", "/workflows/matching/start", start_body("s-race", receiver))[0])

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert sorted(statuses) == [200] * 5 + [202]
    assert len(lambda_client.invocations) == 1
    settled(durable, "s-race", "succeeded")


def test_the_same_attempt_with_different_input_is_a_conflict(
    durable: durable_api.DurableApi, receiver: FakeReceiver
) -> None:
    call(durable, "POST", "/workflows/matching/start", start_body("s-conflict", receiver))
    changed = start_body("s-conflict", receiver, {**BUDDY_PREFS, "skill_level_max": 9})
    status, body = call(durable, "POST", "/workflows/matching/start", changed)
    assert (status, body["error"]) == (409, "attempt_conflict")


def test_a_new_attempt_needs_the_previous_one_finished_and_then_runs_afresh(
    durable: durable_api.DurableApi, lambda_client: RunnerLambdaClient, receiver: FakeReceiver
) -> None:
    call(durable, "POST", "/workflows/matching/start", start_body("s-retry", receiver, COACH_PREFS))
    wait_for(lambda: status_of(durable, "s-retry").get("status") == "awaiting_vetting")
    status, body = call(durable, "POST", "/workflows/matching/start", start_body("s-retry", receiver, attempt=2))
    assert (status, body["error"]) == (409, "attempt_in_progress")

    call(durable, "POST", "/workflows/matching/s-retry/cancel", {"reason": "staff retry"})
    status, body = call(durable, "POST", "/workflows/matching/start", start_body("s-retry", receiver, attempt=2))
    assert (status, body["attempt"], body["execution_name"]) == (202, 2, "s-retry-a2")
    done = settled(durable, "s-retry", "succeeded")
    assert done["attempt"] == 2 and done["error"] is None
    assert [e["event"] for e in done["timeline"]][:3] == ["dispatched", "running", "awaiting_vetting"]
    assert call(durable, "POST", "/workflows/matching/start", start_body("s-retry", receiver))[1]["error"] == (
        "attempt_superseded"
    )
    assert len(lambda_client.invocations) == 2


def test_a_failed_invoke_is_reported_and_a_retry_of_the_start_dispatches(
    durable: durable_api.DurableApi, lambda_client: RunnerLambdaClient, receiver: FakeReceiver
) -> None:
    lambda_client.fail_invokes = 1
    status, body = call(durable, "POST", "/workflows/matching/start", start_body("s-flaky", receiver))
    assert (status, body["error"]) == (502, "dispatch_failed")
    assert status_of(durable, "s-flaky")["dispatch"]["state"] == "failed"

    status, body = call(durable, "POST", "/workflows/matching/start", start_body("s-flaky", receiver))
    assert (status, body["created"]) == (202, True)
    assert len(lambda_client.invocations) == 1
    settled(durable, "s-flaky", "succeeded")


@pytest.mark.parametrize(("claimed_at", "takes_over"), [("2020-01-01T00:00:00.000Z", True), (None, False)])
def test_a_start_takes_over_only_a_dispatch_claim_abandoned_mid_invoke(
    durable: durable_api.DurableApi,
    lambda_client: RunnerLambdaClient,
    store: WorkflowStateStore,
    receiver: FakeReceiver,
    claimed_at: str | None,
    takes_over: bool,
) -> None:
    from workflows.durable.state import utc_now_iso

    body = start_body("s-claim", receiver)
    store.create(
        {
            "search_id": "s-claim",
            "attempt": 1,
            "status": "dispatched",
            "seeker_id": body["seeker_id"],
            "preferences": body["preferences"],
            "dispatch": {"state": "claimed", "claimed_at": claimed_at or utc_now_iso()},
        }
    )
    status, answer = call(durable, "POST", "/workflows/matching/start", body)

    assert (status, answer["created"], len(lambda_client.invocations)) == (
        (202, True, 1) if takes_over else (200, False, 0)
    )
    if takes_over:
        settled(durable, "s-claim", "succeeded")


def test_get_returns_404_for_an_unknown_search_and_hides_candidates_unless_asked(
    durable: durable_api.DurableApi, receiver: FakeReceiver
) -> None:
    assert call(durable, "GET", "/workflows/matching/nope")[0] == 404
    call(durable, "POST", "/workflows/matching/start", start_body("s-get", receiver))
    item = settled(durable, "s-get", "succeeded")
    assert "candidates" not in item and "sync_bucket" not in item
    status, full = call(durable, "GET", "/workflows/matching/s-get", query={"include_candidates": "true"})
    assert status == 200
    assert full["candidates"] == item["results"]


# --- cancel ----------------------------------------------------------------------------------------


def test_cancel_stops_the_execution_and_the_workflow_never_reports_a_result(
    durable: durable_api.DurableApi, runner: Any, receiver: FakeReceiver
) -> None:
    _, started = call(durable, "POST", "/workflows/matching/start", start_body("s-cancel", receiver, COACH_PREFS))
    wait_for(lambda: status_of(durable, "s-cancel").get("status") == "awaiting_vetting")

    status, body = call(durable, "POST", "/workflows/matching/s-cancel/cancel", {"reason": "user gave up"})
    assert status == 200
    assert body["status"] == "cancelled"
    assert body["execution_stop"] == "stopped"
    assert body["error"] == {"code": "cancelled", "message": "user gave up"}
    assert "pending_callback" not in body

    result = runner.wait_for_result(started["execution_arn"], timeout=20)
    assert result.execution_status.value == "STOPPED"
    assert status_of(durable, "s-cancel")["status"] == "cancelled"
    assert receiver.bodies("succeeded") == [] and receiver.bodies("cancelled") == []
    # Cancelling again is harmless; cancelling a finished search is refused.
    assert call(durable, "POST", "/workflows/matching/s-cancel/cancel", {"reason": "again"})[0] == 200


def test_cancel_refuses_a_finished_search_and_an_unknown_one(
    durable: durable_api.DurableApi, receiver: FakeReceiver
) -> None:
    call(durable, "POST", "/workflows/matching/start", start_body("s-done", receiver))
    settled(durable, "s-done", "succeeded")
    status, body = call(durable, "POST", "/workflows/matching/s-done/cancel", {"reason": "too late"})
    assert (status, body["error"]) == (409, "already_terminal")
    assert status_of(durable, "s-done")["status"] == "succeeded"
    assert call(durable, "POST", "/workflows/matching/ghost/cancel", {"reason": "x"})[0] == 404
    assert call(durable, "POST", "/workflows/matching/s-done/cancel", {})[0] == 400


# --- intervene and the provider's callback ------------------------------------------------------


def test_staff_approval_completes_the_pending_vetting_with_the_chosen_candidates(
    durable: durable_api.DurableApi, receiver: FakeReceiver
) -> None:
    call(durable, "POST", "/workflows/matching/start", start_body("s-approve", receiver, COACH_PREFS))
    waiting = wait_for(lambda: (b := status_of(durable, "s-approve")).get("status") == "awaiting_vetting" and b)
    vetted = waiting["pending_callback"]["candidate_ids"]
    assert "token_sha256" not in waiting["pending_callback"]

    status, body = call(
        durable,
        "POST",
        "/workflows/matching/s-approve/intervene",
        {"decision": "approve", "note": "checked by phone", "approved_user_ids": [vetted[-1]]},
    )
    assert (status, body["accepted"]) == (202, True)
    done = settled(durable, "s-approve", "succeeded")
    assert [m["user_id"] for m in done["results"]] == [vetted[-1]]
    assert done["results"][0]["rank"] == 1
    assert any(e["event"] == "approved" and e["detail"] == {"by": "staff"} for e in done["timeline"])
    # There is nothing left to answer.
    status, body = call(durable, "POST", "/workflows/matching/s-approve/intervene", {"decision": "reject"})
    assert (status, body["error"]) == (409, "no_pending_callback")


def test_an_approval_retried_after_lambda_errors_shows_once_in_the_timeline(
    durable: durable_api.DurableApi, lambda_client: RunnerLambdaClient, receiver: FakeReceiver
) -> None:
    call(durable, "POST", "/workflows/matching/start", start_body("s-retried", receiver, COACH_PREFS))
    wait_for(lambda: status_of(durable, "s-retried").get("status") == "awaiting_vetting")
    lambda_client.fail_callback_answers = 3
    path = "/workflows/matching/s-retried/intervene"

    refused = [call(durable, "POST", path, {"decision": "approve"}) for _ in range(3)]
    assert [(status, body["error"]) for status, body in refused] == [(502, "callback_failed")] * 3
    assert "answered_at" not in status_of(durable, "s-retried")["pending_callback"]  # released each time
    assert call(durable, "POST", path, {"decision": "approve"})[0] == 202

    done = settled(durable, "s-retried", "succeeded")
    approvals = [e for e in done["timeline"] if e["step"] == "vetting" and e["event"] == "approved"]
    assert len(approvals) == 1


def test_staff_rejection_fails_the_search(durable: durable_api.DurableApi, receiver: FakeReceiver) -> None:
    call(durable, "POST", "/workflows/matching/start", start_body("s-reject", receiver, COACH_PREFS))
    wait_for(lambda: status_of(durable, "s-reject").get("status") == "awaiting_vetting")

    status, _ = call(
        durable, "POST", "/workflows/matching/s-reject/intervene", {"decision": "reject", "note": "no licence"}
    )
    assert status == 202
    done = settled(durable, "s-reject", "failed")
    assert done["error"] == {"code": "vetting_rejected", "message": "no licence"}
    assert wait_for(lambda: receiver.bodies("failed"))[0]["payload"]["error"]["code"] == "vetting_rejected"


def test_intervene_validates_the_decision_and_the_approved_ids(
    durable: durable_api.DurableApi, receiver: FakeReceiver
) -> None:
    call(durable, "POST", "/workflows/matching/start", start_body("s-bad-iv", receiver, COACH_PREFS))
    wait_for(lambda: status_of(durable, "s-bad-iv").get("status") == "awaiting_vetting")
    path = "/workflows/matching/s-bad-iv/intervene"

    assert call(durable, "POST", path, {"decision": "maybe"})[0] == 400
    assert call(durable, "POST", path, {"decision": "approve", "approved_user_ids": ["stranger"]})[0] == 400
    assert call(durable, "POST", path, {"decision": "approve", "approved_user_ids": []})[0] == 400
    assert call(durable, "POST", path, {"decision": "reject", "approved_user_ids": ["coach-a"]})[0] == 400
    assert call(durable, "POST", "/workflows/matching/ghost/intervene", {"decision": "approve"})[0] == 404
    assert status_of(durable, "s-bad-iv")["status"] == "awaiting_vetting"  # nothing was answered


def test_globalcoachs_callback_with_the_right_token_resumes_the_search_exactly_once(
    durable: durable_api.DurableApi,
    lambda_client: RunnerLambdaClient,
    globalcoach: FakeGlobalCoach,
    receiver: FakeReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    call(durable, "POST", "/workflows/matching/start", start_body("s-provider", receiver, COACH_PREFS))
    [request] = wait_for(globalcoach.vetting_requests)
    token, vetted = request["token"], request["candidate_ids"]
    path = "/workflows/matching/vetting-callback"

    forged = {"token": token[:-3] + "xyz", "approved_user_ids": vetted, "rejected_user_ids": []}
    assert call(durable, "POST", path, forged) == (401, {"error": "invalid_token", "message": "invalid token"})
    assert call(durable, "POST", path, {**forged, "token": "ghost.abc"})[0] == 401
    assert call(durable, "POST", path, {"approved_user_ids": []})[0] == 401

    # Hold the Lambda call back so the claim on the item can be observed before the workflow resumes.
    held: list[dict[str, Any]] = []
    monkeypatch.setattr(lambda_client, "send_durable_execution_callback_success", lambda **p: held.append(p) or {})
    answer = {"token": token, "approved_user_ids": vetted[:2], "rejected_user_ids": vetted[2:]}
    assert call(durable, "POST", path, answer) == (202, {"accepted": True})
    # A provider retry, or staff answering as well, cannot complete the callback a second time.
    assert call(durable, "POST", path, answer) == (200, {"accepted": False, "reason": "already_answered"})
    status, body = call(durable, "POST", "/workflows/matching/s-provider/intervene", {"decision": "reject"})
    assert (status, body["error"]) == (409, "already_answered")
    [sent] = held
    assert json.loads(sent["Result"]) == {
        "approved_user_ids": vetted[:2],
        "rejected_user_ids": vetted[2:],
        "decided_by": "provider",
        "note": None,
    }

    RunnerLambdaClient.send_durable_execution_callback_success(lambda_client, **sent)
    done = settled(durable, "s-provider", "succeeded")
    assert [m["user_id"] for m in done["results"]] == vetted[:2]
    assert call(durable, "POST", path, answer)[0] == 401  # the token died with the pending callback


# --- batch status ------------------------------------------------------------------------------------


def test_batch_status_returns_known_searches_in_order_and_names_the_missing(
    durable: durable_api.DurableApi, receiver: FakeReceiver
) -> None:
    for search_id in ("b-1", "b-2", "b-3"):
        call(durable, "POST", "/workflows/matching/start", start_body(search_id, receiver))
    for search_id in ("b-1", "b-2", "b-3"):
        settled(durable, search_id, "succeeded")

    status, body = call(
        durable, "POST", "/workflows/matching/status:batch", {"search_ids": ["b-3", "zz", "b-1", "b-2"]}
    )
    assert status == 200
    assert [i["search_id"] for i in body["items"]] == ["b-3", "b-1", "b-2"]
    assert body["missing"] == ["zz"]
    assert {"status", "version", "updated_at", "attempt"} <= set(body["items"][0])
    assert "results" not in body["items"][0] and "timeline" not in body["items"][0]
    _, with_results = call(
        durable, "POST", "/workflows/matching/status%3Abatch", {"search_ids": ["b-1"], "include_results": True}
    )
    assert with_results["items"][0]["results"]

    assert call(durable, "POST", "/workflows/matching/status:batch", {"search_ids": []})[0] == 400
    too_many = {"search_ids": [f"id-{i}" for i in range(101)]}
    assert call(durable, "POST", "/workflows/matching/status:batch", too_many)[0] == 400


def test_batch_get_follows_unprocessed_keys(table: str) -> None:
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1")
    item = {"search_id": {"S": "k1"}, "status": {"S": "running"}, "version": {"N": "3"}}
    second = {"search_id": {"S": "k2"}, "status": {"S": "succeeded"}, "version": {"N": "7"}}
    with Stubber(client) as stub:
        stub.add_response(
            "batch_get_item",
            {"Responses": {table: [item]}, "UnprocessedKeys": {table: {"Keys": [{"search_id": {"S": "k2"}}]}}},
        )
        stub.add_response("batch_get_item", {"Responses": {table: [second]}, "UnprocessedKeys": {}})
        found = WorkflowStateStore(table, client).batch_get(["k1", "k2"])
        stub.assert_no_pending_responses()
    assert found == {
        "k1": {"search_id": "k1", "status": "running", "version": 3},
        "k2": {"search_id": "k2", "status": "succeeded", "version": 7},
    }


# --- bad input, routing, auth, failures -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"search_id": "has/slash"}, "search_id"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": True}, "attempt"),
        ({"seeker_id": ""}, "seeker_id"),
        ({"preferences": {"role": "buddy"}}, "skill_level_min"),
        ({"preferences": {**BUDDY_PREFS, "colour": "red"}}, "colour"),
        ({"preferences": {**BUDDY_PREFS, "role": "guide"}}, "role"),
        ({"preferences": {**BUDDY_PREFS, "skill_level_min": 9}}, "skill_level_min"),
        ({"preferences": {**BUDDY_PREFS, "dates": ["tomorrow"]}}, "dates"),
        ({"preferences": {**BUDDY_PREFS, "vetting_required": True}}, "coach"),
        ({"preferences": {**BUDDY_PREFS, "limit": 500}}, "limit"),
        ({"callback_webhook": "ftp://console/hook"}, "callback_webhook"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_start_rejects_bad_input_with_400(
    durable: durable_api.DurableApi,
    lambda_client: RunnerLambdaClient,
    receiver: FakeReceiver,
    change: dict[str, Any],
    message: str,
) -> None:
    status, body = call(durable, "POST", "/workflows/matching/start", {**start_body("s-bad", receiver), **change})
    assert status == 400
    assert body["error"] == "bad_request"
    assert message in body["message"]
    assert lambda_client.invocations == []


def test_malformed_bodies_routes_and_methods_get_json_errors(durable: durable_api.DurableApi) -> None:
    start = "/workflows/matching/start"
    assert call(durable, "POST", start, raw_body="{not json")[1]["error"] == "invalid_json"
    assert call(durable, "POST", start, raw_body="[1, 2]")[1]["error"] == "invalid_json"
    assert call(durable, "POST", start, raw_body="")[0] == 400
    assert call(durable, "POST", start, raw_body="x" * (70 * 1024))[0] == 413
    assert call(durable, "GET", "/somewhere/else")[0] == 404
    status, body = call(durable, "GET", start)
    assert (status, body["error"]) == (405, "method_not_allowed")
    assert call(durable, "DELETE", "/workflows/matching/s-1")[0] == 405

    encoded = base64.b64encode(b'{"search_ids": ["a"]}').decode()
    event = function_url_event("POST", "/workflows/matching/status:batch", raw_body=encoded)
    event["isBase64Encoded"] = True
    response = durable.handle(event)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"items": [], "missing": ["a"]}


def test_an_unavailable_state_store_is_a_503_without_internals(
    api_config: durable_api.ApiConfig, lambda_client: RunnerLambdaClient, dynamodb: Any
) -> None:
    api = durable_api.DurableApi(api_config, WorkflowStateStore("no-such-table", dynamodb), lambda_client)
    status, body = call(api, "GET", "/workflows/matching/s-1")
    assert (status, body) == (503, {"error": "state_store_unavailable", "message": "the state store is unavailable"})


def test_an_unexpected_error_is_a_500_without_a_stack_trace(durable: durable_api.DurableApi, monkeypatch) -> None:
    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(durable.store, "get", explode)
    response = durable.handle(function_url_event("GET", "/workflows/matching/s-1"))
    assert response["statusCode"] == 500
    assert "secret internals" not in response["body"] and "Traceback" not in response["body"]


class TestApiKeyAuth:
    KEY = "k3y-for-the-durable-api"

    @pytest.fixture
    def keyed(
        self, api_config: durable_api.ApiConfig, store: WorkflowStateStore, lambda_client: RunnerLambdaClient
    ) -> durable_api.DurableApi:
        config = durable_api.ApiConfig(**{**api_config.__dict__, "api_key": self.KEY, "api_key_header": "x-api-key"})
        return durable_api.DurableApi(config, store, lambda_client)

    def test_requests_without_the_key_or_with_a_wrong_one_are_refused(self, keyed: durable_api.DurableApi) -> None:
        assert call(keyed, "GET", "/workflows/matching/s-1") == (
            401,
            {"error": "unauthorized", "message": "missing or invalid API key"},
        )
        assert call(keyed, "GET", "/workflows/matching/s-1", headers={"X-API-Key": "nope"})[0] == 401

    def test_the_right_key_or_a_verified_iam_caller_gets_through(self, keyed: durable_api.DurableApi) -> None:
        assert call(keyed, "GET", "/workflows/matching/s-1", headers={"X-API-Key": self.KEY})[0] == 404
        assert call(keyed, "GET", "/workflows/matching/s-1", iam=True)[0] == 404

    def test_the_provider_callback_needs_its_token_not_the_key(self, keyed: durable_api.DurableApi) -> None:
        body = {"token": "s-1.abc", "approved_user_ids": [], "rejected_user_ids": []}
        assert call(keyed, "POST", "/workflows/matching/vetting-callback", body)[1]["error"] == "invalid_token"

    def test_the_handler_reads_the_key_and_header_from_the_environment(self, table: str, monkeypatch) -> None:
        monkeypatch.setenv("MATCHING_WORKFLOW_API_KEY", self.KEY)
        monkeypatch.setenv("MATCHING_WORKFLOW_API_KEY_HEADER", "X-Internal-Key")
        durable_api.reset_api()
        try:
            event = function_url_event("GET", "/workflows/matching/s-1", headers={"X-Internal-Key": self.KEY})
            assert durable_api.handler(event, None)["statusCode"] == 404
            assert durable_api.handler(function_url_event("GET", "/workflows/matching/s-1"), None)["statusCode"] == 401
        finally:
            durable_api.reset_api()


def test_the_public_provider_deployment_serves_only_the_vetting_callback(
    api_config: durable_api.ApiConfig, store: WorkflowStateStore, lambda_client: RunnerLambdaClient
) -> None:
    config = durable_api.ApiConfig(**{**api_config.__dict__, "routes": "vetting-callback"})
    public = durable_api.DurableApi(config, store, lambda_client)
    assert call(public, "GET", "/workflows/matching/s-1")[0] == 404
    assert call(public, "POST", "/workflows/matching/start", {})[0] == 404
    body = {"token": "s-1.abc", "approved_user_ids": [], "rejected_user_ids": []}
    assert call(public, "POST", "/workflows/matching/vetting-callback", body)[0] == 401
