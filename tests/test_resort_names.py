"""Resort and region names as people write them (matching/vocabulary/resort_names.py), against the resort list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matching.vocabulary.regions import KNOWN_REGIONS
from matching.vocabulary.resort_names import AMBIGUOUS, AREA, REGION, RESORT, UNKNOWN, name_table_from, resolve_names

ROOT = Path(__file__).resolve().parent.parent
ROWS = [
    {"id": row["pk"], **row["fields"]}
    for row in json.loads((ROOT / "matching" / "fixtures" / "resorts.json").read_text())
    if row["model"] == "matching.resort"
]
TABLE = name_table_from(ROWS)


def spellings(text: str) -> set[str]:
    """How people write one name: any case, with spaces, hyphens or underscores, or none."""
    words = text.replace("-", " ").replace("_", " ").split()
    return {
        text,
        text.upper(),
        text.lower(),
        " ".join(words),
        "-".join(words).lower(),
        "_".join(words).upper(),
        "".join(words),
        f"  {text} ",
    }


def test_the_list_has_43_resorts_in_the_known_regions():
    assert len(ROWS) == 43 and {row["region"] for row in ROWS} == set(KNOWN_REGIONS)


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_every_resort_is_found_by_its_id_and_each_of_its_names_in_any_spelling(row):
    for field in ("id", "name", "name_en", "name_ja"):
        for spelling in spellings(row[field]):
            found = TABLE.resolve(spelling)
            assert (found.kind, found.resorts) == (RESORT, (row["id"],)), (field, spelling, found)


@pytest.mark.parametrize("region", KNOWN_REGIONS)
def test_every_region_is_found_with_or_without_prefecture_in_any_spelling(region):
    for spelling in spellings(region) | spellings(region.removesuffix(" Prefecture")):
        found = TABLE.resolve(spelling)
        assert (found.kind, found.regions, found.resorts) == (REGION, (region,), ()), spelling


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hakuba", {r["id"] for r in ROWS if r["id"].startswith("hakuba_")}),
        ("白馬", {r["id"] for r in ROWS if r["id"].startswith("hakuba_")}),
        ("myoko", {r["id"] for r in ROWS if r["id"].startswith("myoko_")}),
        ("Yuzawa", {r["id"] for r in ROWS if r["id"].startswith("yuzawa_")}),
    ],
)
def test_an_area_resolves_to_every_resort_of_it(name, expected):
    found = TABLE.resolve(name)
    assert found.kind == AREA and set(found.resorts) == expected and len(expected) >= 5


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("niseko", {"hokkaido_niseko_moiwa"}),  # the Niseko resorts of the list
        ("ニセコ", {"hokkaido_niseko_moiwa"}),
        ("akakura", {"myoko_akakura_kanko", "myoko_akakura_onsen"}),  # two resorts, one area
        ("naeba", {"yuzawa_naeba"}),
        ("苗場", {"yuzawa_naeba"}),
        ("Happo-one", {"hakuba_happo_one"}),
        ("happo one", {"hakuba_happo_one"}),
        ("gala", {"yuzawa_gala"}),
        ("TOMAMU", {"hokkaido_tomamu"}),
        ("rusutsu", {"hokkaido_rusutsu"}),
        ("Madarao Mountain", {"nagano_madarao_kogen"}),
        ("zao", {"yamagata_zao_onsen"}),
    ],
)
def test_a_short_name_unique_to_one_resort_or_one_area_resolves_to_it(name, expected):
    assert set(TABLE.resolve(name).resorts) == expected


@pytest.mark.parametrize("name", ["kogen", "onsen", "hoshino", "ski", "resort"])
def test_a_short_name_shared_across_areas_is_ambiguous(name):
    found = TABLE.resolve(name)
    assert (found.kind, found.resorts, found.regions) == (AMBIGUOUS, (), ())


@pytest.mark.parametrize("name", ["atlantis", "Whistler", "nisek0", ""])
def test_a_name_the_list_does_not_know_is_unknown(name):
    assert TABLE.resolve(name).kind == UNKNOWN


def test_a_list_of_names_keeps_the_unknown_ones_as_given_and_says_which():
    resolved = resolve_names(
        TABLE, resorts=["niseko", "Naeba", "Atlantis", "hokkaido", "naeba"], regions=["niigata", "Mordor", "gala"]
    )
    assert resolved.resorts == ["hokkaido_niseko_moiwa", "yuzawa_naeba", "yuzawa_gala", "Atlantis"]
    assert resolved.regions == ["Hokkaido", "Niigata Prefecture", "Mordor"]
    assert resolved.unresolved == [("Atlantis", UNKNOWN, "preferred_resorts"), ("Mordor", UNKNOWN, "preferred_regions")]
