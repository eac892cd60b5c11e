"""Reads shared by the API, the services and the engines."""

from __future__ import annotations

from django.core.cache import cache

from matching.models import Resort

_RESORT_MAP_CACHE_KEY = "matching:resort-regions:v1"


def resort_regions() -> dict[str, str]:
    """Resort id → region, cached briefly: validation and every search need it."""
    mapping = cache.get(_RESORT_MAP_CACHE_KEY)
    if mapping is None:
        mapping = dict(Resort.objects.values_list("id", "region"))
        cache.set(_RESORT_MAP_CACHE_KEY, mapping, timeout=300)
    return mapping


def forget_resort_regions() -> None:
    cache.delete(_RESORT_MAP_CACHE_KEY)
