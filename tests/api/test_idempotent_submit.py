"""POST /matching/searches with an Idempotency-Key (IETF httpapi draft): a retry never creates a
second search, under concurrency too."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from matching.models import Search, SubmitIdempotencyKey
from tests.conftest import SnowTraceClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]

BODY = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 8}


def submit(user: SnowTraceClient, key: str | None, body=None):
    return user.post("/matching/searches", body or BODY, headers={"Idempotency-Key": key} if key else None)


def test_a_retry_with_the_same_key_and_body_returns_the_original_search(owner, resorts):
    first = submit(owner, "order-7f3a")
    again = submit(owner, "order-7f3a", {"skill_level_max": 8, "role": "buddy", "skill_level_min": 3})  # reordered

    assert first.status_code == again.status_code == 202
    assert again.json()["search_id"] == first.json()["search_id"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert Search.objects.count() == 1


def test_the_same_key_with_another_body_is_a_422(owner, resorts):
    submit(owner, "order-7f3a")
    response = submit(owner, "order-7f3a", {**BODY, "skill_level_max": 9})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["code"] == "idempotency_key_reused" and "Idempotency-Key" in error["detail"]
    assert Search.objects.count() == 1


def test_keys_belong_to_their_user(owner, another_user, resorts):
    mine, theirs = submit(owner, "shared-key"), submit(another_user, "shared-key")
    assert mine.json()["search_id"] != theirs.json()["search_id"]
    assert Search.objects.count() == 2


def test_the_quoted_structured_field_form_names_the_same_key(owner, resorts):
    bare, quoted = submit(owner, "abc-123"), submit(owner, '"abc-123"')
    assert bare.json()["search_id"] == quoted.json()["search_id"]


def test_a_key_older_than_a_day_binds_a_new_search(owner, resorts):
    first = submit(owner, "yesterday")
    SubmitIdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    second = submit(owner, "yesterday")
    assert second.status_code == 202 and second.json()["search_id"] != first.json()["search_id"]
    assert str(SubmitIdempotencyKey.objects.get().search_id) == second.json()["search_id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", 'unbalanced"', "tab\there", "ünïcode"])
def test_a_malformed_key_is_a_400_and_creates_nothing(owner, resorts, key):
    response = submit(owner, key) if key else owner.post("/matching/searches", BODY, headers={"Idempotency-Key": ""})
    assert response.status_code == 400
    assert [e["attr"] for e in response.json()["errors"]] == ["Idempotency-Key"]
    assert not Search.objects.exists()


def test_without_a_key_every_post_is_a_new_search(owner, resorts):
    submit(owner, None)
    submit(owner, None)
    assert Search.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_create_one_search(api_key, resorts):
    callers = 8
    barrier = threading.Barrier(callers)
    answers: list[tuple[int, str]] = []

    def call():
        user = SnowTraceClient(Client(), api_key, "racer-1")
        barrier.wait(timeout=10)
        response = submit(user, "same-click-twice")
        answers.append((response.status_code, response.json().get("search_id")))
        connection.close()

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(answers) == callers
    assert {status for status, _ in answers} == {202}
    assert len({search_id for _, search_id in answers}) == 1
    assert Search.objects.filter(seeker_id="racer-1").count() == 1
