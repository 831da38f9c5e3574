"""``peakops process`` interrupted (Ctrl-C or SIGTERM) hands its upload back at once and
says so, instead of leaving it PROCESSING until the lease runs out. The job is held at a
known frame (the hold point) when the signal comes."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from core.holdpoint import marker_for
from core.media import samples
from tests.helpers import cli_env
from tests.reliability.support import db_dicts, wait_for


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
