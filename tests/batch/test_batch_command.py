"""``peakops batch`` as the service runs it: one App, one queue and one parse of the windows
serve the worker and the scheduler; a second one in the same home is refused. Real
processes, a real clip; the window is open all week, so the outcome needs no clock."""

from __future__ import annotations

import signal
import subprocess
import sys

from core.media import samples
from tests.helpers import cli_env, cli_json, run_cli, wait_for

ENV = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "3", "PEAKOPS_OFFPEAK_WINDOWS": "daily 00:00-24:00",
       "PEAKOPS_LOG_LEVEL": "info"}


def test_batch_runs_an_off_peak_upload_and_holds_its_home(tmp_path):
    home, log = tmp_path / "home", tmp_path / "batch.log"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=2, width=160, height=120)
    upload_id = int(run_cli(home, "submit", "--off-peak", str(clip), check=True,
                            **ENV).stdout.split("\t")[0])
    with log.open("wb") as out:
        batch = subprocess.Popen([sys.executable, "-m", "cli", "batch"], cwd=tmp_path,
                                 env=cli_env(home, **ENV), stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=out)
    try:
        wait_for(lambda: cli_json(home, "show", str(upload_id))["status"] == "DONE",
                 timeout=120, what="the off-peak upload to be done")
        second = run_cli(home, "batch", timeout=60, **ENV)
        assert second.returncode == 1
        assert "another scheduler is already running" in second.stderr
        batch.send_signal(signal.SIGTERM)
        assert batch.wait(timeout=60) == 0
    finally:
        if batch.poll() is None:
            batch.kill()
            batch.wait()
    text = log.read_text()
    assert "batch service: worker" in text and "Traceback" not in text, text[-3000:]
    events = [e["kind"] for e in cli_json(home, "show", str(upload_id))["events"]]
    assert events.index("dispatched") < events.index("claimed") < events.index("done")
