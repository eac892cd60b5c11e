"""Compile the console's translation catalogues (locale/<lang>/LC_MESSAGES/*.po → .mo).

Run by `make setup`. With Debian's gettext installed, Django's `compilemessages` (msgfmt, with its
checks); without it, polib writes the same .mo files, so `make run` works on a fresh machine.
Compiled catalogues are build output, never committed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
SKIPPED = [".venv", "var", "node_modules", ".git"]


def main() -> int:
    catalogues = sorted(LOCALE.glob("*/LC_MESSAGES/*.po"))
    if shutil.which("msgfmt"):
        command = [sys.executable, "manage.py", "compilemessages", "--verbosity", "0"]
        for folder in SKIPPED:
            command += ["--ignore", folder]
        return subprocess.run(command, cwd=ROOT, check=False).returncode  # noqa: S603 - argv built here, no shell
    import polib

    for po_path in catalogues:
        polib.pofile(str(po_path)).save_as_mofile(str(po_path.with_suffix(".mo")))
    print(f"compiled {len(catalogues)} catalogue(s) with polib (no msgfmt here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
