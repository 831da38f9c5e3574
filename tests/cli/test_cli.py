"""The `peakops` command line as a real process."""

from __future__ import annotations

import json

import pytest

import core
from core.jobs.cgroup import available
from tests.helpers import cli_json, run_cli


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def test_version(home):
    proc = run_cli(home, "--version", check=True)
    assert proc.stdout.strip() == f"peakops {core.__version__}"


def test_process_json_records_20_frames_with_labels(home, clip_10s):
    result = cli_json(home, "process", str(clip_10s))
    assert result["status"] == "DONE"
    assert len(result["frames"]) == 20
    assert all(frame["labels"] for frame in result["frames"])
    assert result["duration"] == pytest.approx(10.0, abs=0.1)
    assert [e["kind"] for e in result["events"]][:3] == ["submitted", "queued", "claimed"]


def test_submit_list_show_retry_cancel(home, clip_h264, text_as_mp4):
    proc = run_cli(home, "submit", str(clip_h264), str(text_as_mp4))
    assert proc.returncode == 1
    assert "rejected: notes.mp4:" in proc.stderr and "Traceback" not in proc.stderr
    upload_id = int(proc.stdout.split("\t")[0])
    again = run_cli(home, "submit", str(clip_h264), check=True)
    assert f"duplicate of upload {upload_id}" in again.stdout
    rows = cli_json(home, "list")
    assert {r["status"] for r in rows} == {"QUEUED", "FAILED"}
    failed = [r for r in rows if r["status"] == "FAILED"][0]
    assert failed["error_category"] == "input"
    assert cli_json(home, "list", "--status", "failed")[0]["id"] == failed["id"]
    assert run_cli(home, "cancel", str(upload_id), check=True).stdout.split() == \
        [str(upload_id), "CANCELLED"]
    assert run_cli(home, "retry", str(upload_id), check=True).stdout.split() == \
        [str(upload_id), "QUEUED"]
    shown = cli_json(home, "show", str(upload_id))
    assert [e["kind"] for e in shown["events"]][-2:] == ["cancelled", "retry"]


def test_errors_are_one_line_and_exit_non_zero(home):
    for args, needle in [(("show", "99"), "no upload with id 99"),
                         (("retry", "99"), "no upload with id 99"),
                         (("submit", "/nonexistent/x.mp4"), "no such file")]:
        proc = run_cli(home, *args)
        assert proc.returncode == 1
        assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bad_setting_fails_at_start_naming_the_key(home):
    proc = run_cli(home, "list", MAX_VIDEO_SIZE_MB="huge")
    assert proc.returncode == 1
    assert "MAX_VIDEO_SIZE_MB: expected a positive whole number" in proc.stderr


def test_doctor_reports_each_part(home):
    proc = run_cli(home, "doctor", "--json")
    checks = {c["check"]: c for c in json.loads(proc.stdout)}
    assert set(checks) == {"ffmpeg", "home", "database", "queue", "storage", "analyzer",
                           "memory"}
    assert all(c["ok"] for c in checks.values()) and proc.returncode == 0
    assert "ffmpeg version" in checks["ffmpeg"]["detail"]
    # What this host offers, read as the worker would (here: cgroup v1, as root).
    assert checks["memory"]["detail"] == f"hard limit 500000 KiB enforced by {available()}"


def test_doctor_says_plainly_what_is_wrong(home):
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("a file where the home folder should be")
    proc = run_cli(home, "doctor")
    assert proc.returncode == 1
    assert "FAIL  home" in proc.stdout


def test_cleanup_removes_expired_uploads_and_their_objects(home, clip_h264):
    cli_json(home, "process", str(clip_h264))
    objects = home / "objects"
    assert any(objects.rglob("*.jpg"))
    kept = cli_json(home, "cleanup", "--days", "1")
    assert kept["uploads"] == 0
    removed = cli_json(home, "cleanup", "--days", "0")
    assert removed["uploads"] == 1 and removed["objects"] > 1
    assert not [p for p in objects.rglob("*") if p.is_file()]
    assert cli_json(home, "list") == []


def test_a_one_frame_video_shows_as_a_single_frame_not_zero_fps(tmp_path):
    from core.naming import fmt_timing
    from tests.helpers import MEDIA_DEV
    home = tmp_path / "home"
    run_cli(home, "submit", str(MEDIA_DEV / "webm.webm"), check=True)
    video = [line for line in run_cli(home, "show", "1", check=True).stdout.splitlines()
             if line.strip().startswith("video")]
    assert video == ["  video     8x8 vp8, a single frame, " + video[0].rsplit(", ", 1)[1]]
    assert "0 fps" not in video[0] and "0.0 s" not in video[0]
    assert fmt_timing(12.04, 29.97, 361) == "12.0 s, 29.97 fps"
    assert fmt_timing(None, None, None) == "length unknown"
    assert fmt_timing(3.0, None, 90) == "3.0 s"
