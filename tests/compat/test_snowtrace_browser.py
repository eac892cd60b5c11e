"""SnowTrace's browser, for real: a page served from its own loopback origin (a stand-in for the
smart-matching page, tests/compat/snowtrace_page/) makes the browser client's calls in Debian's
Chromium, driven by Playwright, against the console under gunicorn with a real worker. A user token
alone, no API key: MATCHING_REQUIRE_API_KEY=false and CORS for the page's origin, exercised by the
browser itself (a cross-origin fetch with `Authorization` is preflighted)."""

from __future__ import annotations

import uuid

import pytest
import requests
from django.db import connections

from matching.management.demo_profiles import demo_profiles
from matching.models import Search, SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields
from tests.compat.conftest import stored_search
from tests.conftest import user_token

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

SEEKER = str(uuid.UUID(int=0x5EE7E2))
TARGET = str(uuid.UUID(int=0x7A26E7))  # a skier the seeker's search finds, with a token of their own


@pytest.fixture
def console_url(served):
    return served(require_key=False)


@pytest.fixture
def skiers(resorts):
    rows = list(demo_profiles(200, resort_regions(), seed=5))
    rows.append(
        {**rows[0], "user_id": TARGET, "nickname": "Target", "skill_level": 5, "role": "buddy",
         "resorts": ["hakuba_happo_one"], "regions": [], "available_dates": ["2027-01-06"], "open_to_matching": True}
    )  # fmt: skip
    SkierProfile.objects.bulk_create(SkierProfile(**profile_fields(**row)) for row in rows)


def open_page(browser, origin: str, console_url: str, user_id: str, query: str = ""):
    """The page at `origin`, signed in as `user_id` (its token in localStorage, as SnowTrace keeps it)."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{origin}/index.html?api={console_url}{query}")
    page.evaluate("token => localStorage.setItem('token', token)", user_token(user_id))
    return page


def search_from_the_page(page) -> list[str]:
    """Submit the preference form, wait for the poll to render `matches`: their user ids, in order."""
    page.click("#start")
    page.wait_for_function("document.querySelector('#state').textContent.startsWith('completed')"
                           " || document.querySelector('#error').textContent")  # fmt: skip
    assert page.inner_text("#error") == ""
    return page.eval_on_selector_all("#matches li", "items => items.map(i => i.dataset.userId)")


def test_the_smart_matching_page_searches_polls_and_renders_matches_with_a_token_alone(
    browser, console_url, page_origins, skiers
):
    page = open_page(browser, page_origins[0], console_url, SEEKER)
    shown = search_from_the_page(page)
    assert TARGET in shown and len(shown) > 1

    # What the page showed is the console's answer, read the page's way, and the search is the form's.
    token = {"Authorization": f"Bearer {user_token(SEEKER)}"}
    (search_id,) = stored_search_ids()
    answer = requests.get(f"{console_url}/matching/searches/{search_id}", headers=token, timeout=10).json()
    assert shown == [m["user_id"] for m in sorted(answer["matches"], key=lambda m: -m["score"])]
    search = stored_search(str(search_id))
    prefs = search.preferences
    assert search.seeker_id == SEEKER and search.api_key is None
    assert (prefs["role"], prefs["skill_level_min"], prefs["skill_level_max"]) == ("buddy", 3, 8)
    assert prefs["resorts"] == ["hakuba_happo_one", "yuzawa_naeba"] and len(prefs["dates"]) == 5


def test_a_page_from_an_origin_cors_does_not_allow_cannot_call(browser, console_url, page_origins, skiers):
    page = open_page(browser, page_origins[1], console_url, SEEKER)
    page.click("#start")
    page.wait_for_function("document.querySelector('#error').textContent")
    assert "Failed to fetch" in page.inner_text("#error")  # the browser refused the answer
    assert not stored_search_ids()


def stored_search_ids() -> list:
    connections["default"].close()  # see what the server committed
    return list(Search.objects.values_list("pk", flat=True))


def test_the_page_sends_a_match_request_and_the_target_accepts_it(browser, console_url, page_origins, skiers):
    seeker = open_page(browser, page_origins[0], console_url, SEEKER)
    assert TARGET in search_from_the_page(seeker)
    seeker.click(f"#matches li[data-user-id='{TARGET}'] button.request")
    seeker.wait_for_function(
        "document.querySelector('#request').dataset.requestId || document.querySelector('#error').textContent"
    )
    assert seeker.inner_text("#error") == ""
    assert seeker.inner_text("#request").startswith("request sent")
    request_id = seeker.get_attribute("#request", "data-request-id")

    target = open_page(browser, page_origins[0], console_url, TARGET, f"&respond={request_id}")
    target.click("#accept")
    target.wait_for_function(
        "document.querySelector('#response').textContent || document.querySelector('#error').textContent"
    )
    assert target.inner_text("#error") == ""
    assert target.inner_text("#response") == "request accepted"
