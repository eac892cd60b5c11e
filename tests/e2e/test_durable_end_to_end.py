"""The durable engine end to end over HTTP: console ⇄ local durable stack.

The console (pytest-django's live server, on the test PostgreSQL database) starts a durable
execution through the local Durable API, which really verifies SigV4 or the API key; the
workflow runs in AWS's durable emulator, reads candidates from the console, waits for
certification vetting, and posts its signed callback to the console's webhook.
"""

from __future__ import annotations

import boto3
import pytest
from django.db import connection

from devtools.durable_local.stack import LocalDurableStack, StackConfig
from matching.management.demo_profiles import demo_profiles
from matching.models import Search, SearchStatus, SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields
from tests.helpers.bodies import E2E_COACH as COACH_SEARCH
from tests.helpers.durable import point_console_at_stack
from tests.helpers.polling import wait_for
from workflows.dispatch.submit import search_cancel
from workflows.durable_console.client import DurableApiClient
from workflows.staff_actions import search_intervene

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def durable_stack(live_server, tmp_path_factory):
    config = StackConfig.for_tests(
        tmp_path_factory.mktemp("durable-stack"),
        console_base_url=live_server.url,
        globalcoach_mode="staff",  # GlobalCoach never answers: staff intervene from the console
    )
    with LocalDurableStack(config) as stack:
        yield stack


@pytest.fixture(params=["iam_sigv4", "api_key"])
def console_on_durable(request, durable_stack, settings, monkeypatch, resorts):
    point_console_at_stack(durable_stack.env, settings, monkeypatch, auth_mode=request.param)
    SkierProfile.objects.bulk_create(
        SkierProfile(**profile_fields(**p)) for p in demo_profiles(400, resort_regions(), seed=21)
    )
    return durable_stack


def _item(stack, search_id: str) -> dict | None:
    env = stack.env
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    from workflows.durable.state import deserialize_item

    raw = dynamodb.get_item(TableName=env["MATCHING_STATE_TABLE"], Key={"search_id": {"S": search_id}}).get("Item")
    return deserialize_item(raw) if raw else None


def _search(search_id: str) -> Search:
    connection.close()  # read what the live server's thread committed
    return Search.objects.get(pk=search_id)


def test_a_vetted_coach_search_runs_on_the_durable_engine_end_to_end(console_on_durable, owner):
    stack = console_on_durable
    response = owner.post("/matching/searches", COACH_SEARCH)
    assert response.status_code == 202, response.content
    assert response.json()["engine"] == "durable"
    search_id = response.json()["search_id"]

    item = wait_for(
        lambda: (i := _item(stack, search_id)) and i["status"] == "awaiting_vetting" and i,
        timeout=60,
        message="the DynamoDB item to wait on vetting",
    )
    assert item["pending_callback"]["callback_id"]
    candidates = [c["user_id"] for c in item["candidates"]]
    assert len(candidates) == 10  # the top candidates were sent to GlobalCoach
    wait_for(
        lambda: _search(search_id).status == SearchStatus.AWAITING_VETTING, timeout=30, message="the console to show it"
    )
    assert owner.get(f"/matching/searches/{search_id}").json()["status"] == "awaiting_vetting"

    search = _search(search_id)
    approved = candidates[:3]
    search_intervene(
        search=search,
        decision="approve",
        acting_user="staff:reviewer",
        note="checked by hand",
        approved_user_ids=approved,
    )

    wait_for(lambda: (_item(stack, search_id) or {}).get("status") == "succeeded", timeout=60, message="item succeeded")
    wait_for(lambda: _search(search_id).status == SearchStatus.SUCCEEDED, timeout=60, message="the signed callback")

    body = owner.get(f"/matching/searches/{search_id}").json()
    assert body["status"] == "succeeded"
    results = body["results"]
    assert results, "a vetted search with approvals returns ranked results"
    assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert {SkierProfile.objects.get(user_id=r["user_id"]).role for r in results} == {"coach"}
    assert {r["user_id"] for r in results} == set(approved)
    assert search.events.filter(kind="intervened", actor="staff:reviewer").exists()


def test_starting_the_same_attempt_twice_gives_one_execution(console_on_durable, owner):
    stack = console_on_durable
    search_id = owner.post("/matching/searches", COACH_SEARCH).json()["search_id"]
    first = wait_for(lambda: _item(stack, search_id), timeout=30, message="the item to exist")
    search = _search(search_id)
    again = DurableApiClient.from_settings().start(
        search_id=search_id,
        attempt=1,
        seeker_id=search.seeker_id,
        preferences=search.preferences,
        callback_webhook=stack.env["MATCHING_WORKFLOW_CALLBACK_URL"],
        timeout_seconds=3600,
    )
    assert again.get("created") is False
    assert again["execution_name"] == first["execution_name"]
    assert _item(stack, search_id)["execution_name"] == first["execution_name"]
    # Let the one execution settle (it waits for GlobalCoach, who never answers here) before the
    # tables are emptied: its callback landing during the flush's TRUNCATE deadlocked a full run.
    wait_for(lambda: _search(search_id).status == SearchStatus.AWAITING_VETTING, timeout=60, message="vetting wait")


def test_cancelling_a_search_waiting_on_vetting_ends_it_everywhere(console_on_durable, owner):
    stack = console_on_durable
    search_id = owner.post("/matching/searches", COACH_SEARCH).json()["search_id"]
    wait_for(
        lambda: (_item(stack, search_id) or {}).get("status") == "awaiting_vetting", timeout=60, message="vetting wait"
    )
    assert search_cancel(search=_search(search_id), reason="user withdrew", acting_user="staff:operator")

    wait_for(lambda: (_item(stack, search_id) or {}).get("status") == "cancelled", timeout=60, message="item cancelled")
    assert _search(search_id).status == SearchStatus.CANCELLED
    assert _search(search_id).events.filter(kind="remote_cancel", detail="durable execution stopped").exists()
