"""The dependency direction: core is headless and light."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_import_core_loads_no_qt_huey_or_apscheduler():
    code = ("import sys, core, core.app, core.pipeline, core.intake, core.jobs, core.maintenance, "
            "core.heartbeat, core.state, core.api, core.windows, core.offpeak, core.estimate; "
            "core.process, core.open; "
            "print(sorted({'PySide6', 'huey', 'apscheduler', 'boto3'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_core_never_imports_upward():
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "core").glob("*.py")
                 if any(line.lstrip().startswith(("import batch", "from batch", "import desktop",
                                                  "from desktop"))
                        for line in p.read_text().splitlines())]
    assert offenders == []


def test_packaging_is_not_a_python_package():
    assert not (REPO / "packaging" / "__init__.py").exists()
