"""Deterministic synthetic skier profiles for the demo and the tests."""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator

NICK_PARTS = ("Powder", "Carve", "Mogul", "Yuki", "Tree", "Corduroy", "Bluebird", "Kaze", "Sora", "Ridge")
CERTIFICATIONS = ("CASI-1", "CASI-2", "CASI-3", "CASI-4", "CSIA-2", "CSIA-3", "SAJ-1", "ISIA")
LANGUAGES = ("ja", "en", "zh", "ko")
SEASON_START = datetime.date(2026, 12, 15)
SEASON_DAYS = 120


def demo_profiles(count: int, resort_regions: dict[str, str], *, seed: int = 2026) -> Iterator[dict]:
    """Yield `count` profile field dicts, the same ones for the same seed and resorts."""
    rng = random.Random(seed)
    resorts = sorted(resort_regions)
    regions = sorted(set(resort_regions.values()))
    for i in range(count):
        role = rng.choices(("buddy", "student", "coach"), weights=(5, 3, 2))[0]
        picked = rng.sample(resorts, rng.randint(0, 4))
        dates = sorted(
            {
                (SEASON_START + datetime.timedelta(days=rng.randrange(SEASON_DAYS))).isoformat()
                for _ in range(rng.randint(0, 15))
            }
        )
        yield {
            "user_id": f"u{i:06d}",
            "nickname": f"{rng.choice(NICK_PARTS)}{rng.choice(NICK_PARTS)}{i}",
            "skill_level": rng.randint(6, 10) if role == "coach" else rng.randint(1, 10),
            "role": role,
            "resorts": picked,
            "regions": rng.sample(regions, rng.randint(0, 2)) if rng.random() < 0.5 else [],
            "available_dates": dates,
            "open_to_matching": rng.random() > 0.1,
            "knowledge_score": rng.randint(0, 100) if rng.random() < 0.8 else None,
            "certifications": sorted(rng.sample(CERTIFICATIONS, rng.randint(1, 2))) if role == "coach" else [],
            "languages": sorted(rng.sample(LANGUAGES, rng.randint(1, 2))),
        }
