"""The warm index over a host snapshot: one copy per host, a private overlay per process, and the
COPY cold load that feeds it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from django.urls import reverse

from matching.candidates.cold_load import _parse_slow, add_copy_block, copy_profiles_into
from matching.candidates.cold_path import prefiltered_profiles
from matching.candidates.warm_index import (
    WarmProfileIndex,
    candidate_index,
    candidate_index_reset,
    profile_index_invalidate,
)
from matching.engine import ProfileIndex, ProfileIndexBuilder, SearchRequest
from matching.engine.snapshot import SnapshotStore, index_arrays
from matching.management.demo_profiles import demo_profiles
from matching.models import SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_close, profile_delete, profile_upsert, profiles_upsert_many
from tests.conftest import ROOT, _database_url
from tests.engine.test_snapshot import is_mapped
from tests.helpers.polling import wait_for
from tests.test_candidate_index import _write, rider
from tests.test_profile_source import _random_preferences

pytestmark = pytest.mark.django_db(transaction=True)


def warm(directory: Path | None, *, delta_max: int = 20_000, bound: float = 0.0) -> WarmProfileIndex:
    return WarmProfileIndex(
        staleness_seconds=bound, overlap_seconds=5, reload_seconds=3600, delta_max=delta_max, snapshot_dir=directory
    )


@pytest.fixture
def population(resorts):
    regions = resort_regions()
    profiles_upsert_many(profiles=[_write(p) for p in demo_profiles(250, regions, seed=21)])
    profile_delete(user_id="u000009")
    return regions


def written(index: WarmProfileIndex) -> str:
    """Wait for the index's background snapshot write; the snapshot's name."""
    return wait_for(lambda: index.stats().snapshot, timeout=30, interval=0.02, message="the snapshot write")


def assert_ranks_like_a_fresh_load(index: WarmProfileIndex, regions: dict, seed: int) -> None:
    fresh = warm(None)
    rng = random.Random(seed)
    for _ in range(25):
        prefs = _random_preferences(rng, regions)
        request = SearchRequest.from_preferences("u000001", prefs)
        cold = list(prefiltered_profiles(seeker_id="u000001", preferences=prefs, resort_regions=regions))
        expected = ProfileIndex.build(cold, regions).search(request)
        assert index.current().search_counted(request) == fresh.current().search_counted(request)
        assert index.current().search(request) == expected


def test_a_second_process_maps_the_first_ones_snapshot_and_its_overlay_follows_every_change(population, tmp_path):
    first = warm(tmp_path)
    first.current()
    name = written(first)
    assert is_mapped(first.current().base.skill)  # the writer too swaps to the shared copy

    second = warm(tmp_path)
    second.current()
    stats = second.stats()
    assert stats.snapshot == name and stats.overlay_profiles == 0
    assert is_mapped(second.current().base.skill)

    rng = random.Random(3)
    ids = list(SkierProfile.objects.values_list("user_id", flat=True))
    fresh_profiles = list(demo_profiles(60, population, seed=99))
    for step in range(50):
        user_id = rng.choice(ids)
        action = rng.random()
        if action < 0.15:
            profile_close(user_id=user_id)
        elif action < 0.3:
            profile_delete(user_id=user_id)
        elif action < 0.85:
            profile = {**rng.choice(fresh_profiles), "user_id": user_id, "nickname": user_id}
            profile_upsert(**profile)
        else:
            profile_upsert(**{**rng.choice(fresh_profiles), "user_id": f"new-{step}", "nickname": f"new-{step}"})
    assert_ranks_like_a_fresh_load(second, population, seed=4)
    stats = second.stats()
    assert stats.snapshot == name and 0 < stats.overlay_profiles <= 50 + stats.delta_profiles
    assert_ranks_like_a_fresh_load(first, population, seed=5)


def test_a_corrupt_or_foreign_snapshot_is_refused_and_rebuilt(population, tmp_path):
    first = warm(tmp_path)
    first.current()
    name = written(first)
    for foreign in ["another-database", "another-format", "corrupt-array", "invalidated"]:
        manifest_path = tmp_path / name / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        if foreign == "another-database":
            database = manifest["meta"]["database"]
            manifest["meta"]["database"] = database.replace(connection.settings_dict["NAME"], "other")
            manifest_path.write_text(json.dumps(manifest))
        elif foreign == "another-format":
            manifest["format_version"] = 0
            manifest_path.write_text(json.dumps(manifest))
        elif foreign == "corrupt-array":
            path = tmp_path / name / "user_ids.npy"
            data = bytearray(path.read_bytes())
            data[-3] ^= 0x20
            path.write_bytes(bytes(data))
        else:
            profile_index_invalidate()  # e.g. after a bulk hard delete: every snapshot is stale

        second = warm(tmp_path)
        second.current()
        rebuilt = written(second)
        assert rebuilt != name and SnapshotStore(tmp_path).current_name() == rebuilt, foreign
        assert second.stats().load_seconds > 0
        third = warm(tmp_path)  # the rebuilt one is accepted
        third.current()
        assert third.stats().snapshot == rebuilt, foreign
        name = rebuilt
    assert_ranks_like_a_fresh_load(third, population, seed=6)


def test_an_overlay_past_its_bound_makes_a_new_snapshot_that_other_processes_switch_to(population, tmp_path):
    first = warm(tmp_path, delta_max=100)
    first.current()
    old = written(first)
    second = warm(tmp_path, delta_max=100_000)
    second.current()
    assert second.stats().snapshot == old
    new = [_write({**p, "user_id": f"new-{i}"}) for i, p in enumerate(demo_profiles(150, population, seed=3))]
    profiles_upsert_many(profiles=new)
    first.current()  # its overlay passes 100: it loads and writes a new snapshot in the background
    newer = wait_for(
        lambda: (name := SnapshotStore(tmp_path).current_name()) != old and name,
        timeout=30,
        interval=0.05,
        message="a new host snapshot",
    )
    wait_for(lambda: first.current() is not None and first.stats().snapshot == newer, timeout=30, interval=0.05)
    assert first.stats().delta_profiles == 0
    # The other process switches at its next refresh (in the background; searches go on meanwhile).
    wait_for(lambda: second.current() is not None and second.stats().snapshot == newer, timeout=30, interval=0.05)
    assert second.stats().delta_profiles == 0
    assert_ranks_like_a_fresh_load(second, population, seed=7)


def test_two_processes_switch_snapshots_without_a_search_seeing_a_profile_twice_or_missing_one(resorts, tmp_path):
    riders = [f"rider-{i:02d}" for i in range(30)]
    for user_id in riders:
        rider(user_id)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "DATABASE_CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.snapshot_searcher", str(tmp_path), "3", "60", ",".join(riders)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        rng = random.Random(8)
        # Rewrites move riders into each process's overlay; past 5 of them a process writes a new
        # snapshot (or maps the other's), so both switch again and again while searching.
        while any(proc.poll() is None for proc in procs):
            rider(rng.choice(riders), skill_level=rng.randint(1, 10))
        reports = [json.loads(proc.stdout.read().strip().splitlines()[-1]) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
    for report in reports:
        assert report["searches"] > 10
        assert report["violations"] == []
        assert len([name for name in report["snapshots"] if name]) >= 3, report["snapshots"]


EVERYONE = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10}
ODD_PROFILES = [
    {"user_id": "tab\tand\\backslash", "resorts": ["yuzawa_naeba"], "regions": ['quote " inside', "ユーザー"]},
    {"user_id": "é-unicode-ü", "available_dates": ["2027-01-02", "2027-01-03"], "knowledge_score": None},
    {"user_id": "plain", "certifications": ["CASI-1", "with,comma"], "knowledge_score": 0},
    {"user_id": "empty-sets", "resorts": [], "regions": [], "available_dates": [], "certifications": []},
]


def test_the_copy_load_reads_exactly_what_the_profiles_hold_odd_strings_included(resorts):
    regions = resort_regions()
    profiles_upsert_many(profiles=[_write(p) for p in demo_profiles(300, regions, seed=31)])
    for fields in ODD_PROFILES:
        profile_upsert(**{"nickname": "n", "skill_level": 4, "role": "coach", "knowledge_score": 55} | fields)
    loaded = ProfileIndexBuilder(regions)
    connection.ensure_connection()
    assert (
        copy_profiles_into(loaded, connection.connection)
        == SkierProfile.objects.filter(open_to_matching=True, deleted_at__isnull=True).count()
    )
    by_rows = ProfileIndex.build(
        prefiltered_profiles(seeker_id="x", preferences=EVERYONE, resort_regions=regions), regions
    )
    index = loaded.build()
    assert sorted(index.user_ids.tolist()) == sorted(by_rows.user_ids.tolist())
    rng = random.Random(9)
    for _ in range(25):
        request = SearchRequest.from_preferences("u000002", _random_preferences(rng, regions))
        assert index.search_counted(request) == by_rows.search_counted(request)
    odd = SearchRequest.from_preferences("x", {**EVERYONE, "regions": ['quote " inside'], "limit": 50})
    assert [m.user_id for m in index.search(odd)] == ["tab\tand\\backslash"]


def test_the_vectorised_copy_parser_agrees_with_the_line_by_line_one():
    rows = [
        b'id-1\t5\tbuddy\t\\N\t["a", "b"]\t[]\t["2027-01-01"]\t[]\n',
        b'id-22\t10\tcoach\t100\t[]\t["R1"]\t[]\t["C1", "C2"]\n',
        b'id-333\t1\tstudent\t7\t["b"]\t["R2", "R1"]\t["2027-01-01", "2027-01-02"]\t[]\n',
    ]
    block = b"".join(rows * 50)
    fast, slow = ProfileIndexBuilder({"a": "R1"}), ProfileIndexBuilder({"a": "R1"})
    assert add_copy_block(fast, block) == 150
    _parse_slow(slow, block)
    fast_arrays, fast_rest = index_arrays(fast.build())
    slow_arrays, slow_rest = index_arrays(slow.build())
    assert fast_rest == slow_rest
    for key, array in fast_arrays.items():
        assert np.array_equal(array, slow_arrays[key], equal_nan=array.dtype.kind == "f"), key
    # A number where a string belongs: not the fast parser's to guess; the slow one reads it.
    fallback = ProfileIndexBuilder({})
    assert add_copy_block(fallback, b"id-9\t3\tbuddy\t1\t[1]\t[]\t[]\t[]\n") == 1
    assert fallback.build().resorts.vocab == {"1": 0}


def test_snapshot_settings_default_to_the_var_dir(settings):
    from django.conf import settings as django_settings

    assert Path(str(django_settings.MATCHING_INDEX_SNAPSHOT_DIR)).name == "profile-index"
    settings.MATCHING_INDEX_SNAPSHOT = True
    assert WarmProfileIndex.from_settings().store is not None
    settings.MATCHING_INDEX_SNAPSHOT = False
    assert WarmProfileIndex.from_settings().store is None


@pytest.fixture
def host_snapshot(settings, tmp_path):
    """This process's index (from settings) over a host snapshot in `tmp_path`, written."""
    settings.MATCHING_INDEX_SNAPSHOT = True
    settings.MATCHING_INDEX_SNAPSHOT_DIR = tmp_path
    settings.MATCHING_INDEX_STALENESS_MS = 0  # every search refreshes
    candidate_index_reset()
    candidate_index().current()
    return written(candidate_index())


def test_health_shows_the_host_snapshot_and_this_process_overlay_and_staleness(population, host_snapshot, client):
    rider("changed")
    candidate_index().current()
    body = client.get("/health").json()
    assert body["status"] == "ok"
    snapshot, process = body["index"]["snapshot"], body["index"]["process"]
    assert snapshot["name"] == host_snapshot and snapshot["profiles"] == len(candidate_index().current().base)
    assert 0 <= snapshot["age_seconds"] < 600
    assert process["snapshot"] == host_snapshot and process["overlay_profiles"] == 1
    assert 0 <= process["staleness_seconds"] < 60 and process["profiles"] == candidate_index().stats().profiles


def test_the_dashboard_shows_the_host_snapshot(population, host_snapshot, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456789"))
    page = client.get(reverse("admin:matching_search_dashboard")).content.decode()
    card = page[page.index('id="sb-index"') :]
    assert host_snapshot in card[: card.index("</div>")]
    assert "overlay 0" in card and "style=" not in card[: card.index("</div>")]
