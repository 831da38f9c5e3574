"""``peakops --self-test`` from the source tree (the packaged run is packaging/check.sh)."""

from __future__ import annotations

from tests.helpers import run_cli


def test_self_test_passes_without_a_display(tmp_path):
    proc = run_cli(tmp_path / "home", "--self-test", DISPLAY="", WAYLAND_DISPLAY="",
                   QT_QPA_PLATFORM="")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name in ("qt", "ffmpeg", "sqlite", "huey", "scheduler", "boto3", "pillow"):
        assert any(line.startswith("ok") and line.split()[1] == name for line in lines), name
    assert lines[-1] == "self-test: all passed"
