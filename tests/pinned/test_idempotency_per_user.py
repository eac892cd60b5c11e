"""An Idempotency-Key belongs to the user who sent it: two users may send the same key, and each
one's retry finds that user's own search, never the other's."""

import pytest

from matching.models import Search
from tests.conftest import SnowTraceClient

pytestmark = pytest.mark.django_db

BODY = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 8}


@pytest.fixture(autouse=True)
def _no_dispatch(monkeypatch):
    monkeypatch.setattr("workflows.dispatch.submit.dispatch_send", lambda **kw: True)


def submit(user: SnowTraceClient, key: str):
    return user.post("/matching/searches", BODY, headers={"Idempotency-Key": key})


def test_a_key_another_user_already_used_replays_each_users_own_search(owner, another_user, resorts):
    mine = submit(owner, "order-shared").json()["search_id"]
    theirs = submit(another_user, "order-shared").json()["search_id"]  # same key, same body
    assert mine != theirs

    their_retry, my_retry = submit(another_user, "order-shared"), submit(owner, "order-shared")

    assert their_retry.status_code == my_retry.status_code == 202
    assert their_retry.headers["Idempotent-Replayed"] == my_retry.headers["Idempotent-Replayed"] == "true"
    assert their_retry.json()["search_id"] == theirs
    assert my_retry.json()["search_id"] == mine
    assert {s.seeker_id: str(s.pk) for s in Search.objects.all()} == {"owner-1": mine, "other-2": theirs}
