"""The regions resorts belong to, in a fixed order.

A profile's `region_mask` sets bit i for KNOWN_REGIONS[i], so this list is append-only:
reordering it would silently change the meaning of every stored mask.
"""

KNOWN_REGIONS: tuple[str, ...] = (
    "Hokkaido",
    "Iwate Prefecture",
    "Yamagata Prefecture",
    "Fukushima Prefecture",
    "Tochigi Prefecture",
    "Gunma Prefecture",
    "Niigata Prefecture",
    "Nagano Prefecture",
)
# The regions' names in Traditional Chinese (Taiwan usage), as the resort list names its resorts.
REGION_NAMES_ZH_HANT: dict[str, str] = {
    "Hokkaido": "北海道",
    "Iwate Prefecture": "岩手縣",
    "Yamagata Prefecture": "山形縣",
    "Fukushima Prefecture": "福島縣",
    "Tochigi Prefecture": "栃木縣",
    "Gunma Prefecture": "群馬縣",
    "Niigata Prefecture": "新潟縣",
    "Nagano Prefecture": "長野縣",
}
REGION_CHOICES = [(name, name) for name in KNOWN_REGIONS]
REGION_BIT = {name: 1 << i for i, name in enumerate(KNOWN_REGIONS)}


def region_mask(regions: set[str] | list[str] | tuple[str, ...]) -> int:
    mask = 0
    for name in regions:
        mask |= REGION_BIT.get(name, 0)
    return mask
