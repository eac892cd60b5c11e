"""One copy of a `ProfileIndex` per host: its arrays on local disk, mapped read-only by every process.

A snapshot is a directory of `.npy` files, one per column, and a `manifest.json` naming the
format version, each file's dtype, shape and SHA-256, and whatever the caller stores beside the
arrays (`meta`: the database's identity, the change cursor, ...). Processes open the files with
`mmap_mode="r"`, so the operating system keeps one copy of the pages for all of them; each
process adds only its private overlay (a `LiveProfileIndex`'s hidden mask and delta).

Writing is atomic. The writer fills a temporary directory beside the snapshots, fsyncs every
file and the directory, renames it into place, then swaps the `CURRENT` pointer file the same
way (write, fsync, rename, fsync the parent). A reader follows `CURRENT`, so it sees the old
snapshot or the new one, never a half-written one: a writer killed mid-write leaves only a
temporary directory, which the next writer removes. Unlinking an old snapshot is safe for
processes still mapping it (Linux keeps the pages of an open mapping).

Only one process per host writes at a time: `SnapshotStore.writer_lock()` is an `flock` on a
lock file, taken without waiting (whoever holds it is already writing).

Plain Python and numpy, like the rest of the engine.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .index import ProfileIndex, _SetColumn

FORMAT_VERSION = 2  # 2: rows in block order (role, then skill level)
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
_PREFIX = "snap-"
_TMP_PREFIX = ".tmp-"
_SET_COLUMNS = ("resorts", "regions", "dates", "certifications")
_PLAIN_COLUMNS = ("user_ids", "skill", "open", "knowledge", "role", "uid_order", "uid_rank")


class SnapshotRefused(Exception):
    """The snapshot cannot be used (missing, unfinished, corrupt, another format or another
    database); the reason is the message. The caller loads from the database instead."""


def index_arrays(index: ProfileIndex) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The index as named arrays plus the small JSON-able rest (vocabularies, resort map)."""
    arrays = {name: getattr(index, name) for name in _PLAIN_COLUMNS}
    vocabs = {}
    for name in _SET_COLUMNS:
        column: _SetColumn = getattr(index, name)
        vocabs[name] = list(column.vocab)  # insertion order is the interned ids' order
        arrays[f"{name}.non_empty"] = column.non_empty
        if column.words is not None:
            n_words = len(column.words)
            arrays[f"{name}.words"] = (
                np.stack(column.words) if n_words else np.zeros((0, column.n_rows), dtype=np.uint64)
            )
        else:
            arrays[f"{name}.flat"] = column.flat
            arrays[f"{name}.offsets"] = column.offsets
    rest = {
        "role_vocab": list(index.role_vocab),
        "set_vocabs": vocabs,
        "resort_regions": index.resort_regions,
        "in_blocks": index.in_blocks,
    }
    return arrays, rest


def index_from_arrays(arrays: dict[str, np.ndarray], rest: dict[str, Any]) -> ProfileIndex:
    index = ProfileIndex()
    for name in _PLAIN_COLUMNS:
        setattr(index, name, arrays[name])
    index.resort_regions = dict(rest["resort_regions"])
    index.role_vocab = {name: code for code, name in enumerate(rest["role_vocab"])}
    index.in_blocks = bool(rest["in_blocks"])
    n = len(index.user_ids)
    for name in _SET_COLUMNS:
        vocab = {value: code for code, value in enumerate(rest["set_vocabs"][name])}
        column = _SetColumn(vocab, n, arrays[f"{name}.non_empty"])
        if f"{name}.words" in arrays:
            words = arrays[f"{name}.words"]
            column.words = [words[w] for w in range(words.shape[0])]
        else:
            column.flat = arrays[f"{name}.flat"]
            column.offsets = arrays[f"{name}.offsets"]
        setattr(index, name, column)
    return index


def _digest(array: np.ndarray) -> str:
    data = np.ascontiguousarray(array)
    return hashlib.sha256(memoryview(data).cast("B") if data.size else b"").hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, write: Callable[[Any], None]) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


class LockBusy(Exception):
    """Another process holds the writer lock."""


class SnapshotStore:
    """The snapshots of one host, in `root` (a local directory; created when missing)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # --- writing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold the host's writer lock, or raise LockBusy at once. Released when the holder
        exits or dies (an flock belongs to the open file)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise LockBusy from None
                raise
            yield
        finally:
            os.close(fd)  # releases the lock

    def write(self, index: ProfileIndex, meta: dict[str, Any], *, keep: int = 2) -> str:
        """Write `index` as a new snapshot and make it current; its name. Call holding
        `writer_lock()`. Keeps the newest `keep` snapshots (processes may still be opening the
        previous one) and removes unfinished ones left by writers that died."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_unfinished()
        name = f"{_PREFIX}{time.time_ns():020d}-{os.getpid()}"
        tmp = self.root / f"{_TMP_PREFIX}{name}"
        tmp.mkdir()
        arrays, rest = index_arrays(index)
        files = {}
        for key, array in arrays.items():
            file_name = f"{key}.npy"
            _write_durably(tmp / file_name, lambda handle, a=array: np.save(handle, a, allow_pickle=False))
            files[key] = {
                "file": file_name,
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "sha256": _digest(array),
            }
        manifest = {"format_version": FORMAT_VERSION, "name": name, "files": files, "index": rest, "meta": meta}
        payload = json.dumps(manifest, sort_keys=True).encode()
        _write_durably(tmp / MANIFEST, lambda handle: handle.write(payload))
        _fsync_dir(tmp)
        os.rename(tmp, self.root / name)
        _fsync_dir(self.root)
        pointer = self.root / f"{CURRENT}.tmp"
        _write_durably(pointer, lambda handle: handle.write(name.encode()))
        os.replace(pointer, self.root / CURRENT)
        _fsync_dir(self.root)
        self._remove_old(keep)
        return name

    def _remove_unfinished(self) -> None:
        # Only the lock holder writes, so any temporary directory belongs to a dead writer.
        for path in self.root.glob(f"{_TMP_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)

    def _remove_old(self, keep: int) -> None:
        current = self.current_name()
        names = sorted(p.name for p in self.root.glob(f"{_PREFIX}*"))
        for name in names[: max(0, len(names) - keep)]:
            if name != current:
                shutil.rmtree(self.root / name, ignore_errors=True)

    # --- reading ----------------------------------------------------------------------------

    def current_name(self) -> str | None:
        try:
            return (self.root / CURRENT).read_text().strip() or None
        except FileNotFoundError:
            return None

    def open(
        self, *, accept: Callable[[dict[str, Any]], str | None], verify: bool = True
    ) -> tuple[ProfileIndex, dict[str, Any]]:
        """The current snapshot, mapped read-only, and its manifest's `meta` (plus `name`).

        `accept(meta)` returns why the snapshot does not fit (another database, ...) or None.
        With `verify`, every array's checksum is checked (reading it once, which also brings its
        pages into the shared page cache). Raises SnapshotRefused."""
        name = self.current_name()
        if name is None:
            raise SnapshotRefused("no snapshot")
        directory = self.root / name
        try:
            manifest = json.loads((directory / MANIFEST).read_bytes())
        except (OSError, ValueError) as error:
            raise SnapshotRefused(f"{name}: unreadable manifest ({error})") from None
        if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
            raise SnapshotRefused(f"{name}: format version {manifest.get('format_version')!r}, not {FORMAT_VERSION}")
        meta = manifest.get("meta") or {}
        reason = accept(meta)
        if reason:
            raise SnapshotRefused(f"{name}: {reason}")
        arrays = {}
        try:
            for key, entry in manifest["files"].items():
                # An empty file cannot be mapped: an empty column is read (it is only a header).
                mode = "r" if int(np.prod(entry["shape"])) else None
                array = np.load(directory / entry["file"], mmap_mode=mode, allow_pickle=False)
                if array.dtype.str != entry["dtype"] or list(array.shape) != entry["shape"]:
                    raise SnapshotRefused(f"{name}: {key} is not the shape or type its manifest names")
                if verify and _digest(array) != entry["sha256"]:
                    raise SnapshotRefused(f"{name}: {key} fails its checksum")
                # A plain read-only ndarray over the mapping: np.memmap's subclass hooks cost
                # microseconds on every operation a search makes.
                arrays[key] = array.view(np.ndarray)
            index = index_from_arrays(arrays, manifest["index"])
        except SnapshotRefused:
            raise
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SnapshotRefused(f"{name}: unreadable ({error!r})") from None
        return index, {**meta, "name": name}

    def describe(self) -> dict[str, Any] | None:
        """The current snapshot in brief, without mapping it: name, profiles and the age of its
        data (from `meta["taken_at"]`, epoch seconds, when the writer stored one). None without
        a current snapshot."""
        name = self.current_name()
        if name is None:
            return None
        try:
            manifest = json.loads((self.root / name / MANIFEST).read_bytes())
        except (OSError, ValueError):
            return {"name": name, "profiles": None, "age_seconds": None}
        meta = manifest.get("meta") or {}
        taken_at = meta.get("taken_at")
        return {
            "name": name,
            "profiles": meta.get("profiles"),
            "age_seconds": round(max(0.0, time.time() - taken_at), 1) if isinstance(taken_at, int | float) else None,
        }
