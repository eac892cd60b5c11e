"""The one Chromium launch of the browser tests: Debian's Chromium driven by Playwright's sync API.

The `browser` fixture (tests/conftest.py) is what tests ask for; `chromium()` is the launch itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium, closed on exit."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()
        # ORM calls made while Playwright's loop runs get their own connections (asgiref's context-local
        # storage): close them here, or the test database cannot be dropped at the end of the run.
        connections.close_all()
