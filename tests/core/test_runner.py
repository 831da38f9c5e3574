"""The one job path: ``core.process`` and ``PeakOps.process`` run through the job runner, so
the job runs in a supervised child (never in the caller) under the hard memory limit and
its degrade ladder. Real processes, real clips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import core
from core.app import open_app
from core.intake import submit_file
from core.jobs.runner import SKIPPED, JobRunner
from core.media import samples
from core.store import lifecycle, queries
from tests.helpers import REPO, HoldPoint, make_settings, wait_for

SCRIPT = """
import json, os, sys
import core
result = core.process(sys.argv[1], home=sys.argv[2], max_frames_per_video=3)
print(json.dumps({"status": result.status, "frames": len(result.frames), "pid": os.getpid(),
                  "loaded": sorted({m.split(".")[0] for m in sys.modules}
                                   & {"av", "batch", "huey", "apscheduler", "PySide6"})}))
"""


def test_core_process_runs_the_job_in_a_child_not_in_the_caller(tmp_path, settings_env):
    """A 4K clip: its decoder's memory is the job child's, never the script's."""
    clip = samples.make_clip(tmp_path / "uhd.mp4", seconds=1, width=3840, height=2160,
                             fps=10)
    hold = HoldPoint(tmp_path)
    hold.arm(0)
    env = {**os.environ, "PYTHONPATH": str(REPO), **hold.env}
    script = subprocess.Popen([sys.executable, "-c", SCRIPT, str(clip), str(tmp_path / "home")],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        held = hold.wait_reached()  # the job, at its first frame: which process runs it?
        hold.release()
        out, err = script.communicate(timeout=120)
    finally:
        hold.release()
        if script.poll() is None:
            script.kill()
            script.wait()
    assert script.returncode == 0, err
    result = json.loads(out)
    assert (result["status"], result["frames"]) == ("DONE", 3)
    assert held["pid"] != result["pid"]  # the job child, not the script
    assert result["loaded"] == []  # no libav (nor the worker's shell) in the caller
    assert err == ""  # the child logs as the script does: warnings only


def test_core_process_is_held_to_the_hard_limit_down_the_degrade_ladder(tmp_path, settings_env):
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=2, width=160, height=120)
    limit = 30_000  # below a job child's own RSS: every degrade level is killed
    # Sampled (a memory cgroup charges shared library pages once, elsewhere: the kernel's
    # limit is tested in tests/reliability/test_box.py).
    result = core.process(clip, home=tmp_path / "home", max_frames_per_video=3,
                          hard_memory_limit=limit, max_memory_per_child=limit,
                          memory_cgroup=False)
    assert (result.status, result.category) == ("FAILED", "memory")
    assert f"hard limit of {limit} KiB" in result.error
    with core.open(tmp_path / "home") as peakops:
        upload = queries.get_upload(peakops.app.db, result.upload_id)
        retries = [e["message"] for e in queries.detail(peakops.app.db, result.upload_id).events
                   if e["kind"] == "retry"]
        restarts = list(peakops.app.db.query("SELECT cause, upload_id FROM restarts"))
    assert upload["degrade_level"] == 2 and upload["peak_rss_kib"] > limit
    assert [m.rsplit("(", 1)[-1] for m in retries] == [
        "retrying, degrade level 1)", "retrying, degrade level 2)"]
    assert restarts == [{"cause": "hard-limit", "upload_id": result.upload_id}] * 3


def test_run_one_skips_what_it_cannot_claim_and_runs_what_it_can(tmp_path):
    settings = make_settings(tmp_path / "home", max_frames_per_video=2)
    app = open_app(settings)
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=2, width=160, height=120)
    upload_id = submit_file(app, clip).upload_id
    runner = JobRunner(app, owner="runner-test@here:1")
    try:
        assert runner.run_one(upload_id) == lifecycle.DONE
        assert runner.run_one(upload_id) == SKIPPED  # a duplicate message: DONE already
        assert runner.jobs_done == 1 and runner.child is not None and runner.child.alive()
        child_pid = runner.child.pid
        assert child_pid != os.getpid()
    finally:
        runner.close()
        app.close()
    assert runner.child is None
    app = open_app(settings)
    try:
        events = [e["kind"] for e in queries.detail(app.db, upload_id).events]
    finally:
        app.close()
    assert events.count("claimed") == 1 and events[-1] == "done"


def test_the_runner_keeps_a_held_job_s_lease_so_the_reaper_leaves_it(tmp_path):
    """A job stopped at a hold point makes no progress, so only the runner renews its
    lease: it moves on while the job waits, and the reaper (judging by expiry alone, as
    for another host's owner) sees a live lease, not an abandoned upload."""
    hold = HoldPoint(tmp_path)
    settings = make_settings(tmp_path / "home", max_frames_per_video=2, lease_seconds=5,
                             hold_file=str(hold.path))
    app = open_app(settings, check_same_thread=False)  # the runner runs on a thread
    upload_id = submit_file(app, samples.make_clip(tmp_path / "clip.mp4", seconds=2, width=160,
                                                   height=120)).upload_id
    runner = JobRunner(app, owner="lease-test@elsewhere:1")
    hold.arm(0)
    statuses: list[str] = []
    thread = threading.Thread(target=lambda: statuses.append(runner.run_one(upload_id)))
    thread.start()
    watcher = open_app(settings)
    try:
        hold.wait_reached()
        lease = lambda: queries.get_upload(watcher.db, upload_id)["lease_expires_at"]  # noqa: E731
        first = lease()
        wait_for(lambda: lease() > first + 1, timeout=30, what="the lease to be renewed")
        renewed = lease()
        assert lifecycle.reset_stuck(watcher.db, max_attempts=3, now=renewed - 1) == []
    finally:
        hold.release()
        thread.join(timeout=60)
        runner.close()
        watcher.close()
        app.close()
    assert statuses == [lifecycle.DONE]
