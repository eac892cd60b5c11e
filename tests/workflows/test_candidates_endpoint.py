import pytest

from matching.candidates.cold_path import prefiltered_profiles
from matching.management.demo_profiles import demo_profiles
from matching.models import SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.errors import error_attrs, error_codes
from workflows.dispatch.submit import search_submit

pytestmark = pytest.mark.django_db

TOKEN = "internal-token-for-tests"
PREFS = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10, "resorts": ["yuzawa_naeba"], "regions": []}


@pytest.fixture
def search(resorts, settings, monkeypatch):
    settings.MATCHING_INTERNAL_TOKEN = TOKEN
    stub_dispatch_send(monkeypatch)
    SkierProfile.objects.bulk_create(
        SkierProfile(**profile_fields(**p)) for p in demo_profiles(300, resort_regions(), seed=3)
    )
    return search_submit(seeker_id="u000005", preferences=PREFS)


def _get(client, search, token=TOKEN, **params):
    return client.get(
        f"/internal/searches/{search.pk}/candidates", params, headers={"Authorization": f"Bearer {token}"}
    )


def test_pages_cover_every_prefiltered_candidate_exactly_once(client, search):
    seen, cursor, pages = [], None, 0
    while True:
        body = _get(client, search, page_size=25, **({"cursor": cursor} if cursor else {})).json()
        seen += [p["user_id"] for p in body["profiles"]]
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None or pages > 100:
            break
    assert pages > 1 and len(seen) == len(set(seen))
    assert "u000005" not in seen
    expected = SkierProfile.objects.filter(open_to_matching=True, region_mask__gt=0).exclude(user_id="u000005")
    assert set(seen) <= set(expected.values_list("user_id", flat=True))
    # Not a row skipped at a page boundary: exactly what the prefilter yields in one read.
    everything = prefiltered_profiles(
        seeker_id="u000005", preferences=search.preferences, resort_regions=resort_regions()
    )
    assert seen == [p.user_id for p in everything] and len(seen) > 25


@pytest.mark.parametrize("token", ["", "wrong", TOKEN + "x"])
def test_a_wrong_service_token_is_a_401(client, search, token):
    assert error_codes(_get(client, search, token=token), 401) == {"authentication_failed"}


def test_without_a_configured_token_the_feed_refuses_everyone(client, search, settings):
    settings.MATCHING_INTERNAL_TOKEN = ""
    for header in ("Bearer ", "Bearer", "", f"Bearer {TOKEN}"):
        response = client.get(f"/internal/searches/{search.pk}/candidates", headers={"Authorization": header})
        assert error_codes(response, 401) == {"authentication_failed"}, header


def test_bad_paging_parameters_are_a_400(client, search):
    assert _get(client, search, page_size=0).status_code == 400
    assert _get(client, search, page_size=5000).status_code == 400
    assert _get(client, search, cursor="abc").status_code == 400


def test_an_unknown_search_is_a_404(client, search):
    response = client.get(
        "/internal/searches/8d3e4c52-9d43-4c2e-9c1a-4f0f9a9b7c11/candidates",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert error_codes(response, 404) == {"unknown_search"}


def test_a_non_uuid_id_is_a_json_404(client, search):
    response = client.get("/internal/searches/not-a-uuid/candidates", headers={"Authorization": f"Bearer {TOKEN}"})
    assert error_codes(response, 404) == {"unknown_search"}


def test_a_post_is_a_json_405_not_a_csrf_403(client, search):
    csrf_client = type(client)(enforce_csrf_checks=True)
    response = csrf_client.post(
        f"/internal/searches/{search.pk}/candidates", {}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert error_codes(response, 405) == {"method_not_allowed"}
    assert response["Allow"] == "GET"


@pytest.mark.parametrize(
    ("params", "attr"),
    [
        ({"cursor": "9" * 30}, "cursor"),
        ({"cursor": "9223372036854775808"}, "cursor"),
        ({"cursor": "-1"}, "cursor"),
        ({"cursor": "\u0661"}, "cursor"),
        ({"page_size": " 5"}, "page_size"),
        ({"page_size": "1e3"}, "page_size"),
        ({"page_size": ""}, "page_size"),
    ],
)
def test_out_of_range_paging_is_a_400_naming_the_parameter(client, search, params, attr):
    response = _get(client, search, **params)
    assert error_attrs(response, 400) == {attr}


def test_the_largest_cursor_is_an_empty_last_page(client, search):
    body = _get(client, search, cursor=str(2**63 - 1)).json()
    assert body == {"profiles": [], "next_cursor": None}
