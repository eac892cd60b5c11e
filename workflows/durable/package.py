"""The source of the Lambda package: the durable side and the matching engine, nothing else.

    python -m workflows.durable.package [DEST]     (default var/lambda/src, the template's CodeUri)
    python -m workflows.durable.package --check BUILD_DIR   (after sam build: sizes, and no Django)

`sam build` (make lambda-build) then installs workflows/durable/requirements.txt next to it, so the
package holds no Django, no console code and none of the console's dependencies. Plain Python:
the Lambda side imports no Django, and neither does this.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DEST = ROOT / "var" / "lambda" / "src"

# Paths relative to the repository root; a directory means its *.py files (not subdirectories).
SOURCES = (
    "workflows/__init__.py",
    "workflows/durable/__init__.py",
    "workflows/durable/api.py",
    "workflows/durable/signing.py",
    "workflows/durable/state.py",
    "workflows/durable/workflow.py",
    "workflows/durable/tracing.py",
    "matching/__init__.py",
    # The Durable API checks preferences with the engine's SearchRequest: its plain-Python modules
    # only (the numpy index loads lazily and is not shipped, nor is numpy).
    "matching/engine/__init__.py",
    "matching/engine/types.py",
    "matching/engine/rules.py",
)
REQUIREMENTS = "workflows/durable/requirements.txt"
# Top-level packages of the console that must never reach a function's package (numpy serves the
# console's warm index; the functions rank nothing).
CONSOLE_PACKAGES = ("django", "rest_framework", "drf_spectacular", "drf_standardized_errors", "django_filters",
                    "celery", "kombu", "psycopg", "gunicorn", "whitenoise", "moto", "snowbuddy", "numpy")  # fmt: skip
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def package_files() -> list[Path]:
    files: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        files.extend(sorted(path.glob("*.py")) if path.is_dir() else [path])
    return files


def stage(dest: Path = DEFAULT_DEST) -> list[Path]:
    """Lay the package source out in `dest` (emptied first); returns the files written."""
    if dest.exists():
        shutil.rmtree(dest)
    written = []
    for source in package_files():
        target = dest / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        written.append(target)
    requirements = dest / "requirements.txt"
    shutil.copy2(ROOT / REQUIREMENTS, requirements)
    written.append(requirements)
    return written


def console_packages_in(function_dir: Path) -> list[str]:
    return sorted(p.name for p in function_dir.iterdir() if p.name.split("-")[0].lower() in CONSOLE_PACKAGES)


def package_sizes(function_dir: Path) -> tuple[int, int]:
    """(unzipped bytes, zipped bytes) of one built function, zipped as `sam package` does (deflate)."""
    unzipped = sum(p.stat().st_size for p in function_dir.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "function.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(function_dir.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(function_dir))
        return unzipped, archive.stat().st_size


def check_build(build_dir: Path) -> bool:
    """Print each built function's size; False if any holds a console package or is over Lambda's limit."""
    ok = True
    functions = sorted(p for p in build_dir.iterdir() if p.is_dir())
    if not functions:
        print(f"no built functions in {build_dir}", file=sys.stderr)
        return False
    for function_dir in functions:
        unzipped, zipped = package_sizes(function_dir)
        found = console_packages_in(function_dir)
        print(
            f"{function_dir.name:26} {unzipped / 2**20:6.1f} MiB unzipped, {zipped / 2**20:5.1f} MiB zipped, "
            f"{sum(1 for _ in os.scandir(function_dir))} top-level entries"
            + (f"; CONSOLE PACKAGES: {', '.join(found)}" if found else "; no Django or console package")
        )
        ok = ok and not found and unzipped <= LAMBDA_UNZIPPED_LIMIT
    return ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", type=Path, default=DEFAULT_DEST)
    parser.add_argument("--check", type=Path, metavar="BUILD_DIR", help="check a sam build output instead")
    args = parser.parse_args(argv)
    if args.check:
        sys.exit(0 if check_build(args.check) else 1)
    written = stage(args.dest)
    print(f"staged {len(written)} files in {args.dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
