"""Resort and region names as people write them, resolved against the resort list.

SnowTrace's original search body names places the way its users and integration tests write
them (`niseko`, `hakuba`, `hokkaido`, `Naeba Ski Resort`, `苗場スキー場`). Each name resolves, in
this order (the first rule that matches wins), after normalising it: Unicode NFKC, case-folded,
spaces, hyphens and underscores removed.

1. a resort's id, `name`, `name_en` or `name_ja` → that resort;
2. a region's name, with or without its "Prefecture" suffix → that region;
3. an area: the first part of resort ids that is not a region (`hakuba`, `myoko`, `yuzawa`)
   → every resort of that area (`hakuba` is the Hakuba valley's resorts);
4. a short name: one word of a resort's id or English name, or its Japanese or Chinese name
   without the generic suffix (`スキー場`, `滑雪場`, …) → the one resort it belongs to, or, when
   several resorts share it and all are in one area, those resorts (`niseko` → the Niseko
   resorts, `akakura` → Akakura Kanko and Akakura Onsen);
5. anything else is unknown (a short name shared across areas, such as `kogen`, is ambiguous).

The table is built from the resort rows (matching/fixtures/resorts.json), so a resort added to
the list is found by every rule without a change here.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_IGNORED = re.compile(r"[\s\-_]+")
_WORD = re.compile(r"[^\W_]+")
# Generic tails of Japanese and Chinese resort names: "苗場スキー場" is also written "苗場".
_CJK_SUFFIXES = (
    "スキーリゾート",
    "スノーリゾート",
    "スノーフィールド",
    "スキーガーデン",
    "スノーパーク",
    "スキーパーク",
    "スキー場",
    "リゾート",
    "滑雪度假村",
    "滑雪公園",
    "滑雪花園",
    "滑雪場",
    "度假村",
    "雪場",
)
_REGION_SUFFIX = "prefecture"
# Trailing English words that say "a ski area" rather than which one ("Naeba Ski Resort" is "Naeba").
_GENERIC_TAIL = {"ski", "snow", "resort", "resorts", "park", "field", "garden"}
# Japanese and Chinese names of areas and groups, written as their English short name.
CJK_ALIASES = {"白馬": "hakuba", "妙高": "myoko", "湯沢": "yuzawa", "湯澤": "yuzawa", "ニセコ": "niseko",
               "二世谷": "niseko", "赤倉": "akakura"}  # fmt: skip

RESORT, REGION, AREA, SHORT_NAME, UNKNOWN, AMBIGUOUS = "resort", "region", "area", "short_name", "unknown", "ambiguous"


def normalise(name: str) -> str:
    return _IGNORED.sub("", unicodedata.normalize("NFKC", name).casefold())


@dataclass(frozen=True)
class Resolution:
    """What one name means: resort ids and region names (both empty for an unknown name)."""

    kind: str
    resorts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResortRow:
    id: str
    name: str
    name_en: str
    name_ja: str
    region: str


class NameTable:
    """Every spelling the resort list knows, normalised, each with what it resolves to."""

    def __init__(self, rows: Iterable[ResortRow]) -> None:
        rows = sorted(rows, key=lambda r: r.id)
        self.exact: dict[str, Resolution] = {}
        for row in rows:
            for spelling in (row.id, row.name, row.name_en, row.name_ja):
                if spelling:
                    self.exact.setdefault(normalise(spelling), Resolution(RESORT, (row.id,)))
        regions = sorted({row.region for row in rows})
        region_keys = set()
        for region in regions:
            key = normalise(region)
            short = key.removesuffix(_REGION_SUFFIX)
            for spelling in {key, short}:
                region_keys.add(spelling)
                self.exact.setdefault(spelling, Resolution(REGION, regions=(region,)))
        area_of = {row.id: row.id.split("_", 1)[0] for row in rows}
        areas: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            areas[area_of[row.id]].append(row.id)
        for area, ids in areas.items():
            if area not in region_keys:
                self.exact.setdefault(area, Resolution(AREA, tuple(ids)))
        owners: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            for word in _short_names(row):
                owners[word].add(row.id)
        for word, ids in owners.items():
            if word in self.exact:
                continue
            if len({area_of[i] for i in ids}) == 1:
                self.exact[word] = Resolution(SHORT_NAME, tuple(sorted(ids)))
            else:
                self.exact[word] = Resolution(AMBIGUOUS)
        for alias, latin in CJK_ALIASES.items():
            if latin in self.exact:
                self.exact.setdefault(normalise(alias), self.exact[latin])

    def resolve(self, name: str) -> Resolution:
        return self.exact.get(normalise(name), Resolution(UNKNOWN))


def _short_names(row: ResortRow) -> set[str]:
    words = {normalise(w) for w in _WORD.findall(row.id.replace("_", " "))}
    words |= {normalise(w) for w in _WORD.findall(row.name_en)}
    words |= {normalise(w) for w in row.name_en.split()}  # "Happo-one" as one word
    tail = row.name_en.split()
    while tail and tail[-1].casefold() in _GENERIC_TAIL:
        tail.pop()
    words.add(normalise(" ".join(tail)))  # "Madarao Mountain Resort" is "Madarao Mountain"
    for name in (row.name, row.name_ja):
        key = normalise(name)
        for suffix in _CJK_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                words.add(key.removesuffix(suffix))
                break
    return {w for w in words if w}


@dataclass(frozen=True)
class Resolved:
    """A list of names resolved: the resorts and regions they name (known first, then the names
    that resolve to nothing, kept as given) and the names that resolved to nothing."""

    resorts: list[str]
    regions: list[str]
    unresolved: list[tuple[str, str, str]]  # (name as given, unknown | ambiguous, the list it came in)


def resolve_names(table: NameTable, *, resorts: Iterable[str] = (), regions: Iterable[str] = ()) -> Resolved:
    """Resolve the names of a `preferred_resorts` and a `preferred_regions` list.

    A name resolving to a region adds the region, to a resort (or several) adds the resorts,
    whichever list it came in. A name resolving to nothing is kept as given in the list it came in:
    it matches no profile's location, as the old service's literal comparison did."""
    out_resorts: dict[str, None] = {}
    out_regions: dict[str, None] = {}
    kept_resorts: dict[str, None] = {}
    kept_regions: dict[str, None] = {}
    unresolved: list[tuple[str, str, str]] = []
    for names, kept, field in (
        (resorts, kept_resorts, "preferred_resorts"),
        (regions, kept_regions, "preferred_regions"),
    ):
        for name in names:
            found = table.resolve(name)
            if found.kind in (UNKNOWN, AMBIGUOUS):
                kept[name] = None
                unresolved.append((name, found.kind, field))
            out_resorts.update(dict.fromkeys(found.resorts))
            out_regions.update(dict.fromkeys(found.regions))
    return Resolved(
        resorts=[*out_resorts, *(n for n in kept_resorts if n not in out_resorts)],
        regions=[*out_regions, *(n for n in kept_regions if n not in out_regions)],
        unresolved=unresolved,
    )


def name_table_from(rows: Iterable[Mapping[str, str]]) -> NameTable:
    return NameTable(ResortRow(r["id"], r["name"], r["name_en"], r.get("name_ja") or "", r["region"]) for r in rows)
