"""The Lambda package holds the durable side and the engine's plain-Python types only.

No Django, no console, no numpy: the functions rank nothing (the console's warm index does).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import yaml

from tests.durable.test_template import _CfnLoader
from workflows.durable import package

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_ONLY = ("django", "djangorestframework", "drf-", "celery", "psycopg", "gunicorn", "whitenoise", "moto")

# Imports every handler module with Django, DRF, Celery and the console blocked, from the staged
# directory and the installed third-party packages only (not the repository).
IMPORT_CHECK = """
import importlib, importlib.abc, sys
BLOCKED = ("django", "rest_framework", "celery", "snowbuddy", "kombu", "drf_spectacular", "numpy")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the Lambda package imported {name}")
sys.meta_path.insert(0, Block())
for module in ("workflows.durable.workflow", "workflows.durable.api", "workflows.durable.signing",
               "workflows.durable.state", "matching.engine"):
    importlib.import_module(module)
from workflows.durable.api import validate_preferences
validate_preferences({"role": "coach", "skill_level_min": 3, "skill_level_max": 7, "vetting_required": True}, "u1")
print("ok")
"""


def test_the_package_source_is_the_lambda_side_and_the_engine_only(tmp_path):
    written = package.stage(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert "workflows/durable/workflow.py" in names and "matching/engine/types.py" in names
    # The functions rank nothing (the console's warm index does): no numpy index, no numpy.
    assert not any(n in ("matching/engine/index.py", "matching/engine/live.py") for n in names)
    assert "requirements.txt" in names
    # The workflow ranks nothing itself any more (the console's warm index does): no resort data.
    assert "matching/fixtures/resorts.json" not in names
    assert not any(n.startswith(("snowbuddy/", "matching/api", "devtools/", "tests/", "bench/")) for n in names)
    assert not any(n in ("workflows/webhooks.py", "matching/models.py", "manage.py") for n in names)


def test_the_lambda_requirements_name_no_console_dependency():
    lines = (ROOT / package.REQUIREMENTS).read_text().splitlines()
    pins = [line.split("==")[0].strip().lower() for line in lines if line.strip() and not line.startswith("#")]
    assert "aws-durable-execution-sdk-python" in pins and "numpy" not in pins
    assert not [p for p in pins if p.startswith(CONSOLE_ONLY)]


def test_the_staged_package_imports_without_django_or_numpy(tmp_path):
    package.stage(tmp_path)
    site = sysconfig.get_paths()["purelib"]
    code = f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {site!r}]\n" + IMPORT_CHECK
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_the_template_builds_from_the_staged_directory():
    template = yaml.load((ROOT / "workflows/durable/template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506
    code_uri = (ROOT / "workflows/durable" / template["Globals"]["Function"]["CodeUri"]).resolve()
    assert code_uri == package.DEFAULT_DEST.resolve()


def test_the_build_check_fails_on_a_function_that_holds_django(tmp_path):
    function = tmp_path / "WorkflowFunction"
    (function / "django").mkdir(parents=True)
    (function / "django" / "__init__.py").write_text("")
    assert package.console_packages_in(function) == ["django"]
    assert package.check_build(tmp_path) is False
    (function / "django" / "__init__.py").unlink()
    (function / "django").rmdir()
    (function / "boto3").mkdir()
    assert package.check_build(tmp_path) is True
    (function / "numpy").mkdir()
    assert package.console_packages_in(function) == ["numpy"]
    assert package.check_build(tmp_path) is False
