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


def test_missing_display_libraries_are_named_as_debian_packages():
    from cli.selftest import debian_package
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libEGL.so.1") == "libegl1"


def test_a_console_that_cannot_load_its_x11_plugin_fails_the_self_test():
    import io

    from cli.selftest import run
    out = io.StringIO()
    problem = ("the console needs system libraries that are missing: libxcb-icccm.so.4; "
               "install them (Debian/Ubuntu: sudo apt-get install libxcb-icccm4)")
    assert run(out, x11_problem=lambda: problem) == 1
    lines = out.getvalue().splitlines()
    assert any(line.startswith("FAIL") and "libxcb-icccm4" in line for line in lines)
    assert lines[-1] == "self-test: 1 failed"
