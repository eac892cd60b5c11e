"""The search preference bodies the tests send (docs/contracts.md, "Search preferences").

Plain dicts, never mutated by a test: copy with `{**BODY, ...}` to vary one.
"""

from __future__ import annotations

from typing import Any

# What a console body that names only the role and the skill range is filled with.
CONTRACT_DEFAULTS: dict[str, Any] = {
    "resorts": [],
    "regions": [],
    "dates": [],
    "include_knowledge_score": False,
    "knowledge_score": None,
    "required_certifications": [],
    "vetting_required": False,
    "limit": 20,
}

# The usual minimal console search.
BUDDY = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7}
# The same, filled with the contract's defaults (what the console stores for `BUDDY`).
BUDDY_FILLED = {**BUDDY, **CONTRACT_DEFAULTS}
# A buddy search open to every skill level, every field written out.
OPEN_BUDDY = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10, **CONTRACT_DEFAULTS}
# A coach search that asks for vetting (durable engine: GlobalCoach vets the top candidates).
VETTED_COACH = {"role": "coach", "skill_level_min": 5, "skill_level_max": 10, "vetting_required": True}
# The end-to-end coach search on the demo data (seeded profiles in Niigata and Nagano).
E2E_COACH = {
    "role": "coach",
    "skill_level_min": 6,
    "skill_level_max": 10,
    "regions": ["Niigata Prefecture", "Nagano Prefecture"],
    "vetting_required": True,
    "limit": 10,
}
