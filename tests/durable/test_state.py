"""The DynamoDB state store (workflows/durable/state.py) against moto in server mode."""

from __future__ import annotations

import pytest

from workflows.durable.state import (
    MAX_TIMELINE,
    AlreadyExists,
    Changes,
    VersionConflict,
    WorkflowStateStore,
    public_view,
    timeline_entry,
)


def test_create_starts_at_version_1_and_refuses_a_second_create(store: WorkflowStateStore) -> None:
    item = store.create({"search_id": "s-1", "attempt": 1, "status": "dispatched"})
    assert (item["version"], item["sync_bucket"]) == (1, "all")
    assert item["created_at"] == item["updated_at"]
    with pytest.raises(AlreadyExists):
        store.create({"search_id": "s-1", "attempt": 2, "status": "dispatched"})
    assert store.get("s-1")["attempt"] == 1


def test_an_update_with_a_stale_version_is_refused_and_changes_nothing(store: WorkflowStateStore) -> None:
    store.create({"search_id": "s-2", "attempt": 1, "status": "dispatched"})
    updated = store.update("s-2", 1, Changes(set={"status": "running"}))
    assert (updated["version"], updated["status"]) == (2, "running")
    with pytest.raises(VersionConflict):
        store.update("s-2", 1, Changes(set={"status": "cancelled"}))
    assert store.get("s-2")["status"] == "running"


def test_two_racing_writers_produce_one_winner(store: WorkflowStateStore) -> None:
    store.create({"search_id": "s-race", "attempt": 1, "status": "awaiting_vetting"})
    read_by_both = store.get("s-race")
    store.update("s-race", read_by_both["version"], Changes(set={"status": "succeeded"}))
    with pytest.raises(VersionConflict):
        store.update("s-race", read_by_both["version"], Changes(set={"status": "cancelled"}))
    assert store.get("s-race")["status"] == "succeeded"


def test_mutate_rereads_after_a_conflict_and_decides_again(store: WorkflowStateStore) -> None:
    store.create({"search_id": "s-3", "attempt": 1, "status": "running"})
    seen: list[str] = []

    def decide(item):
        seen.append(item["status"])
        if len(seen) == 1:  # someone else writes between our read and our write
            store.update("s-3", item["version"], Changes(set={"status": "awaiting_vetting"}))
        return Changes(set={"note": f"saw {item['status']}"})

    item, wrote = store.mutate("s-3", decide)
    assert wrote and seen == ["running", "awaiting_vetting"]
    assert (item["version"], item["note"]) == (3, "saw awaiting_vetting")


def test_updated_at_never_goes_backwards_and_floats_round_trip(store: WorkflowStateStore) -> None:
    store.create({"search_id": "s-4", "attempt": 1, "status": "running"})
    stamps = [store.get("s-4")["updated_at"]]
    for i in range(3):
        item = store.get("s-4")
        results = [{"user_id": "u", "score": 0.87, "breakdown": {"knowledge": None}, "rank": 1}]
        stamps.append(
            store.update(
                "s-4", item["version"], Changes(set={"results": results, "n": i}), previous_updated_at=stamps[-1]
            )["updated_at"]
        )
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert store.get("s-4")["results"][0]["score"] == 0.87


def test_the_timeline_is_appended_and_capped(store: WorkflowStateStore) -> None:
    full = [timeline_entry("step", f"old{i}") for i in range(MAX_TIMELINE)]
    store.create({"search_id": "s-5", "attempt": 1, "status": "running", "timeline": full})
    for event in ("new1", "new2"):
        store.mutate("s-5", lambda _item, event=event: Changes(timeline=[timeline_entry("step", event)]))
    timeline = store.get("s-5")["timeline"]
    assert len(timeline) == MAX_TIMELINE
    assert [e["event"] for e in timeline[:1] + timeline[-2:]] == ["old2", "new1", "new2"]


def test_the_sync_index_returns_what_changed_since_a_watermark(store: WorkflowStateStore) -> None:
    store.create({"search_id": "old", "attempt": 1, "status": "succeeded"})
    watermark = store.get("old")["updated_at"]
    store.create({"search_id": "new", "attempt": 1, "status": "running"})
    changed = store.update("new", 1, Changes(set={"status": "succeeded"}), previous_updated_at=watermark)
    after = [i["search_id"] for i in store.changed_since(changed["updated_at"])]
    assert after == ["new"]
    assert {i["search_id"] for i in store.changed_since(watermark)} == {"old", "new"}


def test_public_view_hides_the_vetting_token_hash_and_index_bookkeeping() -> None:
    item = {
        "search_id": "s",
        "sync_bucket": "all",
        "candidates": [1],
        "pending_callback": {"callback_id": "cb", "token_sha256": "secret-hash", "name": "vetting"},
    }
    view = public_view(item)
    assert view == {"search_id": "s", "pending_callback": {"callback_id": "cb", "name": "vetting"}}
    assert public_view(item, include_candidates=True)["candidates"] == [1]
