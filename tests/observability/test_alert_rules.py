"""The shipped alert rules are valid and their unit tests pass (series that fire each alert and
series that must not: deploy/prometheus/alerts_test.yml)."""

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
    return path


def test_the_rules_are_valid(promtool):
    done = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 10 rules found" in done.stdout


def test_the_rule_unit_tests_pass(promtool):
    done = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_runbook_in_the_docs():
    import yaml

    rules = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"][0]["rules"]
    docs = (RULES.parents[1] / "docs" / "observability.md").read_text()
    tested = (RULES / "alerts_test.yml").read_text()
    for rule in rules:
        name = rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/observability.md#{name.lower()}"
        assert f"### {name}" in docs, f"{name} has no runbook section"
        assert f"alertname: {name}" in tested, f"{name} has no unit test"
