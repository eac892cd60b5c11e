"""The matching engine: plain Python and numpy, no Django (the Lambda workflow runs it too)."""

from .index import ProfileIndex, ProfileIndexBuilder
from .live import LiveProfileIndex
from .rules import match_baseline, score_profile
from .types import PROFILE_FIELDS, Breakdown, Match, Profile, SearchRequest

__all__ = [
    "PROFILE_FIELDS",
    "Breakdown",
    "LiveProfileIndex",
    "Match",
    "Profile",
    "ProfileIndex",
    "ProfileIndexBuilder",
    "SearchRequest",
    "match_baseline",
    "score_profile",
]
