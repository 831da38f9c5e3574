"""The project's metadata builds without deprecation warnings (``make run`` shows them).

The build runs as pip runs it for ``make run``: in an isolated environment with the
setuptools ``[build-system]`` asks for, on a copy of ``pyproject.toml`` and ``README.md``
in a temporary folder, so nothing is written into the working tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.helpers import REPO


def test_metadata_builds_without_warnings_and_with_an_spdx_license(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, source / name)
    for package in ("core", "batch", "desktop", "cli"):
        (source / package).mkdir()
        (source / package / "__init__.py").write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-v",
         "--wheel-dir", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "Warning" not in output and "deprecated" not in output, [
        line for line in output.splitlines() if "arning" in line or "deprecated" in line]
    [wheel] = (tmp_path / "dist").glob("peakops-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist()
                                     if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: LicenseRef-Proprietary" in metadata.splitlines()
