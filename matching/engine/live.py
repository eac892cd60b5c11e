"""A `ProfileIndex` that follows changes without being rebuilt.

`LiveProfileIndex` is a large base index built once plus the profiles changed since then. A
change never touches the base's columns: it hides the profile's base row (a new copy of the one
bool column `open`) and keeps the new version, when it is open to matching, in a small delta
index rebuilt from its profiles. A search runs on both parts and merges their top K by the
rules' order (score, then user id), so it ranks exactly as one index over the current profiles
would. Every `apply` returns a new object; a search holding the old one is never disturbed.

Plain Python and numpy, like the rest of the engine: the database side lives in the domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from . import rules
from .index import ProfileIndex
from .types import Match, Profile, SearchRequest


class LiveProfileIndex:
    def __init__(
        self,
        base: ProfileIndex,
        *,
        hidden: np.ndarray | None = None,
        delta: Mapping[str, Profile] | None = None,
        delta_index: ProfileIndex | None = None,
    ):
        self.base = base
        # One bool per base row, made at the first change: until then nothing is hidden, and a
        # process mapping a host snapshot holds no per-row array of its own.
        self.hidden = hidden
        self.delta: dict[str, Profile] = dict(delta or {})
        hides = hidden is not None and hidden.any()
        self._visible_base = base.with_open(base.open & ~hidden) if hides else base
        if delta_index is None and self.delta:
            delta_index = ProfileIndex.build(self.delta.values(), base.resort_regions)
        self._delta_index = delta_index
        self._base_hidden_count = int(hidden.sum()) if hides else 0
        self._size = int(self._visible_base.open.sum()) + len(self.delta)

    @property
    def resort_regions(self) -> dict[str, str]:
        return self.base.resort_regions

    def __len__(self) -> int:
        """Profiles a search can see: open base rows not hidden, plus the delta."""
        return self._size

    @property
    def delta_size(self) -> int:
        return len(self.delta)

    @property
    def hidden_count(self) -> int:
        return self._base_hidden_count

    def apply(self, *, upserts: Iterable[Profile] = (), removals: Iterable[str] = ()) -> LiveProfileIndex:
        """A new index with these changes; `self` is left as it was.

        `upserts` are the current versions of changed profiles (a closed one is a removal);
        `removals` are user ids deleted or closed. Give each user id once.
        """
        delta = dict(self.delta)
        touched: list[str] = []
        for user_id in removals:
            touched.append(user_id)
            delta.pop(user_id, None)
        for profile in upserts:
            touched.append(profile.user_id)
            if profile.open_to_matching:
                delta[profile.user_id] = profile
            else:
                delta.pop(profile.user_id, None)
        if not touched:
            return self
        hidden = self.hidden
        positions = self.base.positions_of(touched)
        if len(positions) and (hidden is None or not hidden[positions].all()):
            hidden = np.zeros(len(self.base), dtype=bool) if hidden is None else hidden.copy()
            hidden[positions] = True
        return LiveProfileIndex(self.base, hidden=hidden, delta=delta)

    def with_base(self, base: ProfileIndex) -> LiveProfileIndex:
        """The same overlay on another copy of the same base (the same rows in the same order,
        e.g. the base mapped from a host snapshot instead of this process's own arrays)."""
        if len(base) != len(self.base):
            raise ValueError("another base must hold the same rows")
        return LiveProfileIndex(base, hidden=self.hidden, delta=self.delta, delta_index=self._delta_index)

    def search(self, request: SearchRequest) -> list[Match]:
        return self.search_counted(request)[0]

    def search_counted(self, request: SearchRequest) -> tuple[list[Match], int]:
        """The ranking over base and delta, and how many profiles matched before the cap."""
        matches, count = self._visible_base.search_counted(request)
        if self._delta_index is None:
            return matches, count
        delta_matches, delta_count = self._delta_index.search_counted(request)
        if not delta_matches:
            return matches, count + delta_count
        # Each part's top K holds every member of the overall top K that lives in that part.
        return rules.rank_matches([*matches, *delta_matches], request.limit), count + delta_count

    def nbytes(self) -> int:
        """Bytes held: the base's columns, the hidden mask and visible `open` copy, the delta."""
        total = self.base.nbytes() + (0 if self.hidden is None else self.hidden.nbytes)
        if self._visible_base is not self.base:
            total += self._visible_base.open.nbytes
        if self._delta_index is not None:
            total += self._delta_index.nbytes() + len(self.delta) * _PROFILE_BYTES_ESTIMATE
        return total


# A delta Profile (dataclass, tuples, strings) weighs roughly this much; the delta stays small.
_PROFILE_BYTES_ESTIMATE = 1024
