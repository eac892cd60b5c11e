"""Behaviours no test pinned before issue 16: each test here fails when its behaviour breaks, and
bench/mutation_check.py puts each breakage back to show it."""
