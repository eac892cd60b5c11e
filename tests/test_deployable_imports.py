"""A deployment installs requirements.txt and runs matching, workflows and snowbuddy: none of them may
import the dev tooling (devtools, tests, bench) or a package only requirements-dev.txt installs.

import-linter's first contract (pyproject.toml) forbids devtools and tests too; this test also covers
bench/ (scripts, no package) and the third-party tools, and reads every import, including the ones
inside functions and `importlib.import_module("…")` with a literal name.
"""

import ast
import importlib.metadata as md
import sys
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DEPLOYABLE = ("matching", "workflows", "snowbuddy")
DEV_ONLY = ("devtools", "tests", "bench")
# Named by the issue; the closure check below catches any other package requirements.txt does not install.
DEV_TOOLS = ("pytest", "_pytest", "pytest_django", "playwright", "moto", "schemathesis", "factory", "hypothesis")


def imported_names(source: str) -> set[str]:
    """The absolute module names one module imports (statements anywhere, and literal import_module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def deployable_imports() -> dict[str, set[str]]:
    """Top-level imported name -> the deployable files importing it."""
    found: dict[str, set[str]] = {}
    for package in DEPLOYABLE:
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in imported_names(path.read_text(encoding="utf-8")):
                found.setdefault(name.split(".")[0], set()).add(path.relative_to(ROOT).as_posix())
    return found


def pinned(requirements_file: str) -> list[Requirement]:
    lines = (ROOT / requirements_file).read_text().splitlines()
    return [Requirement(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip() and line[0] != "-"]


def installed_closure(requirements: list[Requirement]) -> set[str]:
    """The distributions `pip install` of these requirements brings (read from the installed metadata)."""
    extras_of: dict[str, set[str]] = {}
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in extras_of and set(requirement.extras) <= extras_of[name]:
            continue
        extras = extras_of.setdefault(name, set())
        extras.update(requirement.extras)
        try:
            requires = md.distribution(requirement.name).requires or []
        except md.PackageNotFoundError:
            continue  # not for this platform or Python
        for dependency in map(Requirement, requires):
            marker: Marker | None = dependency.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras | {""}):
                todo.append(dependency)
    return set(extras_of)


def test_no_deployable_module_imports_the_dev_tooling_or_a_dev_tool():
    imports = deployable_imports()

    offending = {name: sorted(imports[name]) for name in DEV_ONLY + DEV_TOOLS if name in imports}

    assert offending == {}


def test_every_third_party_import_of_the_deployable_packages_is_installed_by_requirements_txt():
    deployment = installed_closure(pinned("requirements.txt"))
    providers = md.packages_distributions()
    third_party = {
        name: files
        for name, files in deployable_imports().items()
        if name not in sys.stdlib_module_names and name not in DEPLOYABLE and name != "__future__"
    }
    assert {"django", "celery", "numpy", "opentelemetry"} <= set(third_party)  # the scan sees real imports

    missing = {
        name: (providers.get(name, ["(not installed)"]), sorted(files))
        for name, files in third_party.items()
        if not {canonicalize_name(dist) for dist in providers.get(name, [])} & deployment
    }

    assert missing == {}


def test_a_deployment_install_brings_no_test_or_dev_tool():
    deployment = installed_closure(pinned("requirements.txt"))
    development = installed_closure(pinned("requirements-dev.txt"))
    assert {"moto", "pytest", "playwright", "schemathesis", "hypothesis"} <= development  # the closure is real

    assert deployment & {canonicalize_name(r.name) for r in pinned("requirements-dev.txt")} == set()
    assert deployment & {"pytest", "playwright", "moto", "schemathesis", "factory-boy", "hypothesis"} == set()


def test_the_dev_requirements_install_the_deployment_ones_with_the_same_pins():
    lines = (ROOT / "requirements-dev.txt").read_text().splitlines()

    assert "-r requirements.txt" in lines
    runtime = {canonicalize_name(r.name) for r in pinned("requirements.txt")}
    assert not runtime & {canonicalize_name(r.name) for r in pinned("requirements-dev.txt")}  # one pin each
