"""Contact sheet: layout, and that every cell shows its own frame."""

from __future__ import annotations

import pytest
from PIL import Image, ImageChops, ImageStat

from core.app import open_app, process_owner
from core.errors import StateError
from core.intake import submit_file
from core.jobs import pipeline
from core.results.sheet import PAD, layout, make_sheet
from core.store import lifecycle
from tests.helpers import make_settings, run_cli


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


@pytest.fixture
def done(tmp_path, clip_10s):
    app = open_app(make_settings(tmp_path / "home", max_frames_per_video=6))
    upload_id = submit_file(app, clip_10s).upload_id
    assert pipeline.process_now(app, upload_id, process_owner("test")) == lifecycle.DONE
    yield app, upload_id
    app.close()


def test_sheet_dimensions_and_each_cell_is_its_frame(done, tmp_path):
    app, upload_id = done
    sheet = make_sheet(app, upload_id, tmp_path / "out" / "sheet.jpg")
    frames = list(app.db.query("SELECT * FROM frames WHERE upload_id = ? ORDER BY idx",
                               [upload_id]))
    assert len(frames) == 6
    columns, cell_w = layout(6)
    assert (columns, cell_w) == (4, 320)
    with Image.open(sheet.path) as image:
        assert image.format == "JPEG"
        assert image.size == (sheet.width, sheet.height)
        assert sheet.width == PAD + columns * (cell_w + PAD)
        picture = image.convert("RGB")
    assert [c.frame_index for c in sheet.cells] == [f["idx"] for f in frames]
    assert [c.timestamp for c in sheet.cells] == [f["timestamp"] for f in frames]
    # Cells go left to right, then down: two rows of 4 and 2.
    tops = sorted({c.box[1] for c in sheet.cells})
    assert len(tops) == 2 and [c.box[1] for c in sheet.cells] == [tops[0]] * 4 + [tops[1]] * 2
    assert all(c.box[2] - c.box[0] == cell_w for c in sheet.cells)  # 160x120 scaled to 320
    originals = {}
    for f in frames:
        with Image.open(app.settings.home / "objects" / f["storage_key"]) as frame:
            originals[f["idx"]] = frame.convert("RGB")
    for cell in sheet.cells:
        shown = picture.crop(cell.box)
        scores = {idx: mean_difference(shown, img.resize(shown.size, Image.Resampling.LANCZOS))
                  for idx, img in originals.items()}
        best = min(scores, key=scores.get)
        assert best == cell.frame_index, (cell, scores)
        others = [s for idx, s in scores.items() if idx != cell.frame_index]
        assert scores[best] < 4.0 and scores[best] * 2 < min(others), scores


def test_layout_keeps_long_uploads_inside_one_jpeg():
    for count in (1, 4, 5, 24, 25, 100, 1000):
        columns, cell_w = layout(count)
        rows = -(-count // columns)
        height = rows * (cell_w * 1.8 + 60)  # tallest picture (portrait) plus caption
        assert columns <= 12 and cell_w >= 160 and height < 65535, (count, columns, cell_w)


def test_no_frames_is_a_one_line_error_and_cli_writes_the_default_path(done, tmp_path,
                                                                      clip_noaudio):
    app, upload_id = done
    waiting = submit_file(app, clip_noaudio).upload_id
    with pytest.raises(StateError, match=f"upload {waiting} has no frames yet"):
        make_sheet(app, waiting, tmp_path / "x.jpg")
    home = app.settings.home
    proc = run_cli(home, "sheet", str(waiting))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    proc = run_cli(home, "sheet", str(upload_id), check=True)
    path = proc.stdout.strip()
    assert path == str(home / "sheets" / f"ten (id {upload_id}).jpg")
    with Image.open(path) as image:
        assert image.format == "JPEG"
    assert run_cli(home, "sheet", "abc").returncode == 2
