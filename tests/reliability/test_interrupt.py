"""``peakops process`` interrupted (Ctrl-C or SIGTERM) hands its upload back at once and
says so, instead of leaving it PROCESSING until the lease runs out. The job is held at a
known frame (the hold point) when the signal comes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from core.holdpoint import SUBMIT, marker_for
from core.media import samples
from tests.helpers import HoldPoint, cli_env, run_cli, wait_for
from tests.reliability.support import db_dicts


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_process_releases_the_upload_at_once(tmp_path, signum):
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=2, width=160, height=120)
    hold = tmp_path / "hold"
    hold.write_text("1")  # wait before the second frame
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "process", str(clip)], cwd=tmp_path,
        env=cli_env(home, PEAKOPS_HOLD_FILE=str(hold), PEAKOPS_MAX_FRAMES_PER_VIDEO="4",
                    PEAKOPS_LEASE_SECONDS="3600"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(marker_for(hold).exists, timeout=60, what="the job to reach the hold point")
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        hold.unlink(missing_ok=True)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "peakops: interrupted; upload 1 released: back to QUEUED" in stderr
    assert "Traceback" not in stderr
    [row] = db_dicts(home, "SELECT status, lease_owner, attempts FROM uploads")
    assert row == {"status": "QUEUED", "lease_owner": None, "attempts": 0}
    kinds = [e["kind"] for e in db_dicts(home, "SELECT kind FROM events ORDER BY id")]
    assert kinds[-1] == "released"


def _held_submit(tmp_path, clip):
    """``peakops submit`` stopped (by the hold point) with its upload recorded UPLOADING."""
    home = tmp_path / "home"
    hold = HoldPoint(tmp_path)
    hold.path.write_text(SUBMIT)
    proc = subprocess.Popen([sys.executable, "-m", "cli", "submit", str(clip)], cwd=tmp_path,
                            env=cli_env(home, **hold.env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    reached = hold.wait_reached()
    assert reached["position"] == -1 and reached["pid"] == proc.pid
    assert db_dicts(home, "SELECT status FROM uploads") == [{"status": "UPLOADING"}]
    return home, hold, proc


def _staging(home):
    return [p for p in (home / "objects" / ".partial").glob("*")] \
        if (home / "objects" / ".partial").exists() else []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_submit_withdraws_it_like_ctrl_c(tmp_path, signum):
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=1, width=160, height=120)
    home, hold, proc = _held_submit(tmp_path, clip)
    try:
        assert _staging(home)  # the copy is staged while the record is UPLOADING
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        hold.release()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    if signum != signal.SIGINT:
        assert stderr.strip() == f"peakops: stopped by {signal.Signals(signum).name}"
    [row] = db_dicts(home, "SELECT status, error_message FROM uploads")
    assert row["status"] == "FAILED" and "submission interrupted" in row["error_message"]
    assert _staging(home) == []
    again = run_cli(home, "submit", str(clip), check=True)  # at once: no wait, no duplicate
    assert again.stdout.split("\t")[:2] == ["2", "QUEUED"], again.stdout


def test_a_killed_submitters_upload_is_reset_and_its_content_resubmitted_at_once(tmp_path):
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=1, width=160, height=120)
    home, hold, proc = _held_submit(tmp_path, clip)
    proc.kill()  # SIGKILL: no clean-up at all; the owner is dead on this host
    proc.communicate(timeout=30)
    hold.release()
    [row] = db_dicts(home, "SELECT status, lease_owner FROM uploads")
    assert row["status"] == "UPLOADING" and row["lease_owner"].endswith(f":{proc.pid}")
    again = run_cli(home, "submit", str(clip), check=True)  # does not wait out DUPLICATE_WAIT_S
    assert again.stdout.split("\t")[:2] == ["2", "QUEUED"], again.stdout
    assert db_dicts(home, "SELECT id, status FROM uploads ORDER BY id") == [
        {"id": 1, "status": "FAILED"}, {"id": 2, "status": "QUEUED"}]


def test_reset_stuck_resets_an_uploading_row_whose_submitter_is_dead(tmp_path):
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=1, width=160, height=120)
    home, hold, proc = _held_submit(tmp_path, clip)
    proc.kill()
    proc.communicate(timeout=30)
    hold.release()
    proc = run_cli(home, "reset-stuck", check=True)
    assert db_dicts(home, "SELECT status FROM uploads") == [{"status": "FAILED"}], proc.stdout


def test_sigterm_during_a_long_retry_backoff_acts_at_once(tmp_path):
    """Issue #23 item 9: the job child is killed at a hold point (a crash: retried after
    the backoff, 600 s here); SIGTERM during that wait ends ``process`` long before it."""
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=2, width=160, height=120)
    hold = HoldPoint(tmp_path)
    hold.arm(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "process", str(clip)], cwd=tmp_path,
        env=cli_env(home, **hold.env, PEAKOPS_MAX_FRAMES_PER_VIDEO="4",
                    PEAKOPS_RETRY_BACKOFF="600", PEAKOPS_LEASE_SECONDS="3600"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        child = hold.wait_reached()["pid"]
        hold.release()
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: db_dicts(home, "SELECT status, attempts FROM uploads")
                 == [{"status": "QUEUED", "attempts": 1}],
                 timeout=60, what="the crash to send the upload back with a backoff")
        [row] = db_dicts(home, "SELECT not_before FROM uploads")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)  # the backoff alone would take 600 s
    finally:
        hold.release()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    [after] = db_dicts(home, "SELECT status, attempts, not_before FROM uploads")
    assert after == {"status": "QUEUED", "attempts": 1, "not_before": row["not_before"]}
