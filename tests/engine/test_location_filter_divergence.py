"""The console's location filter keeps what the old one kept, and more (a documented divergence).

The old filter matched literal overlaps only; ours also counts the regions of each side's resorts,
as the old scorer did. docs/contracts.md quotes the counts `bench/location_filter_counts.py` prints.
"""

from bench.location_filter_counts import measure


def test_the_console_keeps_a_superset_and_several_times_more_on_location_searches():
    report = measure(count=2000)  # measure() itself asserts the superset, search by search
    assert 3 < report["all location searches"]["ratio"] < 10
    assert report["one resort"]["ratio"] > report["one region"]["ratio"] > 1
