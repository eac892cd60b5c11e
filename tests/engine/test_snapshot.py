"""Host snapshots of a ProfileIndex: mapped read-only, ranked identically, written atomically."""

from __future__ import annotations

import json
import mmap
import os
import random
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from matching.engine import LiveProfileIndex, ProfileIndex, match_baseline
from matching.engine.snapshot import FORMAT_VERSION, LockBusy, SnapshotRefused, SnapshotStore, index_arrays

from .test_index import RESORT_REGIONS, random_profile, random_request

ROOT = Path(__file__).resolve().parents[2]


def is_mapped(array: np.ndarray) -> bool:
    """Whether the array's memory is a file mapping (shared with every process mapping it)."""
    while array is not None:
        if isinstance(array, np.memmap | mmap.mmap):
            return True
        array = getattr(array, "base", None)
    return False


def population(seed: int, n: int = 300) -> dict:
    rng = random.Random(seed)
    return {f"u{i:04d}": random_profile(rng, f"u{i:04d}") for i in range(n)}


def write(store: SnapshotStore, index: ProfileIndex, meta: dict | None = None) -> str:
    with store.writer_lock():
        return store.write(index, meta or {"database": "db-1"})


def test_a_mapped_snapshot_ranks_exactly_like_the_index_it_was_written_from(tmp_path):
    profiles = population(1)
    index = ProfileIndex.build(profiles.values(), RESORT_REGIONS)
    store = SnapshotStore(tmp_path)
    name = write(store, index)
    mapped, meta = store.open(accept=lambda meta: None)
    assert meta["name"] == name and meta["database"] == "db-1"
    assert is_mapped(mapped.skill) and not mapped.skill.flags.writeable  # shared pages
    rng = random.Random(2)
    for _ in range(40):
        request = random_request(rng, sorted(profiles))
        assert mapped.search_counted(request) == index.search_counted(request)
        assert mapped.search(request) == match_baseline(request, profiles.values(), RESORT_REGIONS)
    # An overlay on the mapped base follows changes exactly like one on private arrays.
    changes = {"upserts": [random_profile(rng, "u0001"), random_profile(rng, "new")], "removals": ["u0002"]}
    on_mapped, on_private = LiveProfileIndex(mapped).apply(**changes), LiveProfileIndex(index).apply(**changes)
    for _ in range(20):
        request = random_request(rng, sorted(profiles))
        assert on_mapped.search_counted(request) == on_private.search_counted(request)


def test_only_one_process_holds_the_writer_lock(tmp_path):
    store = SnapshotStore(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockBusy), store.writer_lock():
            pass
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with store.writer_lock():  # the dead holder's lock went with its process
        pass


_HOLD_LOCK = """
import sys, time
from matching.engine.snapshot import SnapshotStore
with SnapshotStore(sys.argv[1]).writer_lock():
    print("locked", flush=True)
    time.sleep(60)
"""

# A writer that stops for good after its third array file (fsynced, manifest not written yet).
_WRITER = """
import random, sys, time
import numpy as np
sys.path.insert(0, "tests/engine")
from matching.engine import ProfileIndex
from matching.engine import snapshot
from test_index import RESORT_REGIONS, random_profile
rng = random.Random(7)
index = ProfileIndex.build([random_profile(rng, f"w{i:04d}") for i in range(300)], RESORT_REGIONS)
real_save, saved = np.save, []
def save(handle, array, **kwargs):
    real_save(handle, array, **kwargs)
    saved.append(1)
    if len(saved) == 3:
        handle.flush()
        print("mid-write", flush=True)
        time.sleep(120)
np.save = save
store = snapshot.SnapshotStore(sys.argv[1])
with store.writer_lock():
    store.write(index, {"database": "db-1"})
"""


def test_a_writer_killed_mid_write_leaves_readers_on_the_old_snapshot(tmp_path):
    profiles = population(3)
    index = ProfileIndex.build(profiles.values(), RESORT_REGIONS)
    store = SnapshotStore(tmp_path)
    old = write(store, index)
    mapped, _ = store.open(accept=lambda meta: None)
    rng = random.Random(4)
    requests = [random_request(rng, sorted(profiles)) for _ in range(10)]
    expected = [index.search(r) for r in requests]

    stop, seen, errors = threading.Event(), [], []

    def reader() -> None:  # searches and re-opens go on all through the write and the kill
        try:
            while not stop.is_set():
                fresh, meta = store.open(accept=lambda meta: None)
                seen.append(meta["name"])
                for request, ranking in zip(requests, expected, strict=True):
                    assert fresh.search(request) == ranking and mapped.search(request) == ranking
        except Exception as error:
            errors.append(error)

    thread = threading.Thread(target=reader)
    thread.start()
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "mid-write"
        unfinished = list(tmp_path.glob(".tmp-*"))
        assert len(unfinished) == 1 and len(list(unfinished[0].glob("*.npy"))) == 3
        assert not (unfinished[0] / "manifest.json").exists()
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        seen_before_kill = len(seen)
        stop.wait(0.3)  # readers go on a little after the kill
    finally:
        stop.set()
        thread.join(timeout=30)
        if writer.poll() is None:
            writer.kill()
    assert not errors, errors
    assert set(seen) == {old} and len(seen) > seen_before_kill > 0
    assert store.current_name() == old
    # The next writer takes the dead writer's lock and removes what it left.
    newer = write(store, ProfileIndex.build(population(5).values(), RESORT_REGIONS))
    assert store.current_name() == newer and not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("damage", ["array-bytes", "manifest-json", "format-version", "shape", "missing-file"])
def test_a_corrupt_snapshot_is_refused(tmp_path, damage):
    store = SnapshotStore(tmp_path)
    name = write(store, ProfileIndex.build(population(6).values(), RESORT_REGIONS))
    directory = tmp_path / name
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if damage == "array-bytes":
        path = directory / "skill.npy"
        data = bytearray(path.read_bytes())
        data[-1] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "manifest-json":
        manifest_path.write_text(manifest_path.read_text()[:-20])
    elif damage == "format-version":
        manifest["format_version"] = FORMAT_VERSION + 1
        manifest_path.write_text(json.dumps(manifest))
    elif damage == "shape":
        manifest["files"]["skill"]["shape"] = [1]
        manifest_path.write_text(json.dumps(manifest))
    else:
        (directory / "knowledge.npy").unlink()
    with pytest.raises(SnapshotRefused):
        store.open(accept=lambda meta: None)


def test_a_snapshot_of_another_database_is_refused(tmp_path):
    store = SnapshotStore(tmp_path)
    write(store, ProfileIndex.build(population(7).values(), RESORT_REGIONS), {"database": "db-1"})
    with pytest.raises(SnapshotRefused, match="another database"):
        store.open(accept=lambda meta: None if meta["database"] == "db-2" else "another database")
    with pytest.raises(SnapshotRefused, match="no snapshot"):
        SnapshotStore(tmp_path / "empty").open(accept=lambda meta: None)


def test_the_arrays_round_trip_with_every_set_column_form(tmp_path):
    # More than 256 distinct dates: that column is held as CSR rows, not bitmasks.
    rng = random.Random(8)
    profiles = population(8, n=120)
    many_dates = [f"2027-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29)]
    for user_id, profile in list(profiles.items())[:60]:
        profiles[user_id] = replace(profile, available_dates=tuple(rng.sample(many_dates, 8)))
    index = ProfileIndex.build(profiles.values(), RESORT_REGIONS)
    assert index.dates.words is None
    store = SnapshotStore(tmp_path)
    write(store, index)
    mapped, _ = store.open(accept=lambda meta: None)
    original, _ = index_arrays(index)
    again, _ = index_arrays(mapped)
    assert original.keys() == again.keys()
    for key, array in original.items():
        assert np.array_equal(array, again[key], equal_nan=array.dtype.kind == "f"), key
    for _ in range(20):
        request = random_request(rng, sorted(profiles))
        assert mapped.search(request) == index.search(request)
