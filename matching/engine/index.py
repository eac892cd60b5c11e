"""Columnar, vectorised form of the matching rules.

`ProfileIndex.build` turns profiles into numpy columns once; `search` then applies the rules of
`rules.py` to every profile at once and must return exactly what `match_baseline` returns.
Set-valued fields (resorts, regions, dates, certifications) are interned to small ints and held
as per-row bitmasks (up to `_MAX_WORDS` uint64 words) or, beyond that, as CSR rows.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain

import numpy as np

from . import rules
from .types import Match, Profile, SearchRequest

_MAX_WORDS = 4  # up to 256 distinct values per column as bitmasks, else CSR
_HALF_TOLERANCE = 1e-9  # scaled totals this close to .5 are rounded by Python's round()


class _SetColumn:
    """One set-valued field of every profile, queried with "does row i share a value with Q"."""

    def __init__(self, vocab: dict[str, int], rows: np.ndarray, ids: np.ndarray, n_rows: int):
        self.vocab = vocab
        self.n_rows = n_rows
        self.non_empty = np.bincount(rows, minlength=n_rows) > 0 if n_rows else np.zeros(0, bool)
        n_words = (len(vocab) + 63) // 64
        self.words: list[np.ndarray] | None = None
        if n_words <= _MAX_WORDS:
            self.words = []
            bits = np.left_shift(np.uint64(1), (ids & 63).astype(np.uint64))
            for word in range(n_words):
                in_word = (ids >> 6) == word
                column = np.zeros(n_rows, dtype=np.uint64)
                np.bitwise_or.at(column, rows[in_word], bits[in_word])
                self.words.append(column)
        else:
            order = np.argsort(rows, kind="stable")
            self.flat = ids[order]
            self.offsets = np.zeros(n_rows + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=n_rows), out=self.offsets[1:])

    @classmethod
    def from_rows(cls, values_per_row: Sequence[Sequence[str]]) -> _SetColumn:
        vocab = {v: i for i, v in enumerate(sorted(set(chain.from_iterable(values_per_row))))}
        rows, ids = _coo(values_per_row, vocab)
        return cls(vocab, rows, ids, len(values_per_row))

    def ids_of(self, values: Iterable[str]) -> list[int]:
        """Interned ids of the values this column has seen; unseen values can match nobody."""
        return sorted({self.vocab[v] for v in values if v in self.vocab})

    def intersects(self, values: Iterable[str], rows: np.ndarray | None = None) -> np.ndarray:
        """For each row (or each of `rows`), whether its set shares a value with `values`."""
        ids = self.ids_of(values)
        size = self.n_rows if rows is None else len(rows)
        hit = np.zeros(size, dtype=bool)
        if not ids:
            return hit
        if self.words is not None:
            masks = [0] * len(self.words)
            for i in ids:
                masks[i >> 6] |= 1 << (i & 63)
            for column, mask in zip(self.words, masks, strict=True):
                if mask:
                    values_ = column if rows is None else column[rows]
                    hit |= (values_ & np.uint64(mask)) != 0
            return hit
        wanted = np.zeros(len(self.vocab), dtype=bool)
        wanted[ids] = True
        hits_before = np.zeros(len(self.flat) + 1, dtype=np.int64)
        np.cumsum(wanted[self.flat], out=hits_before[1:])
        per_row = hits_before[self.offsets[1:]] - hits_before[self.offsets[:-1]] > 0
        return per_row if rows is None else per_row[rows]


def _coo(values_per_row: Sequence[Sequence[str]], vocab: Mapping[str, int]):
    lengths = np.fromiter(map(len, values_per_row), dtype=np.int64, count=len(values_per_row))
    rows = np.repeat(np.arange(len(values_per_row), dtype=np.int64), lengths)
    ids = np.fromiter(
        map(vocab.__getitem__, chain.from_iterable(values_per_row)),
        dtype=np.int64,
        count=int(lengths.sum()),
    )
    return rows, ids


class ProfileIndex:
    """Profiles in columnar form; build once, search many times. Read-only after `build`."""

    resort_regions: dict[str, str]
    skill: np.ndarray  # int64
    open: np.ndarray  # bool
    knowledge: np.ndarray  # float64, NaN where missing
    role_vocab: dict[str, int]
    role: np.ndarray  # int64 codes into role_vocab
    resorts: _SetColumn
    regions: _SetColumn  # named regions plus the regions of the profile's resorts
    dates: _SetColumn
    certifications: _SetColumn
    uid_order: list[int]  # positions sorted by user_id
    sorted_user_ids: list[str]
    uid_rank: np.ndarray  # int64, each position's place in user_id order

    def __init__(self) -> None:  # use ProfileIndex.build
        self.user_ids: list[str] = []

    def __len__(self) -> int:
        return len(self.user_ids)

    @classmethod
    def build(cls, profiles: Iterable[Profile], resort_regions: Mapping[str, str]) -> ProfileIndex:
        profiles = list(profiles)
        n = len(profiles)
        index = cls()
        index.resort_regions = dict(resort_regions)
        index.user_ids = [p.user_id for p in profiles]
        index.skill = np.fromiter((p.skill_level for p in profiles), dtype=np.int64, count=n)
        index.open = np.fromiter((bool(p.open_to_matching) for p in profiles), dtype=bool, count=n)
        index.knowledge = np.fromiter(
            (np.nan if p.knowledge_score is None else p.knowledge_score for p in profiles),
            dtype=np.float64,
            count=n,
        )
        role_names = [p.role for p in profiles]
        index.role_vocab = {r: i for i, r in enumerate(sorted(set(role_names)))}
        index.role = np.fromiter(map(index.role_vocab.__getitem__, role_names), np.int64, count=n)

        resorts = [p.resorts for p in profiles]
        index.resorts = _SetColumn.from_rows(resorts)
        index.regions = _build_region_column([p.regions for p in profiles], resorts, index.resorts, resort_regions)
        index.dates = _SetColumn.from_rows([p.available_dates for p in profiles])
        index.certifications = _SetColumn.from_rows([p.certifications for p in profiles])

        # Ties sort on an int: each profile's position in user_id string order (stable).
        index.uid_order = sorted(range(n), key=index.user_ids.__getitem__)
        index.sorted_user_ids = list(map(index.user_ids.__getitem__, index.uid_order))
        index.uid_rank = np.empty(n, dtype=np.int64)
        index.uid_rank[index.uid_order] = np.arange(n, dtype=np.int64)
        return index

    def _positions_of(self, user_id: str) -> list[int]:
        lo = bisect_left(self.sorted_user_ids, user_id)
        hi = bisect_right(self.sorted_user_ids, user_id)
        return self.uid_order[lo:hi]

    def search(self, request: SearchRequest) -> list[Match]:
        """The same ranking as `match_baseline(request, profiles, resort_regions)`."""
        if not self.user_ids or request.limit <= 0:
            return []
        keep = self.open & (self.skill >= request.skill_level_min)
        keep &= self.skill <= request.skill_level_max
        keep[self._positions_of(request.seeker_id)] = False
        if request.required_certifications:
            keep &= self.certifications.intersects(request.required_certifications)
        seeker_regions = rules.expand_regions(request.resorts, request.regions, self.resort_regions)
        names_location = bool(request.resorts or request.regions)
        if names_location:
            common_resort = self.resorts.intersects(request.resorts)
            common_region = self.regions.intersects(seeker_regions)
            keep &= common_resort | common_region
        rows = np.flatnonzero(keep)
        if not len(rows):
            return []

        if names_location:
            location = np.where(
                common_resort[rows],
                rules.LOCATION_RESORT,
                np.where(common_region[rows], rules.LOCATION_REGION, 0.0),
            )
        else:
            location = np.zeros(len(rows))
        availability = self._availability(request, rows)
        role_lut = np.array([rules.role_score(name, request.role) for name in self.role_vocab], dtype=np.float64)
        role = role_lut[self.role[rows]]
        knowledge = self._knowledge(request, rows) if request.include_knowledge_score else None

        total = _weighted_total(location, availability, role, knowledge)
        score = _round_scores(total)
        passing = np.flatnonzero(score > rules.MIN_SCORE)
        top = _top_k(score[passing], self.uid_rank[rows[passing]], len(self), request.limit)
        chosen = passing[top]

        return [
            Match(
                user_id=self.user_ids[rows[i]],
                score=float(score[i]),
                breakdown=rules.make_breakdown(
                    1.0,  # the skill filter leaves only in-range candidates
                    float(location[i]),
                    float(availability[i]),
                    float(role[i]),
                    None if knowledge is None else float(knowledge[i]),
                ),
                rank=rank,
            )
            for rank, i in enumerate(chosen.tolist(), start=1)
        ]

    def _availability(self, request: SearchRequest, rows: np.ndarray) -> np.ndarray:
        if not request.dates:
            return np.full(len(rows), rules.AVAILABILITY_UNKNOWN)
        common = self.dates.intersects(request.dates, rows)
        return np.where(
            ~self.dates.non_empty[rows],
            rules.AVAILABILITY_UNKNOWN,
            np.where(common, rules.AVAILABILITY_COMMON, 0.0),
        )

    def _knowledge(self, request: SearchRequest, rows: np.ndarray) -> np.ndarray:
        seeker = request.knowledge_score
        if not seeker:
            return np.full(len(rows), rules.KNOWLEDGE_UNKNOWN)
        candidate = self.knowledge[rows]
        unknown = np.isnan(candidate) | (candidate == 0)
        # Same IEEE operations as rules.knowledge_score: |a - b| / 100, 1 - x, clamp.
        closeness = np.clip(1.0 - np.abs(float(seeker) - candidate) / 100, 0.0, 1.0)
        return np.where(unknown, rules.KNOWLEDGE_UNKNOWN, closeness)


def _build_region_column(
    named_regions: Sequence[Sequence[str]],
    resorts: Sequence[Sequence[str]],
    resort_column: _SetColumn,
    resort_regions: Mapping[str, str],
) -> _SetColumn:
    """Each profile's regions plus the regions of its resorts (expanded here, once)."""
    region_names = set(chain.from_iterable(named_regions))
    region_names.update(resort_regions[r] for r in resort_column.vocab if r in resort_regions)
    vocab = {v: i for i, v in enumerate(sorted(region_names))}
    named_rows, named_ids = _coo(named_regions, vocab)
    region_of_resort = np.array(
        [vocab[resort_regions[r]] if r in resort_regions else -1 for r in resort_column.vocab],
        dtype=np.int64,
    )
    resort_rows, resort_ids = _coo(resorts, resort_column.vocab)
    via_resort = region_of_resort[resort_ids] if len(resort_ids) else resort_ids
    known = via_resort >= 0
    rows = np.concatenate([named_rows, resort_rows[known]])
    ids = np.concatenate([named_ids, via_resort[known]])
    return _SetColumn(vocab, rows, ids, len(named_regions))


def _weighted_total(
    location: np.ndarray, availability: np.ndarray, role: np.ndarray, knowledge: np.ndarray | None
) -> np.ndarray:
    # Mirrors rules.weighted_total term by term (skill is 1.0) so the floats come out equal.
    w_skill, w_location, w_availability, w_role, w_knowledge = rules.WEIGHTS_WITH_KNOWLEDGE
    base = w_skill * 1.0 + w_location * location + w_availability * availability + w_role * role
    if knowledge is None:
        return base + rules.KNOWLEDGE_SHARE * (1.0 + location + availability + role)
    return base + w_knowledge * knowledge


def _round_scores(total: np.ndarray) -> np.ndarray:
    """round(total, 2) element-wise, exactly as Python rounds.

    x*100 -> rint -> /100 agrees with Python's correctly rounded round() except where the
    scaled value sits within float error of a .5; those are redone with round(). With knowledge
    they are common (0.3 + 0.25 + 0.2 + 0.15 + 0.1 * 0.95 = 0.995) but take few distinct values,
    so round() runs once per distinct value.
    """
    scaled = total * 100.0
    score = np.rint(scaled) / 100.0
    near_half = np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < _HALF_TOLERANCE)
    if len(near_half):
        distinct, inverse = np.unique(total[near_half], return_inverse=True)
        fixed = np.array([rules.round_score(t) for t in distinct.tolist()], dtype=np.float64)
        score[near_half] = fixed[inverse]
    return score


def _top_k(score: np.ndarray, uid_rank: np.ndarray, n: int, limit: int) -> np.ndarray:
    """Positions of the best `limit` by (score desc, user_id asc), in that order."""
    # Rounded scores are k/100: one int64 key orders by k descending, then by uid_rank.
    key = uid_rank - np.rint(score * 100.0).astype(np.int64) * (n + 1)
    if len(key) > limit:
        candidates = np.argpartition(key, limit - 1)[:limit]
        return candidates[np.argsort(key[candidates])]
    return np.argsort(key)
