"""Columnar, vectorised form of the matching rules.

Long on purpose: the vectorised rules mirror `rules.py` one for one, and reading them side by side
in one module is how a change to a rule is checked against its baseline.

`ProfileIndex.build` turns profiles into numpy columns once (`ProfileIndexBuilder` does it chunk by
chunk, for callers that stream rows from a database), its rows sorted by role and skill level;
`search` then applies the rules of `rules.py` to the rows a search can match, block by block, and
must return exactly what `match_baseline` returns (and what scanning every row returns).
Set-valued fields (resorts, regions, dates, certifications) are interned to small ints and held
as per-row bitmasks (up to `_MAX_WORDS` uint64 words) or, beyond that, as CSR rows. User ids are
held as one fixed-width bytes array (UTF-8): no Python object per profile, and bytes order is
code point order, i.e. the rules' tie-break order (ids must not end in NUL bytes).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain

import numpy as np

from . import rules
from .types import Match, Profile, SearchRequest

_MAX_WORDS = 4  # up to 256 distinct values per column as bitmasks, else CSR
_HALF_TOLERANCE = 1e-9  # scaled totals this close to .5 are rounded by Python's round()


class _SetColumn:
    """One set-valued field of every profile, queried with "does row i share a value with Q"."""

    words: list[np.ndarray] | None  # bitmask form: one uint64 column per 64 values
    flat: np.ndarray  # CSR form (more than _MAX_WORDS words of values): ids, row by row
    offsets: np.ndarray

    def __init__(self, vocab: dict[str, int], n_rows: int, non_empty: np.ndarray):
        self.vocab = vocab
        self.n_rows = n_rows
        self.non_empty = non_empty
        self.words = None

    @classmethod
    def from_sources(
        cls, vocab: dict[str, int], sources: list[list[tuple[np.ndarray, np.ndarray]]], n_rows: int
    ) -> _SetColumn:
        """Each source is a list of chunks `(lengths, ids)` covering consecutive rows from row 0:
        `lengths[i]` values for the chunk's i-th row, their interned `ids` in row order (ids < 0
        are skipped). A row's set is the union over the sources."""
        n_words = (len(vocab) + 63) // 64
        if n_words <= _MAX_WORDS:
            words = np.zeros((n_words, n_rows), dtype=np.uint64)
            for chunks in sources:
                first = 0
                for lengths, ids in chunks:
                    _or_bits_into(words[:, first : first + len(lengths)], lengths, ids)
                    first += len(lengths)
            column = cls(vocab, n_rows, np.bitwise_or.reduce(words, axis=0) != 0 if n_words else np.zeros(n_rows, bool))
            column.words = [words[w] for w in range(n_words)]
            return column
        rows_parts, ids_parts = [], []
        for chunks in sources:
            first = 0
            for lengths, ids in chunks:
                rows = np.repeat(np.arange(first, first + len(lengths), dtype=np.int64), lengths)
                keep = ids >= 0
                rows_parts.append(rows[keep])
                ids_parts.append(ids[keep].astype(np.int64))
                first += len(lengths)
        rows = np.concatenate(rows_parts) if rows_parts else np.zeros(0, dtype=np.int64)
        ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=np.int64)
        counts = np.bincount(rows, minlength=n_rows)
        column = cls(vocab, n_rows, counts > 0)
        column.flat = ids[np.argsort(rows, kind="stable")]
        column.offsets = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=column.offsets[1:])
        return column

    def nbytes(self) -> int:
        arrays = [self.non_empty, *(self.words or [])]
        if self.words is None:
            arrays += [self.flat, self.offsets]
        return sum(a.nbytes for a in arrays) + sys.getsizeof(self.vocab)

    def ids_of(self, values: Iterable[str]) -> list[int]:
        """Interned ids of the values this column has seen; unseen values can match nobody."""
        return sorted({self.vocab[v] for v in values if v in self.vocab})

    def intersects(
        self, values: Iterable[str], rows: np.ndarray | None = None, window: tuple[int, int] | None = None
    ) -> np.ndarray:
        """For each row (or each of `rows`, or each row of the `window` [start, stop)), whether its
        set shares a value with `values`."""
        ids = self.ids_of(values)
        if rows is not None:
            size = len(rows)
        elif window is not None:
            size = window[1] - window[0]
        else:
            size = self.n_rows
        hit = np.zeros(size, dtype=bool)
        if not ids:
            return hit
        if self.words is not None:
            masks = [0] * len(self.words)
            for i in ids:
                masks[i >> 6] |= 1 << (i & 63)
            for column, mask in zip(self.words, masks, strict=True):
                if not mask:
                    continue
                if window is not None:
                    _or_hits_in_chunks(hit, column, window[0], np.uint64(mask))
                else:
                    values_ = column if rows is None else column[rows]
                    hit |= (values_ & np.uint64(mask)) != 0
            return hit
        wanted = np.zeros(len(self.vocab), dtype=bool)
        wanted[ids] = True
        hits_before = np.zeros(len(self.flat) + 1, dtype=np.int64)
        np.cumsum(wanted[self.flat], out=hits_before[1:])
        per_row = hits_before[self.offsets[1:]] - hits_before[self.offsets[:-1]] > 0
        if rows is not None:
            return per_row[rows]
        return per_row if window is None else per_row[window[0] : window[1]]

    def reordered(self, order: np.ndarray) -> _SetColumn:
        """The same sets with row i taken from row `order[i]`."""
        column = type(self)(self.vocab, self.n_rows, self.non_empty[order])
        if self.words is not None:
            column.words = [np.ascontiguousarray(w[order]) for w in self.words]
            return column
        lengths = np.diff(self.offsets)[order]
        column.offsets = np.zeros(self.n_rows + 1, dtype=np.int64)
        np.cumsum(lengths, out=column.offsets[1:])
        # Each new row's values are its old row's run: start there and count up within the run.
        shift = np.repeat(self.offsets[:-1][order] - column.offsets[:-1], lengths)
        column.flat = self.flat[np.arange(int(column.offsets[-1]), dtype=np.int64) + shift]
        return column


_CHUNK_ROWS = 1 << 16  # a window is tested this many rows at a time: bounded scratch, cache-sized


def _or_hits_in_chunks(hit: np.ndarray, column: np.ndarray, start: int, mask: np.uint64) -> None:
    """hit[i] |= column[start + i] & mask != 0, through two small reused buffers: a search's
    scratch stays the same size whatever the window's (a process keeps what malloc once gave it)."""
    size = min(len(hit), _CHUNK_ROWS)
    words, found = np.empty(size, dtype=np.uint64), np.empty(size, dtype=bool)
    for lo in range(0, len(hit), _CHUNK_ROWS):
        hi = min(lo + _CHUNK_ROWS, len(hit))
        np.bitwise_and(column[start + lo : start + hi], mask, out=words[: hi - lo])
        np.not_equal(words[: hi - lo], 0, out=found[: hi - lo])
        hit[lo:hi] |= found[: hi - lo]


def _or_bits_into(words: np.ndarray, lengths: np.ndarray, ids: np.ndarray) -> None:
    """OR each row's value bits into `words` (n_words by rows), one segment reduction per word."""
    if not len(ids):
        return
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    non_empty = lengths > 0
    segments = starts[non_empty]  # empty rows own no values, so these delimit every row's run
    valid = ids >= 0
    word_of = ids >> 6
    bit = np.left_shift(np.uint64(1), (ids & 63).astype(np.uint64))
    for w in range(words.shape[0]):
        in_word = np.where(valid & (word_of == w), bit, np.uint64(0))
        words[w, non_empty] |= np.bitwise_or.reduceat(in_word, segments)


class _SetAccumulator:
    """One set-valued field, gathered chunk by chunk as per-row counts and interned ids."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, lengths: np.ndarray, values: Sequence[str]) -> None:
        vocab = self.vocab
        for value in sorted(set(values).difference(vocab)):
            vocab[value] = len(vocab)
        ids = np.fromiter(map(vocab.__getitem__, values), dtype=np.int32, count=len(values))
        if int(lengths.sum()) != len(ids):
            raise ValueError("a set column's counts and values disagree")
        self.chunks.append((lengths.astype(np.int32, copy=False), ids))


def _flatten(values_per_row: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[str]]:
    lengths = np.fromiter(map(len, values_per_row), dtype=np.int32, count=len(values_per_row))
    return lengths, list(chain.from_iterable(values_per_row))


_NO_KNOWLEDGE = float("nan")


class ProfileIndexBuilder:
    """Columns of a `ProfileIndex`, filled one chunk of profiles at a time.

    A caller streaming rows from a database adds each chunk as plain column sequences and drops
    it, so no Profile object (or row dict) ever exists for the whole population.
    """

    def __init__(self, resort_regions: Mapping[str, str]):
        self.resort_regions = dict(resort_regions)
        self.count = 0
        self._user_ids: list[np.ndarray] = []
        self._skill: list[np.ndarray] = []
        self._open: list[np.ndarray] = []
        self._knowledge: list[np.ndarray] = []
        self._role: list[np.ndarray] = []
        self.role_vocab: dict[str, int] = {}
        self._resorts = _SetAccumulator()
        self._named_regions = _SetAccumulator()
        self._dates = _SetAccumulator()
        self._certifications = _SetAccumulator()

    def add(
        self,
        *,
        user_ids: Sequence[str],
        skill_levels: Sequence[int],
        roles: Sequence[str],
        knowledge_scores: Sequence[int | None],
        resorts: Sequence[Sequence[str]],
        regions: Sequence[Sequence[str]],
        available_dates: Sequence[Sequence[str]],
        certifications: Sequence[Sequence[str]],
        open_to_matching: Sequence[bool] | None = None,
    ) -> None:
        """Append one chunk; every sequence holds one entry per profile. `open_to_matching`
        defaults to all open (a loader that reads only open profiles need not send it)."""
        self.add_flat(
            user_ids=user_ids,
            skill_levels=skill_levels,
            roles=roles,
            knowledge_scores=knowledge_scores,
            resorts=_flatten(resorts),
            regions=_flatten(regions),
            available_dates=_flatten(available_dates),
            certifications=_flatten(certifications),
            open_to_matching=open_to_matching,
        )

    def add_flat(
        self,
        *,
        user_ids: Sequence[str] | np.ndarray,
        skill_levels: Sequence[int] | np.ndarray,
        roles: Sequence[str],
        knowledge_scores: Sequence[int | None] | np.ndarray,
        resorts: tuple[np.ndarray, Sequence[str]],
        regions: tuple[np.ndarray, Sequence[str]],
        available_dates: tuple[np.ndarray, Sequence[str]],
        certifications: tuple[np.ndarray, Sequence[str]],
        open_to_matching: Sequence[bool] | None = None,
    ) -> None:
        """Append one chunk whose set fields come flat: `(counts per profile, all values in
        profile order)`. `user_ids` may already be a UTF-8 bytes array. The cheapest form for a
        loader: no list per profile is ever made."""
        n = len(user_ids)
        if isinstance(user_ids, np.ndarray):
            ids = user_ids.astype(np.bytes_, copy=False)
        else:
            ids = np.array([uid.encode() for uid in user_ids], dtype=np.bytes_) if n else _EMPTY_IDS
        self._user_ids.append(ids)
        self._skill.append(np.asarray(skill_levels, dtype=np.int64).reshape(n))
        if open_to_matching is None:
            self._open.append(np.ones(n, dtype=bool))
        else:
            self._open.append(np.fromiter(map(bool, open_to_matching), dtype=bool, count=n))
        # None becomes NaN in a float array: "no knowledge score".
        self._knowledge.append(np.array(knowledge_scores, dtype=np.float64).reshape(n))
        vocab = self.role_vocab
        for role in sorted(set(roles).difference(vocab)):
            vocab[role] = len(vocab)
        self._role.append(np.fromiter(map(vocab.__getitem__, roles), dtype=np.int16, count=n))
        for accumulator, (lengths, values) in (
            (self._resorts, resorts),
            (self._named_regions, regions),
            (self._dates, available_dates),
            (self._certifications, certifications),
        ):
            if len(lengths) != n:
                raise ValueError("every column of a chunk needs one entry per profile")
            accumulator.add(np.asarray(lengths), values)
        self.count += n

    def add_coded(
        self,
        *,
        user_ids: np.ndarray,
        skill_levels: np.ndarray,
        roles: tuple[np.ndarray, Sequence[str]],
        knowledge_scores: np.ndarray,
        resorts: tuple[np.ndarray, np.ndarray, Sequence[str]],
        regions: tuple[np.ndarray, np.ndarray, Sequence[str]],
        available_dates: tuple[np.ndarray, np.ndarray, Sequence[str]],
        certifications: tuple[np.ndarray, np.ndarray, Sequence[str]],
    ) -> None:
        """Append one chunk of open profiles whose strings a loader has already interned: a role
        is `(codes, distinct values)`, a set field `(counts per profile, codes in profile order,
        distinct values)`, codes indexing the chunk's own distinct values. Only the few distinct
        values meet Python: the cheapest form for a bulk loader. `knowledge_scores` is float
        with NaN for none; `user_ids` a UTF-8 bytes array."""
        n = len(user_ids)
        self._user_ids.append(user_ids.astype(np.bytes_, copy=False))
        self._skill.append(np.asarray(skill_levels, dtype=np.int64).reshape(n))
        self._open.append(np.ones(n, dtype=bool))
        self._knowledge.append(np.asarray(knowledge_scores, dtype=np.float64).reshape(n))
        codes, values = roles
        self._role.append(_recode(self.role_vocab, codes, values).astype(np.int16).reshape(n))
        for accumulator, (lengths, codes, values) in (
            (self._resorts, resorts),
            (self._named_regions, regions),
            (self._dates, available_dates),
            (self._certifications, certifications),
        ):
            if len(lengths) != n or int(np.sum(lengths)) != len(codes):
                raise ValueError("a set column's counts and values disagree")
            ids = _recode(accumulator.vocab, codes, values)
            accumulator.chunks.append((np.asarray(lengths, dtype=np.int32), ids.astype(np.int32)))
        self.count += n

    def add_profiles(self, profiles: Sequence[Profile]) -> None:
        self.add(
            user_ids=[p.user_id for p in profiles],
            skill_levels=[p.skill_level for p in profiles],
            roles=[p.role for p in profiles],
            knowledge_scores=[p.knowledge_score for p in profiles],
            resorts=[p.resorts for p in profiles],
            regions=[p.regions for p in profiles],
            available_dates=[p.available_dates for p in profiles],
            certifications=[p.certifications for p in profiles],
            open_to_matching=[p.open_to_matching for p in profiles],
        )

    def build(self) -> ProfileIndex:
        n = self.count
        index = ProfileIndex()
        index.resort_regions = self.resort_regions
        index.user_ids = np.concatenate(self._user_ids) if self._user_ids else _EMPTY_IDS
        index.skill = _concat(self._skill, np.int64)
        index.open = _concat(self._open, bool)
        index.knowledge = _concat(self._knowledge, np.float64)
        index.role_vocab = dict(self.role_vocab)
        index.role = _concat(self._role, np.int16)
        index.resorts = _SetColumn.from_sources(self._resorts.vocab, [self._resorts.chunks], n)
        index.regions = _build_region_column(self._named_regions, self._resorts, self.resort_regions, n)
        index.dates = _SetColumn.from_sources(self._dates.vocab, [self._dates.chunks], n)
        index.certifications = _SetColumn.from_sources(self._certifications.vocab, [self._certifications.chunks], n)
        # Ties sort on an int: each profile's place in user id order (stable, so equal ids keep
        # their insertion order, as the baseline's stable sort does).
        index.uid_order = np.argsort(index.user_ids, kind="stable").astype(np.int64)
        index.uid_rank = np.empty(n, dtype=np.int64)
        index.uid_rank[index.uid_order] = np.arange(n, dtype=np.int64)
        return index.in_block_order()


_EMPTY_IDS = np.zeros(0, dtype="S1")


def _recode(vocab: dict[str, int], codes: np.ndarray, values: Sequence[str]) -> np.ndarray:
    """Codes into a chunk's own `values` as ids of `vocab` (values new to it are added, sorted)."""
    for value in sorted(set(values).difference(vocab)):
        vocab[value] = len(vocab)
    table = np.fromiter((vocab[v] for v in values), dtype=np.int64, count=len(values))
    return table[codes] if len(codes) else np.zeros(0, dtype=np.int64)


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


class ProfileIndex:
    """Profiles in columnar form; build once, search many times. Read-only after `build`."""

    resort_regions: dict[str, str]
    user_ids: np.ndarray  # bytes (UTF-8), one per position
    skill: np.ndarray  # int64
    open: np.ndarray  # bool
    knowledge: np.ndarray  # float64, NaN where missing
    role_vocab: dict[str, int]
    role: np.ndarray  # int16 codes into role_vocab
    resorts: _SetColumn
    regions: _SetColumn  # named regions plus the regions of the profile's resorts
    dates: _SetColumn
    certifications: _SetColumn
    uid_order: np.ndarray  # int64 positions sorted by user_id
    uid_rank: np.ndarray  # int64, each position's place in user_id order
    in_blocks: bool  # rows sorted by (role, skill): see `in_block_order`

    def __init__(self) -> None:  # use ProfileIndex.build or ProfileIndexBuilder
        self.user_ids = _EMPTY_IDS
        self.in_blocks = False

    def __len__(self) -> int:
        return len(self.user_ids)

    @classmethod
    def build(cls, profiles: Iterable[Profile], resort_regions: Mapping[str, str]) -> ProfileIndex:
        builder = ProfileIndexBuilder(resort_regions)
        builder.add_profiles(list(profiles))
        return builder.build()

    def user_id_at(self, position: int) -> str:
        return self.user_ids[position].decode()

    def positions_of(self, user_ids: Iterable[str]) -> np.ndarray:
        """Every position holding one of `user_ids` (ids absent from the index are skipped)."""
        width = self.user_ids.dtype.itemsize
        # Keys of the column's own dtype (another makes numpy cast, i.e. copy, the whole column);
        # an id longer than the column's width is held by no row.
        encoded = [key for key in (uid.encode() for uid in user_ids) if len(key) <= width]
        keys = np.array(encoded, dtype=self.user_ids.dtype)
        if not len(keys) or not len(self):
            return np.zeros(0, dtype=np.int64)
        lo = np.searchsorted(self.user_ids, keys, side="left", sorter=self.uid_order)
        hi = np.searchsorted(self.user_ids, keys, side="right", sorter=self.uid_order)
        if int((hi - lo).max()) <= 1:
            return self.uid_order[lo[hi > lo]]
        return np.concatenate([self.uid_order[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])

    def with_open(self, open_to_matching: np.ndarray) -> ProfileIndex:
        """The same index with another `open` column: rows set False drop out of every search.
        Shares every other column (a shallow copy), so it costs one bool per profile."""
        if open_to_matching.shape != self.open.shape or open_to_matching.dtype != bool:
            raise ValueError("the open column must be one bool per profile")
        clone = copy.copy(self)
        clone.open = open_to_matching
        return clone

    def in_block_order(self) -> ProfileIndex:
        """This index with its rows sorted by role, then skill level (stable): each role is one
        block of rows, and a skill range is one contiguous run of each block, so a search reads
        slices (views) instead of filtering every row, and can skip a block whose best possible
        score cannot reach its top K (`search_counted`). The builder returns indexes in this order."""
        if self.in_blocks:
            return self
        order = np.lexsort((self.skill, self.role))
        index = ProfileIndex()
        index.resort_regions = self.resort_regions
        index.role_vocab = self.role_vocab
        for name in ("user_ids", "skill", "open", "knowledge", "role"):
            setattr(index, name, np.ascontiguousarray(getattr(self, name)[order]))
        for name in ("resorts", "regions", "dates", "certifications"):
            setattr(index, name, getattr(self, name).reordered(order))
        new_position = np.empty(len(order), dtype=np.int64)
        new_position[order] = np.arange(len(order), dtype=np.int64)
        index.uid_order = new_position[self.uid_order]
        index.uid_rank = np.ascontiguousarray(self.uid_rank[order])
        index.in_blocks = True
        return index

    def nbytes(self) -> int:
        """Bytes held by this index's columns (numpy buffers and the small vocabularies)."""
        total = sum(
            a.nbytes
            for a in (self.user_ids, self.skill, self.open, self.knowledge, self.role, self.uid_order, self.uid_rank)
        )
        for column in (self.resorts, self.regions, self.dates, self.certifications):
            total += column.nbytes()
        return total

    def search(self, request: SearchRequest) -> list[Match]:
        """The same ranking as `match_baseline(request, profiles, resort_regions)`."""
        return self.search_counted(request)[0]

    def search_counted(self, request: SearchRequest, *, partitioned: bool = True) -> tuple[list[Match], int]:
        """The ranking, and how many profiles matched before the `limit` cap.

        An index in block order is searched block by block (`_search_blocks`); `partitioned=False`
        scans every row at once (`_search_scan`), the reference the block search must equal."""
        if not len(self) or request.limit <= 0:
            return [], 0
        if partitioned and self.in_blocks:
            matches, count, _ = self._search_blocks(request)
            return matches, count
        return self._search_scan(request)

    def search_scored(self, request: SearchRequest) -> tuple[list[Match], int, int]:
        """`search_counted`'s answer plus how many rows were scored (the rest were counted from
        the filters alone, or skipped as out of range): what the partitioning saved."""
        if not len(self) or request.limit <= 0:
            return [], 0, 0
        if self.in_blocks:
            return self._search_blocks(request)
        matches, count = self._search_scan(request)
        return matches, count, count

    def _search_scan(self, request: SearchRequest) -> tuple[list[Match], int]:
        keep = self.open & (self.skill >= request.skill_level_min)
        keep &= self.skill <= request.skill_level_max
        keep[self.positions_of([request.seeker_id])] = False
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
            return [], 0

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

        chosen_parts = _Scored(rows, score, location, availability, role, knowledge).take(chosen)
        return chosen_parts.matches(self), len(passing)

    def _search_blocks(self, request: SearchRequest) -> tuple[list[Match], int, int]:
        """The ranking of `_search_scan`, read block by block.

        Each role block's skill range is a slice. On it the filters (open, not the seeker,
        certifications, location) make one mask per location tier (a common resort, a common
        region only, or no location named), and each (role, tier) part has a constant role and
        location score, hence a best and a worst possible rounded score. Parts are scored best
        first; once the top K is full and its K-th score beats a part's best, that part and every
        later one cannot place: they are only counted, from their masks (every row of a part whose
        worst score passes the threshold is a match; a part that might fall below it is scored).
        Rounding is monotone, so the bounds hold for the rounded scores the ranking compares."""
        seeker_regions = rules.expand_regions(request.resorts, request.regions, self.resort_regions)
        names_location = bool(request.resorts or request.regions)
        seeker_rows = self.positions_of([request.seeker_id]).tolist()
        parts: list[tuple[float, float, int, np.ndarray, float, float]] = []
        for code, role_name in enumerate(self.role_vocab):
            start, stop = self._block_skill_range(code, request.skill_level_min, request.skill_level_max)
            if start >= stop:
                continue
            keep = self.open[start:stop].copy()
            for row in seeker_rows:
                if start <= row < stop:
                    keep[row - start] = False
            window = (start, stop)
            if request.required_certifications:
                keep &= self.certifications.intersects(request.required_certifications, window=window)
            role = rules.role_score(role_name, request.role)
            if names_location:
                resort = self.resorts.intersects(request.resorts, window=window)
                region = self.regions.intersects(seeker_regions, window=window)
                tiers = ((rules.LOCATION_RESORT, keep & resort), (rules.LOCATION_REGION, keep & ~resort & region))
            else:
                tiers = ((0.0, keep),)
            for location, mask in tiers:
                best, worst = _score_bounds(request, location, role)
                parts.append((best, worst, start, mask, location, role))
        parts.sort(key=lambda part: -part[0])  # stable: equal bounds keep block order

        top: _Scored | None = None
        count = scored_rows = 0
        for best, worst, start, mask, location, role in parts:
            full = top is not None and len(top.rows) >= request.limit
            if full and top.score[-1] > best and worst > rules.MIN_SCORE:
                count += int(np.count_nonzero(mask))  # cannot place, and every row passes
                continue
            rows = np.flatnonzero(mask) + start
            if not len(rows):
                continue
            scored_rows += len(rows)
            part = self._score_rows(request, rows, location, role)
            passing = np.flatnonzero(part.score > rules.MIN_SCORE)
            count += len(passing)
            part = part.take(passing)
            if top is not None:
                part = top.join(part)
            top = part.take(_top_k(part.score, self.uid_rank[part.rows], len(self), request.limit))
        return ([] if top is None else top.matches(self)), count, scored_rows

    def _block_skill_range(self, code: int, skill_min: int, skill_max: int) -> tuple[int, int]:
        """Rows [start, stop) of role `code` with a skill level in [skill_min, skill_max]."""
        # Keys of the column's own dtype: any other makes numpy cast (copy) the whole column.
        role = np.array(code, dtype=self.role.dtype)
        first = int(np.searchsorted(self.role, role, side="left"))
        last = int(np.searchsorted(self.role, role, side="right"))
        skills = self.skill[first:last]
        low, high = np.array([skill_min, skill_max], dtype=self.skill.dtype)
        start = int(np.searchsorted(skills, low, side="left"))
        return first + start, first + int(np.searchsorted(skills, high, side="right"))

    def _score_rows(self, request: SearchRequest, rows: np.ndarray, location: float, role: float) -> _Scored:
        """The scores of `rows`, which share one location and one role score."""
        location_ = np.full(len(rows), location)
        availability = self._availability(request, rows)
        role_ = np.full(len(rows), role)
        knowledge = self._knowledge(request, rows) if request.include_knowledge_score else None
        score = _round_scores(_weighted_total(location_, availability, role_, knowledge))
        return _Scored(rows, score, location_, availability, role_, knowledge)

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


class _Scored:
    """Scored rows and their per-dimension values, kept side by side (one entry per row)."""

    def __init__(self, rows, score, location, availability, role, knowledge) -> None:
        self.rows, self.score, self.location = rows, score, location
        self.availability, self.role, self.knowledge = availability, role, knowledge

    def take(self, which: np.ndarray) -> _Scored:
        knowledge = None if self.knowledge is None else self.knowledge[which]
        return _Scored(*(column[which] for column in self._columns()), knowledge)

    def join(self, other: _Scored) -> _Scored:
        knowledge = None if self.knowledge is None else np.concatenate([self.knowledge, other.knowledge])
        return _Scored(
            *(np.concatenate([a, b]) for a, b in zip(self._columns(), other._columns(), strict=True)), knowledge
        )

    def _columns(self) -> tuple[np.ndarray, ...]:
        return self.rows, self.score, self.location, self.availability, self.role

    def matches(self, index: ProfileIndex) -> list[Match]:
        """These rows as matches, ranked in the order given."""
        return [
            Match(
                user_id=index.user_id_at(int(self.rows[i])),
                score=float(self.score[i]),
                breakdown=rules.make_breakdown(
                    1.0,  # the skill filter leaves only in-range candidates
                    float(self.location[i]),
                    float(self.availability[i]),
                    float(self.role[i]),
                    None if self.knowledge is None else float(self.knowledge[i]),
                ),
                rank=i + 1,
            )
            for i in range(len(self.rows))
        ]


def _score_bounds(request: SearchRequest, location: float, role: float) -> tuple[float, float]:
    """The best and worst rounded score a row with this location and role score can get, by the
    same float operations as its real score (sums and products of non-negative terms, and
    rounding, are monotone, so the real rounded score lies between them)."""
    if request.dates:
        availability = (rules.AVAILABILITY_COMMON, 0.0)
    else:
        availability = (rules.AVAILABILITY_UNKNOWN, rules.AVAILABILITY_UNKNOWN)
    if not request.include_knowledge_score:
        knowledge = None
    elif request.knowledge_score:
        knowledge = np.array([1.0, 0.0])
    else:
        knowledge = np.array([rules.KNOWLEDGE_UNKNOWN, rules.KNOWLEDGE_UNKNOWN])
    total = _weighted_total(np.full(2, location), np.array(availability), np.full(2, role), knowledge)
    best, worst = _round_scores(total).tolist()
    return best, worst


def _build_region_column(
    named: _SetAccumulator, resorts: _SetAccumulator, resort_regions: Mapping[str, str], n_rows: int
) -> _SetColumn:
    """Each profile's regions plus the regions of its resorts (expanded here, once)."""
    vocab = dict(named.vocab)
    for resort in resorts.vocab:
        region = resort_regions.get(resort)
        if region is not None:
            vocab.setdefault(region, len(vocab))
    region_of_resort = np.array(
        [vocab[resort_regions[r]] if r in resort_regions else -1 for r in resorts.vocab], dtype=np.int32
    )
    via_resorts = [
        (lengths, region_of_resort[ids] if len(ids) else ids) for lengths, ids in resorts.chunks
    ]  # a resort missing from the map has no region: -1, skipped
    return _SetColumn.from_sources(vocab, [named.chunks, via_resorts], n_rows)


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
