"""``peakops process`` runs the job through the worker's supervisor: the hard memory
limit and its degrade ladder apply, and the peak is recorded. Real processes."""

from __future__ import annotations

import json

from core.media import samples
from tests.helpers import run_cli
from tests.reliability.support import db_dicts


def test_process_records_the_peak_of_the_job_tree(tmp_path):
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=2, width=160, height=120)
    proc = run_cli(home, "process", str(clip), "--json", PEAKOPS_MAX_FRAMES_PER_VIDEO="3")
    assert proc.returncode == 0, proc.stderr
    detail = json.loads(proc.stdout)
    assert detail["status"] == "DONE" and len(detail["frames"]) == 3
    assert detail["peak_rss_kib"] > 10_000  # a job child with Python, Pillow and ffmpeg


def test_process_is_held_to_the_hard_memory_limit(tmp_path):
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=2, width=160, height=120)
    limit = 30_000  # below the job child's own RSS: every degrade level is killed
    # Sampled (a memory cgroup charges shared library pages once, elsewhere: the kernel's
    # limit is tested in tests/reliability/test_box.py).
    proc = run_cli(home, "process", str(clip), "--json", PEAKOPS_MAX_FRAMES_PER_VIDEO="3",
                   PEAKOPS_HARD_MEMORY_LIMIT=str(limit), PEAKOPS_MAX_MEMORY_PER_CHILD=str(limit),
                   PEAKOPS_MEMORY_CGROUP="false", timeout=240)
    assert proc.returncode == 1, proc.stderr
    detail = json.loads(proc.stdout)
    assert (detail["status"], detail["error_category"], detail["degrade_level"]) == (
        "FAILED", "memory", 2)
    assert f"hard limit of {limit} KiB" in detail["error_message"]
    assert detail["peak_rss_kib"] > limit
    restarts = db_dicts(home, "SELECT cause, upload_id FROM restarts")
    assert restarts == [{"cause": "hard-limit", "upload_id": detail["id"]}] * 3
