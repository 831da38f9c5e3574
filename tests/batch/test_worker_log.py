"""The worker's one line per job: id, outcome, frames, seconds, peak MB."""

from __future__ import annotations

import re

from tests.helpers import run_cli

FAST = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "3", "PEAKOPS_RETRY_BACKOFF": "0"}


def test_worker_logs_one_line_per_job_at_its_end(tmp_path, clip_h264):
    home = tmp_path / "home"
    run_cli(home, "submit", str(clip_h264), check=True, **FAST)
    proc = run_cli(home, "-v", "worker", "--burst", timeout=180, **FAST)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "job ended" in line]
    assert len(lines) == 1, proc.stderr[-2000:]
    match = re.search(r"upload 1: job ended DONE \(result\), 3 frames, ([0-9.]+) s, "
                      r"peak ([0-9]+) MB$", lines[0])
    assert match, lines
    assert float(match[1]) > 0 and int(match[2]) > 0
