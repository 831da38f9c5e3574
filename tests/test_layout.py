"""The dependency direction: core is headless and light."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO


def test_import_core_loads_no_qt_huey_or_apscheduler():
    code = ("import sys, core, core.app, core.jobs.pipeline, core.intake, core.maintenance, "
            "core.store.heartbeat, core.store.state, core.api, core.schedule.windows, core.schedule.offpeak, core.schedule.estimate, "
            "core.schedule.control, core.jobs.settle, core.store.lifecycle, core.store.queries, core.store.frames; "
            "core.process, core.open; "
            "print(sorted({'PySide6', 'huey', 'apscheduler', 'boto3'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


ALLOWED = {
    "core": {"core"},
    "batch": {"core", "batch"},
    "desktop": {"core", "desktop"},
    "cli": {"core", "batch", "desktop", "cli"},
}
"""Package -> our packages it may import: cli -> desktop, batch -> core; no arrow back."""


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(our top-level package, line) for every import in the file, nested ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(name.split(".")[0], node.lineno) for name in names
                  if name.split(".")[0] in ALLOWED}
    return found


def test_imports_point_one_way():
    arrows_back = []
    for package, allowed in ALLOWED.items():
        for path in sorted((REPO / package).rglob("*.py")):
            for target, line in sorted(imported_packages(path)):
                if target not in allowed:
                    arrows_back.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert arrows_back == []


def test_the_import_check_sees_nested_and_dotted_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nimport batch.queue\n\ndef f():\n    from desktop.app import X\n"
                      "    from . import sibling\n")
    assert imported_packages(sample) == {("batch", 2), ("desktop", 5)}


def test_packaging_is_not_a_python_package():
    assert not (REPO / "packaging" / "__init__.py").exists()


DRIVER_ERROR = re.compile(r"\b(sqlite3|psycopg)\.(errors\.\w+|\w*(Error|Warning|Exception)\b)")
"""A driver's exception named in code: only the dialect layer may (core/store/sqldb.py)."""


def driver_errors_named(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1) if DRIVER_ERROR.search(line)]


def test_driver_errors_are_named_only_in_the_dialect_layer():
    allowed = {REPO / "core" / "store" / "sqldb.py", Path(__file__).resolve()}  # + samples
    named = [f"{path.relative_to(REPO)}:{n}"
             for folder in ("core", "batch", "desktop", "cli", "tests", "bench")
             for path in sorted((REPO / folder).rglob("*.py")) if path not in allowed
             for n in driver_errors_named(path.read_text())]
    assert named == []


def test_the_driver_error_check_sees_each_spelling():
    sample = ("except sqlite3.IntegrityError:\nexcept psycopg.errors.UniqueViolation:\n"
              "except (sqlite3.Error, OSError):\nexcept psycopg.OperationalError:\n"
              "conn = sqlite3.connect(path)\nversion = sqlite3.sqlite_version\n")
    assert driver_errors_named(sample) == [1, 2, 3, 4]
