"""The job child works with its worker's settings (``--home``, ``--config``), not its own
environment: the worker hands them over when it starts the child."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from core.media import samples
from tests.helpers import REPO


def test_home_and_config_flags_reach_the_job_child(tmp_path):
    home = tmp_path / "flag-home"
    config = tmp_path / "peakops.toml"
    config.write_text("max_frames_per_video = 3\nretry_backoff = 0\n")
    clip = samples.make_clip(tmp_path / "c.mp4", seconds=2, width=160, height=120)
    # No PEAKOPS_* variable at all; the platform folders point into tmp_path, so a child
    # that fell back to its defaults would look in an empty home, not the operator's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAKOPS_", "MAX_", "CELERY_"))}
    env.update(XDG_DATA_HOME=str(tmp_path / "xdg-data"),
               XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), PYTHONPATH=str(REPO))

    def peakops(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", "--home", str(home), "--config",
                               str(config), *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=180)

    submitted = peakops("submit", str(clip))
    assert submitted.returncode == 0, submitted.stderr
    upload_id = int(submitted.stdout.split("\t")[0])
    worker = peakops("worker", "--burst")
    assert worker.returncode == 0, worker.stderr[-2000:]
    shown = peakops("show", str(upload_id), "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["status"] == "DONE", detail.get("error_message")
    assert len(detail["frames"]) == 3  # max_frames_per_video from --config, in the child
    assert not (tmp_path / "xdg-data").exists()  # nothing went to the default home
