"""SnowTrace keeps working unchanged: its original calls, replayed over HTTP against a running
console and a real worker (issue 8's acceptance), with the console's own shape side by side."""

from __future__ import annotations

import pytest

from matching.candidates.cold_path import ROW_FIELDS, to_engine_profile
from matching.engine import ProfileIndex, SearchRequest
from matching.models import SkierProfile
from tests.compat.conftest import SNOWTRACE_USER, OldClient, stored_search
from tests.conftest import CONSOLE_ANSWERS, JWT_TEST_SECRET, user_token
from tests.helpers.polling import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

RESULT_FIELDS = {"user_id", "nickname", "skill_level", "self_role", "match_score"}


def expected_results(search_id: str, regions: dict) -> list[dict]:
    """What the old service would answer: the engine's ranking of every profile, in the old shape."""
    search = stored_search(search_id)
    rows = list(SkierProfile.objects.values(*ROW_FIELDS))
    facts = {r["user_id"]: r for r in rows}
    request = SearchRequest.from_preferences(search.seeker_id, search.preferences)
    matches = ProfileIndex.build([to_engine_profile(r) for r in rows], regions).search(request)
    return [
        {
            "user_id": m.user_id,
            "nickname": facts[m.user_id]["nickname"],
            "skill_level": facts[m.user_id]["skill_level"],
            "self_role": facts[m.user_id]["role"],
            "match_score": m.score,
        }
        for m in matches
    ]


def test_the_old_body_with_every_default_completes_with_the_old_answer(snowtrace, profiles):
    search_id = snowtrace.search({})
    answer = snowtrace.completed(search_id)
    assert answer.keys() == {"status", "results", "matches"}  # matches: what SnowTrace's browser page reads
    assert answer["results"], "the demo data has matches for a default search"
    assert all(result.keys() == RESULT_FIELDS for result in answer["results"])
    scores = [r["match_score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True) and min(scores) > 0.2
    assert answer["results"] == expected_results(search_id, profiles)
    search = stored_search(search_id)
    assert search.seeker_id == SNOWTRACE_USER and search.preferences["limit"] == 100


def test_the_body_from_the_issue_is_accepted_and_answered(snowtrace, profiles):
    body = {
        "skill_level_min": 5,
        "skill_level_max": 7,
        "seeking_role": "buddy",
        "preferred_resorts": ["yuzawa_naeba", "hakuba_happo_one"],
        "availability": ["2027-01-05", "2027-01-06"],
    }
    search_id = snowtrace.search(body)
    answer = snowtrace.completed(search_id)
    assert answer["results"] == expected_results(search_id, profiles)
    assert all(5 <= r["skill_level"] <= 7 for r in answer["results"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("skill_level_min", 6),
        ("skill_level_max", 4),
        ("preferred_resorts", ["nagano_nozawa_onsen"]),
        ("preferred_regions", ["Hokkaido"]),
        ("availability", ["2027-01-10", "2027-02-14"]),
        ("seeking_role", "coach"),
        ("include_knowledge_score", True),
    ],
)
def test_each_old_field_shapes_the_results_as_the_engine_ranks_them(snowtrace, profiles, field, value):
    search_id = snowtrace.search({field: value})
    assert snowtrace.completed(search_id)["results"] == expected_results(search_id, profiles)


def test_an_unknown_search_is_a_404_and_another_users_too(snowtrace, console, api_key, profiles):
    assert snowtrace.get("/matching/searches/00000000-0000-4000-8000-000000000000").status_code == 404
    search_id = snowtrace.search({})
    stranger = OldClient(console, api_key, user_token("0b7c7d5e-0000-4000-8000-00000000beef"))
    assert stranger.get(f"/matching/searches/{search_id}").status_code == 404


def test_invalid_old_bodies_are_400s_naming_the_field(snowtrace, profiles):
    for body, field in [
        ({"skill_level_min": 0}, "skill_level_min"),
        ({"seeking_role": "ski-patrol"}, "seeking_role"),
        ({"availability": ["2027-13-01"]}, "availability.0"),
        ({"seeking_role": "coach", "role": "coach"}, "seeking_role"),
    ]:
        response = snowtrace.post("/matching/searches", body)
        attrs = {error["attr"] for error in response.json()["errors"]}
        assert response.status_code == 400 and field in attrs, (body, response.text)


# --- identity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: user_token(SNOWTRACE_USER, ttl=-5), "expired"),
        (lambda: user_token(SNOWTRACE_USER, audience="knowledge_engagement"), "audience"),
        (lambda: user_token(SNOWTRACE_USER, secret="not-the-shared-secret-but-long-enough-anyway"), "signature"),
    ],
)
def test_a_bad_bearer_token_is_a_401_with_the_reason(console, api_key, profiles, token, reason):
    client = OldClient(console, api_key, token())
    for response in (client.post("/matching/searches", {}), client.get("/matching/searches")):
        assert response.status_code == 401
        assert reason in response.json()["errors"][0]["detail"] and JWT_TEST_SECRET not in response.text


def test_a_token_signed_with_the_rotated_out_secret_works_while_it_is_the_fallback(
    console, api_key, profiles, settings
):
    old_secret = "the-secret-before-the-rotation-of-32-bytes"
    client = OldClient(console, api_key, user_token(SNOWTRACE_USER, secret=old_secret))
    assert client.post("/matching/searches", {}).status_code == 401
    settings.JWT_FALLBACK_SECRET = old_secret
    search_id = client.search({})
    assert client.completed(search_id)["status"] == "completed"


def test_x_user_id_is_honoured_from_a_trusted_service_key_only(console, api_key, untrusted_api_key, profiles):
    trusted = OldClient(console, api_key, None, headers={"X-User-Id": "snowtrace-user-7"})
    search_id = trusted.search({})
    assert stored_search(search_id).seeker_id == "snowtrace-user-7"
    untrusted = OldClient(console, untrusted_api_key, None, headers={"X-User-Id": "snowtrace-user-7"})
    response = untrusted.post("/matching/searches", {})
    assert response.status_code == 401 and "trusted service" in response.json()["errors"][0]["detail"]


def test_the_users_token_alone_reads_a_search_as_the_old_get_did(snowtrace, console, profiles):
    search_id = snowtrace.search({})
    reader = OldClient(console, None, snowtrace.token)
    assert reader.completed(search_id)["status"] == "completed"
    assert reader.post("/matching/searches", {}).status_code == 401


# --- the console's shape, side by side ----------------------------------------------------------


def test_the_console_shape_and_answers_work_beside_the_old_ones(snowtrace, profiles):
    console_body = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10, "limit": 100}
    response = snowtrace.post("/matching/searches", console_body, Accept=CONSOLE_ANSWERS)
    assert response.status_code == 202 and response.json().keys() == {"search_id", "status", "engine"}
    new_id = response.json()["search_id"]
    old_id = snowtrace.search({})
    assert stored_search(new_id).preferences == stored_search(old_id).preferences

    old_answer = snowtrace.completed(old_id)
    rich = wait_for(
        lambda: (
            (b := snowtrace.get(f"/matching/searches/{new_id}", Accept=CONSOLE_ANSWERS).json())["status"] == "succeeded"
            and b
        ),
        timeout=30,
        message="the console-shaped search to succeed",
    )
    assert [(r["user_id"], r["score"]) for r in rich["results"]] == [
        (r["user_id"], r["match_score"]) for r in old_answer["results"]
    ]
    assert {"rank", "breakdown"} <= rich["results"][0].keys()
    assert snowtrace.completed(new_id) == old_answer  # the same search, read the old way


def test_a_client_cancels_a_search_and_reads_the_resort_list(snowtrace, profiles):
    resorts = snowtrace.get("/matching/resorts").json()
    assert {"id": "yuzawa_naeba", "region": "Niigata Prefecture"}.items() <= next(
        r for r in resorts["resorts"] if r["id"] == "yuzawa_naeba"
    ).items()
    search_id = snowtrace.search({})
    snowtrace.completed(search_id)
    response = snowtrace.post(f"/matching/searches/{search_id}/cancel")
    error = response.json()["errors"][0]
    assert response.status_code == 409 and error["code"] == "already_finished" and "succeeded" in error["detail"]


def test_a_finished_search_is_notified_once_with_a_verified_signature(snowtrace, profiles, notification_receiver):
    search_id = snowtrace.search({})
    answer = snowtrace.completed(search_id)
    delivered = wait_for(
        lambda: notification_receiver.for_search(search_id), timeout=20, message="the completion notification"
    )
    assert len(delivered) == 1
    assert delivered[0]["status"] == "succeeded"
    assert delivered[0]["payload"]["results"] == answer["results"]
    assert delivered[0]["payload"]["seeker_id"] == SNOWTRACE_USER
