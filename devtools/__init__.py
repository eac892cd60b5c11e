"""Development tooling: never installed in a deployment.

Nothing under ``matching``, ``workflows`` or ``snowbuddy`` imports this package (an import-linter
contract and tests/test_deployable_imports.py check it), and it needs ``requirements-dev.txt``.

- ``durable_local``  the local durable stack: AWS's emulator, the Lambda stand-in, the Durable API
                     server, moto, a simulated GlobalCoach (docs/local-durable-stack.md)
- ``seed_scale``     ``python -m devtools.seed_scale``: the million-row database of the admin benchmark
                     (docs/benchmarks.md)
- ``bench_support``  what the benches in bench/ share

The demo loader (``manage.py seed_demo``) stays in the product: `make run` uses it (docs/decisions.md).
"""
