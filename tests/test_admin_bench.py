"""The admin benchmark's discovery and measuring, run once on a small seeded database (no timing asserted)."""

import importlib.util
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from devtools.seed_scale.command import Command as SeedScale
from matching.models import SearchStatus

pytestmark = pytest.mark.django_db

BENCH = Path(__file__).resolve().parent.parent / "bench" / "admin_bench.py"


@pytest.fixture(scope="module")
def admin_bench():
    spec = importlib.util.spec_from_file_location("admin_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["admin_bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("bench-admin", "bench@example.invalid", "x-bench-pw")


def test_the_admin_bench_finds_each_filter_choice_search_and_page(admin_bench, superuser):
    call_command(SeedScale(), "--searches", "2000", "--until", "2026-11-28T12:00:00+00:00", stdout=None)
    notes: list[str] = []

    labels = [page.label for page in admin_bench.discover_pages(superuser, notes)]

    for _, label in SearchStatus.choices:
        assert f"filter status: {label}" in labels
    for label in ("search list", "search: seeker id", "search: candidate user id", "event list", "execution list"):
        assert label in labels
    assert any(label.startswith("search page: typical") for label in labels)
    assert any(label.startswith("dashboard") for label in labels) or any("no dashboard" in n for n in notes)
    assert {"sort Age / run ascending", "sort Age / run descending", "sort seeker id ascending"} <= set(labels)
    assert not any(label.startswith("sort attempt") for label in labels)  # not sortable: no index sorts it
    assert not any(", filter " in label for label in labels)  # other lists' filters only when asked


def test_with_every_list_page_the_bench_also_finds_each_filter_and_sort_of_the_other_lists(admin_bench, superuser):
    call_command(SeedScale(), "--searches", "200", "--until", "2026-11-28T12:00:00+00:00", stdout=None)

    labels = [page.label for page in admin_bench.discover_pages(superuser, [], every_list_page=True)]

    assert "event list, filter kind: drift acknowledged" in labels
    assert "webhook delivery list, filter outcome: unknown_search" in labels
    assert "search notification list, filter status: Timed out" in labels
    assert "search notification list, filter status: Running" not in labels  # never a finished attempt's
    assert {"result list, sort user id ascending", "staff action list, sort at descending"} <= set(labels)
    assert not any(label.startswith(("event list, sort", "result list, sort score")) for label in labels)


def test_the_admin_bench_measures_every_page_without_an_error(admin_bench, superuser, client):
    call_command(SeedScale(), "--searches", "2000", "--until", "2026-11-28T12:00:00+00:00", stdout=None)
    client.force_login(superuser)

    measurements = [
        admin_bench.measure(client, page, runs=1, warmups=1) for page in admin_bench.discover_pages(superuser, [])
    ]

    assert [(m.page.label, m.error) for m in measurements if m.error] == []
    assert all(m.queries > 0 and len(m.times_ms) == 1 for m in measurements)
