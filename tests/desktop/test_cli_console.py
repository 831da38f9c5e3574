"""``peakops console``: the screenshot mode and the no-display message, as real processes."""

from __future__ import annotations

from PySide6.QtGui import QImage

from core.app import open_app
from core.intake import submit_file
from tests.helpers import run_cli


def test_screenshot_renders_the_loaded_window_and_exits_0(home, settings, tmp_path, clip_h264):
    app = open_app(settings)
    upload_id = submit_file(app, clip_h264).upload_id
    app.close()
    out = tmp_path / "shots" / "main.png"
    proc = run_cli(home, "console", "--screenshot", str(out), "--select", str(upload_id),
                   "--size", "1200x800", timeout=60, QT_QPA_PLATFORM="offscreen")
    assert proc.returncode == 0, proc.stderr
    assert "timed out" not in proc.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1200, 800)
    colours = {image.pixel(x, y) for x in range(0, 1200, 7) for y in range(0, 800, 7)}
    assert len(colours) > 20  # text, chips and the table, not a blank surface


def test_screenshot_of_a_missing_upload_fails(home, tmp_path):
    proc = run_cli(home, "console", "--screenshot", str(tmp_path / "x.png"), "--select", "99",
                   timeout=60, QT_QPA_PLATFORM="offscreen")
    assert proc.returncode == 1 and "no upload 99" in proc.stderr


def test_without_a_display_the_console_points_to_headless_commands(home):
    proc = run_cli(home, "console", DISPLAY="", WAYLAND_DISPLAY="", QT_QPA_PLATFORM="")
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0]
    assert all(cmd in lines[0] for cmd in ("peakops demo", "peakops submit", "peakops worker"))
