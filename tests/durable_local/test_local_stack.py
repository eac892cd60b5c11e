"""The local Durable side end to end: Durable API (real SigV4) -> stand-in -> emulator -> workflow
-> moto, with a fake console on the far side and the simulated GlobalCoach."""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import boto3
import pytest
import requests

from devtools.durable_local.stack import LocalDurableStack
from tests.durable_local.conftest import DurableApiClient, FakeConsole, profile
from tests.helpers.durable import emulator_lambda, use_stack_credentials
from tests.helpers.polling import wait_for

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def _search_id() -> str:
    return uuid.uuid4().hex


def _buddy_prefs() -> dict[str, Any]:
    return {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7}


def _coach_prefs() -> dict[str, Any]:
    return {"role": "coach", "skill_level_min": 1, "skill_level_max": 10, "vetting_required": True}


def _start_body(search_id: str, prefs: dict[str, Any], console: FakeConsole, attempt: int = 1) -> dict[str, Any]:
    console.searches[search_id] = ("seeker-1", prefs)
    return {
        "search_id": search_id,
        "attempt": attempt,
        "seeker_id": "seeker-1",
        "preferences": prefs,
        "callback_webhook": f"{console.url}/webhooks/matching",
        "timeout_seconds": 600,
    }


def _wait_status(api: DurableApiClient, search_id: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
    return wait_for(
        lambda: (item := api.status(search_id)) and item["status"] in statuses and item,
        timeout=timeout,
        message=f"search {search_id} to reach {sorted(statuses)}",
    )


def _set_globalcoach(stack: LocalDurableStack, **config: Any) -> None:
    response = requests.put(f"{stack.globalcoach_url}/__control/config", json=config, timeout=5)
    assert response.status_code == 200, response.text


def _executions_named(stack: LocalDurableStack, name: str) -> list[dict[str, Any]]:
    # Asks the emulator itself, past the Durable API and the stand-in.
    client = emulator_lambda(stack)
    listed = client.list_durable_executions_by_function(
        FunctionName=stack.config.function_name, DurableExecutionName=name
    )
    return [e for e in listed["DurableExecutions"] if e["DurableExecutionName"] == name]


def test_a_signed_start_runs_a_search_to_success_and_the_console_gets_a_signed_callback(
    local_stack: LocalDurableStack, durable_api: DurableApiClient, fake_console: FakeConsole
) -> None:
    search_id = _search_id()
    fake_console.candidates[search_id] = [profile("u-near", skill=5), profile("u-far", skill=9), profile("u-ok")]

    response = durable_api.start(**_start_body(search_id, _buddy_prefs(), fake_console))

    assert response.status_code == 202, response.text
    assert response.json()["created"] is True
    item = _wait_status(durable_api, search_id, TERMINAL)
    assert item["status"] == "succeeded", item
    assert [r["user_id"] for r in item["results"]] == ["u-near", "u-ok"]  # u-far is outside the skill range
    webhooks = wait_for(lambda: fake_console.webhooks_for(search_id), timeout=15, message="the callback webhook")
    assert webhooks[-1]["status"] == "succeeded"
    # The webhook carries the version write-result made; recording its delivery bumps it later.
    assert webhooks[-1]["version"] <= item["version"]
    assert not fake_console.rejected


def test_starting_the_same_search_attempt_twice_gives_one_execution(
    local_stack: LocalDurableStack, durable_api: DurableApiClient, fake_console: FakeConsole
) -> None:
    search_id = _search_id()
    fake_console.candidates[search_id] = [profile("u1")]
    body = _start_body(search_id, _buddy_prefs(), fake_console)
    responses: list[requests.Response] = []

    # Two racing starts and a late repeat, as a retrying console would send them.
    threads = [threading.Thread(target=lambda: responses.append(durable_api.start(**body))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    _wait_status(durable_api, search_id, TERMINAL)
    responses.append(durable_api.start(**body))

    assert sorted(r.status_code for r in responses) == [200, 200, 202], [r.text for r in responses]
    name = responses[0].json()["execution_name"]
    assert len(_executions_named(local_stack, name)) == 1


def test_a_callback_suspended_search_survives_an_emulator_crash_and_staff_can_then_approve(
    local_stack: LocalDurableStack, durable_api: DurableApiClient, fake_console: FakeConsole
) -> None:
    _set_globalcoach(local_stack, mode="staff")
    search_id = _search_id()
    fake_console.candidates[search_id] = [
        profile("c-1", role="coach", skill=6),
        profile("c-2", role="coach", skill=4),
    ]
    assert durable_api.start(**_start_body(search_id, _coach_prefs(), fake_console)).status_code == 202
    waiting = _wait_status(durable_api, search_id, {"awaiting_vetting"} | TERMINAL)
    assert waiting["status"] == "awaiting_vetting", waiting

    local_stack.restart_emulator(crash=True)

    executions = _executions_named(local_stack, waiting["execution_name"])
    assert [e["Status"] for e in executions] == ["RUNNING"]
    response = durable_api.signed(
        "POST",
        f"/workflows/matching/{search_id}/intervene",
        {"decision": "approve", "note": "checked by hand", "approved_user_ids": ["c-2"]},
    )
    assert response.status_code == 202, response.text
    item = _wait_status(durable_api, search_id, TERMINAL)
    assert item["status"] == "succeeded", item
    assert [r["user_id"] for r in item["results"]] == ["c-2"]


def test_a_step_retry_pending_across_an_emulator_crash_is_re_armed_and_runs(
    local_stack: LocalDurableStack, durable_api: DurableApiClient, fake_console: FakeConsole
) -> None:
    search_id = _search_id()
    fake_console.candidates[search_id] = [profile("u-late")]
    fake_console.unavailable.add(search_id)
    assert durable_api.start(**_start_body(search_id, _buddy_prefs(), fake_console)).status_code == 202
    # The fetch step failed once and now waits for its retry timer, which lives only in memory.
    wait_for(lambda: fake_console.candidate_requests.get(search_id), timeout=15, message="a first ranking read")

    local_stack.emulator.kill()
    fake_console.unavailable.discard(search_id)
    local_stack.emulator.start()

    item = _wait_status(durable_api, search_id, TERMINAL)
    assert item["status"] == "succeeded", item
    assert [r["user_id"] for r in item["results"]] == ["u-late"]
    assert fake_console.candidate_requests[search_id] >= 2


def test_globalcoach_answering_for_itself_completes_a_vetted_search(
    local_stack: LocalDurableStack, durable_api: DurableApiClient, fake_console: FakeConsole
) -> None:
    _set_globalcoach(local_stack, mode="approve_fraction", fraction=0.5, delay_seconds=0.2)
    search_id = _search_id()
    fake_console.candidates[search_id] = [profile(f"c-{i}", role="coach", skill=5 + i % 3) for i in range(4)]
    try:
        assert durable_api.start(**_start_body(search_id, _coach_prefs(), fake_console)).status_code == 202
        item = _wait_status(durable_api, search_id, TERMINAL)
    finally:
        _set_globalcoach(local_stack, mode="staff")
    assert item["status"] == "succeeded", item
    assert len(item["results"]) == 2  # the top half of the four vetted candidates
    assert [r["rank"] for r in item["results"]] == [1, 2]


def test_a_cancel_stops_a_waiting_execution(
    local_stack: LocalDurableStack, durable_api: DurableApiClient, fake_console: FakeConsole
) -> None:
    _set_globalcoach(local_stack, mode="staff")
    search_id = _search_id()
    fake_console.candidates[search_id] = [profile("c-9", role="coach")]
    assert durable_api.start(**_start_body(search_id, _coach_prefs(), fake_console)).status_code == 202
    waiting = _wait_status(durable_api, search_id, {"awaiting_vetting"} | TERMINAL)
    assert waiting["status"] == "awaiting_vetting", waiting

    response = durable_api.signed("POST", f"/workflows/matching/{search_id}/cancel", {"reason": "user gave up"})

    assert response.status_code == 200, response.text
    assert response.json()["execution_stop"] == "stopped"
    executions = wait_for(
        lambda: [e for e in _executions_named(local_stack, waiting["execution_name"]) if e["Status"] != "RUNNING"],
        timeout=10,
        message="the execution to stop",
    )
    assert executions[0]["Status"] == "STOPPED"
    assert durable_api.status(search_id)["status"] == "cancelled"


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ({"region": "eu-west-1"}, 403),
        ({"service": "execute-api"}, 403),
    ],
)
def test_the_running_durable_api_rejects_a_request_signed_for_elsewhere(
    durable_api: DurableApiClient, tamper: dict[str, str], expected: int
) -> None:
    response = durable_api.signed("GET", "/workflows/matching/anything", **tamper)
    assert response.status_code == expected
    assert response.json()["Message"] == "Forbidden"


def test_the_running_durable_api_accepts_the_api_key_and_rejects_a_wrong_one(durable_api: DurableApiClient) -> None:
    assert durable_api.with_key("GET", "/workflows/matching/no-such-search").status_code == 404
    assert durable_api.with_key("GET", "/workflows/matching/no-such-search", key="wrong").status_code == 403


@pytest.mark.parametrize("auth_mode", ["iam_sigv4", "api_key"])
def test_the_consoles_own_client_talks_to_the_local_durable_api(
    local_stack: LocalDurableStack, fake_console: FakeConsole, monkeypatch: pytest.MonkeyPatch, auth_mode: str
) -> None:
    from workflows.durable_console.client import DurableApiClient as ConsoleClient
    from workflows.durable_console.client import DurableApiConfig

    env = local_stack.env
    use_stack_credentials(env, monkeypatch)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = ConsoleClient(
        DurableApiConfig(
            base_url=env["MATCHING_WORKFLOW_URL"],
            auth_mode=auth_mode,
            api_key=env["MATCHING_WORKFLOW_API_KEY"],
            api_key_header=env["MATCHING_WORKFLOW_API_KEY_HEADER"],
            sigv4_service=env["MATCHING_WORKFLOW_SIGV4_SERVICE"],
            region=env["AWS_REGION"],
            max_attempts=1,
        )
    )
    search_id = _search_id()
    fake_console.candidates[search_id] = [profile("u-client")]
    fake_console.searches[search_id] = ("seeker-1", _buddy_prefs())

    started = client.start(
        search_id=search_id,
        attempt=1,
        seeker_id="seeker-1",
        preferences=_buddy_prefs(),
        callback_webhook=f"{fake_console.url}/webhooks/matching",
        timeout_seconds=600,
    )

    assert started["search_id"] == search_id
    item = wait_for(
        lambda: (got := client.get(search_id, include_candidates=True)) and got["status"] in TERMINAL and got,
        timeout=30,
        message="the search to finish",
    )
    assert item["status"] == "succeeded"
    assert [c["user_id"] for c in item["candidates"]] == ["u-client"]
    batch = client.status_batch([search_id, "no-such-search"])
    assert [i["search_id"] for i in batch["items"]] == [search_id]
    assert batch["missing"] == ["no-such-search"]


def test_the_printed_console_environment_reads_durable_executions_from_the_local_stack(
    local_stack: LocalDurableStack,
    durable_api: DurableApiClient,
    fake_console: FakeConsole,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = local_stack.env
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == local_stack.lambda_url
    search_id = _search_id()
    fake_console.candidates[search_id] = [profile("u-history")]
    assert durable_api.start(**_start_body(search_id, _buddy_prefs(), fake_console)).status_code == 202
    arn = _wait_status(durable_api, search_id, {"succeeded"})["execution_arn"]

    # A console set up from the printed environment alone: no endpoint of its own.
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = boto3.session.Session().client("lambda")

    wait_for(
        lambda: client.get_durable_execution(DurableExecutionArn=arn)["Status"] == "SUCCEEDED",
        timeout=30,
        message="the execution to end (it delivers its callback after writing the item)",
    )
    events = client.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    assert any(e["EventType"] == "ExecutionSucceeded" for e in events)
