"""SnowTrace's resort service: which region each resort is in.

Wire format: `GET {RESORT_SERVICES_API_URL}/resorts` → `{"items": [{"resort_id", "region",
...}]}`, read whole (a few dozen resorts). `name`, `name_en`, `name_ja` and `country` are taken
when present. A resort whose region the console does not know (matching/vocabulary/regions.py) is rejected:
the region mask could not represent it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from matching.vocabulary.profile_input import RESORT_ID_RE, ResortWrite
from matching.vocabulary.regions import KNOWN_REGIONS

from .http import MalformedResponse, ServiceClient, ServiceConfig


@dataclass(frozen=True)
class RejectedResort:
    resort_id: str | None
    reason: str


class ResortServiceClient:
    def __init__(self, http: ServiceClient):
        self.http = http

    @classmethod
    def from_settings(cls) -> ResortServiceClient:
        config = ServiceConfig.from_settings(
            "resort service", url_setting="RESORT_SERVICES_API_URL", auth_setting="RESORT_SERVICES_API_TOKEN"
        )
        return cls(ServiceClient(config))

    def resorts(self) -> tuple[list[ResortWrite], list[RejectedResort]]:
        body = self.http.get_json("/resorts")
        if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
            raise MalformedResponse('resort service: /resorts did not answer {"items": [...]}')
        accepted: dict[str, ResortWrite] = {}
        rejected: list[RejectedResort] = []
        for item in body["items"]:
            resort, reason = _parse(item)
            if resort is None:
                rejected.append(RejectedResort(_resort_id(item), reason))
            elif resort.resort_id in accepted:
                rejected.append(RejectedResort(resort.resort_id, "listed more than once"))
            else:
                accepted[resort.resort_id] = resort
        return list(accepted.values()), rejected

    def close(self) -> None:
        self.http.close()


def _resort_id(item: Any) -> str | None:
    return str(item.get("resort_id"))[:64] if isinstance(item, Mapping) and item.get("resort_id") else None


def _text(item: Mapping[str, Any], name: str, max_length: int) -> str | None:
    value = item.get(name)
    return value if isinstance(value, str) and 0 < len(value) <= max_length else None


def _parse(item: Any) -> tuple[ResortWrite | None, str]:
    if not isinstance(item, Mapping):
        return None, "not a JSON object"
    resort_id = item.get("resort_id")
    if not isinstance(resort_id, str) or not RESORT_ID_RE.match(resort_id):
        return None, "resort_id must be 1-64 characters of A-Z a-z 0-9 _ -"
    region = item.get("region")
    if region not in KNOWN_REGIONS:
        return None, f"unknown region {region!r} (known: {', '.join(KNOWN_REGIONS)})"
    name = _text(item, "name", 200) or _text(item, "name_en", 200) or resort_id
    country = item.get("country")
    return (
        ResortWrite(
            resort_id=resort_id,
            region=region,
            name=name,
            name_en=_text(item, "name_en", 200) or name,
            name_ja=_text(item, "name_ja", 200) or "",
            country=country if isinstance(country, str) and len(country) == 2 else "JP",
        ),
        "",
    )
