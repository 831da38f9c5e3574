"""``sheet --compare``: two frame selection plans of one upload side by side, taken afresh
from the stored video in a child process (real ffmpeg clip, real sheet JPEG)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from core.app import open_app
from core.errors import InputError
from core.intake import submit_file
from core.jobs import pipeline
from core.media.facts import ProbeResult
from core.media.plans_child import child_argv, frames_in_child
from core.media.samples import make_scene
from core.media.selection import focus_score
from core.results.compare import compare_sheet
from core.store import lifecycle, queries
from tests.helpers import REPO, cli_env, make_settings, run_cli


@pytest.fixture
def processed(tmp_path):
    video = make_scene(tmp_path / "handheld.mp4", "handheld-blur", seconds=6.0)
    settings = make_settings(tmp_path / "home", max_frames_per_video=8, frame_selection="even")
    app = open_app(settings)
    upload_id = submit_file(app, video).upload_id
    assert pipeline.process_now(app, upload_id, "test") == lifecycle.DONE
    yield app, upload_id
    app.close()


def test_sharpest_half_shows_sharper_pictures_than_even(processed, tmp_path):
    app, upload_id = processed
    recorded = queries.detail(app.db, upload_id).frames
    sheet = compare_sheet(app, upload_id, ("even", "sharpest"), tmp_path / "cmp.jpg")
    assert len(sheet.cells) == 16
    with Image.open(sheet.path) as image:
        assert image.size == (sheet.width, sheet.height)
        picture = image.convert("L")
    middle = sheet.width // 2
    left = [c for c in sheet.cells if c.box[2] <= middle]
    right = [c for c in sheet.cells if c.box[0] >= middle]
    assert len(left) == len(right) == 8
    assert [c.frame_index for c in left] == [c.frame_index for c in right] == list(range(8))
    # What a person sees: the even half has blurred pictures (3 frames in 5 of the clip
    # are), the sharpest half at most one, where a seek left only blurred frames to pick.
    scores = {c: focus_score(picture.crop(c.box)) for c in sheet.cells}
    top = max(scores.values())
    blurred = lambda cells: sum(1 for c in cells if scores[c] < 0.1 * top)  # noqa: E731
    assert blurred(left) >= 3 and blurred(right) <= 1
    assert sum(scores[c] for c in right) > 1.3 * sum(scores[c] for c in left)
    # the left half is the plan the job ran: the same frames it recorded
    assert [c.timestamp for c in left] == [f["timestamp"] for f in recorded]
    assert queries.detail(app.db, upload_id).frames == recorded  # nothing recorded changed


def test_compare_from_the_command_line(processed, tmp_path):
    app, upload_id = processed
    out = tmp_path / "cli.jpg"
    done = run_cli(app.settings.home, "sheet", str(upload_id), "--compare", "even", "coverage",
                   "-o", str(out), check=True)
    assert done.stdout.strip() == str(out) and out.stat().st_size > 10_000
    refused = run_cli(app.settings.home, "sheet", str(upload_id), "--compare", "even", "best")
    assert refused.returncode == 2 and "invalid choice" in refused.stderr


def test_an_unknown_plan_is_refused(processed, tmp_path):
    app, upload_id = processed
    with pytest.raises(InputError, match="even, sharpest, coverage"):
        compare_sheet(app, upload_id, ("even", "best"), tmp_path / "x.jpg")


@pytest.fixture
def stored(processed, tmp_path):
    """The processed upload's stored video and probe facts, as compare_sheet gets them."""
    app, upload_id = processed
    row = queries.get_upload(app.db, upload_id)
    video = tmp_path / "video"
    app.store.get_file(row["storage_key"], video)
    return video, ProbeResult.from_json(row["probe"])


def test_the_frozen_app_starts_the_plans_child_as_a_hidden_command(stored, tmp_path,
                                                                  monkeypatch):
    video, facts = stored
    out = tmp_path / "frames"
    out.mkdir()
    python = sys.executable
    assert child_argv(video, facts, "even", 3, 320, out, 500_000)[:3] == [
        python, "-m", "core.media.plans_child"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/peakops/peakops")
    argv = child_argv(video, facts, "even", 3, 320, out, 500_000)
    assert argv[:2] == ["/opt/peakops/peakops", "_plans-child"]
    monkeypatch.undo()
    # The frozen executable is the CLI: the same arguments through `peakops` give frames.
    done = subprocess.run([python, "-m", "cli", *argv[1:]], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=cli_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    frames = [json.loads(line) for line in done.stdout.splitlines()]
    assert [f["slot"] for f in frames] == [0, 1, 2]
    assert sorted(p.name for p in out.iterdir()) == ["0000.jpg", "0001.jpg", "0002.jpg"]
    with Image.open(out / "0000.jpg") as image:
        assert image.width == 320


def test_the_plans_child_runs_under_the_hard_memory_limit(stored, tmp_path):
    video, facts = stored
    (tmp_path / "big").mkdir()
    (tmp_path / "small").mkdir()
    taken = frames_in_child(video, facts, "sharpest", 4, 640, tmp_path / "big", name="clip",
                            hard_kib=500_000)
    assert len(taken) == 4
    # 1 MiB past what libav takes to load: decoding one picture is refused, not run.
    with pytest.raises(InputError, match=r"^clip: taking the sharpest frames needed more "
                                         r"memory than the hard limit allows \(1 MB\)$"):
        frames_in_child(video, facts, "sharpest", 4, 640, tmp_path / "small", name="clip",
                        hard_kib=1024)
    assert list((tmp_path / "small").iterdir()) == []
