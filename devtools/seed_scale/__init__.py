"""A production-sized console database for the admin benchmark, generated inside PostgreSQL (dev only).

    DATABASE_URL=postgres://…/scale python -m devtools.seed_scale --searches 1000000 [--replace]

`--help` lists the arguments. ``command`` is the (Django management) command, run by ``__main__``
with the console's settings; ``rows`` generates the rows. See docs/benchmarks.md.
"""
