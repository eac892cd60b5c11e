"""The matching engine: plain Python and numpy, no Django.

The value types and the reference rules are plain Python and load with the package; the numpy
index loads on first use (PEP 562). The Lambda package's Durable API checks preferences with
``SearchRequest`` only, so the package ships without numpy (workflows/durable/package.py).
"""

from importlib import import_module

from .rules import match_baseline, score_profile
from .types import PROFILE_FIELDS, Breakdown, Match, Profile, SearchRequest

_NUMPY_PARTS = {"ProfileIndex": ".index", "ProfileIndexBuilder": ".index", "LiveProfileIndex": ".live"}

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


def __getattr__(name: str):
    module = _NUMPY_PARTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
