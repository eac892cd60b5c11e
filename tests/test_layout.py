"""The layout says the layers (docs/architecture.md): every deployable module sits in a package that
the layers contract names, and a module longer than 500 lines says why in its first lines."""

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOYABLE = ("matching", "workflows", "snowbuddy")
# Beside the layers (docs/architecture.md): the wiring, the Lambda side, the tracing helpers, the apps'
# configs, migrations.
BESIDE_THE_LAYERS = (
    "snowbuddy",
    "workflows.durable",
    "workflows.tracing",
    "matching.apps",
    "workflows.apps",
    "matching.migrations",
    "workflows.migrations",
)
LONG = 500


def _modules(packages=DEPLOYABLE):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield name.removesuffix(".__init__"), path


def _layer_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return [name.strip() for layer in layers for name in layer.replace(":", "|").split("|")]


def _inside(name: str, packages) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_every_module_sits_in_a_layer_or_beside_them_by_name():
    layers = _layer_packages()
    homeless = [
        name
        for name, _ in _modules()
        if name not in DEPLOYABLE and not _inside(name, layers) and not _inside(name, BESIDE_THE_LAYERS)
    ]
    assert homeless == [], "place these in a layer's package (docs/architecture.md)"


@pytest.mark.parametrize(
    "name,path",
    [(n, p) for n, p in _modules((*DEPLOYABLE, "devtools", "bench")) if len(p.read_text().splitlines()) > LONG],
)
def test_a_long_module_says_why_in_its_first_lines(name, path):
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "Long on purpose:" in docstring, f"{name} has more than {LONG} lines: split it, or say why it is one"
