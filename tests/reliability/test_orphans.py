"""Nothing a job starts outlives its worker: 10 rounds of kill -9 of the worker while a
job is surely running (held at a frame by the hold point), 0 processes left behind.

The job child dies with its worker (PR_SET_PDEATHSIG), and anything it starts dies with
it in turn (the same signal, set for every program PeakOps starts: core.procenv).
"""

from __future__ import annotations

import os
import signal

import psutil

from core.holdpoint import marker_for
from core.media import samples
from tests.helpers import wait_for
from tests.reliability.support import WorkerProcess, db_dicts, submit

ENV = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "3", "PEAKOPS_MAX_ATTEMPTS": "100",
       "PEAKOPS_LEASE_SECONDS": "5", "PEAKOPS_RETRY_BACKOFF": "0"}
ROUNDS = 10


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_9_of_the_worker_leaves_nothing_behind(tmp_path):
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=2, width=160, height=120)
    [upload_id] = submit(home, clip, **ENV)
    hold = tmp_path / "hold"
    hold.write_text("1")  # every attempt waits before its second frame
    orphans: list[tuple[int, str, int]] = []
    try:
        for round_ in range(ROUNDS):
            marker = marker_for(hold)
            marker.unlink(missing_ok=True)
            worker = WorkerProcess(home, tmp_path / f"worker-{round_}.log",
                                   PEAKOPS_HOLD_FILE=str(hold), **ENV)
            wait_for(marker.exists, timeout=60, what=f"round {round_}: the job to be held")
            tree = worker.descendants()
            assert tree, "the job runs in a child of the worker"
            os.kill(worker.pid, signal.SIGKILL)
            worker.proc.wait(timeout=10)
            try:
                wait_for(lambda t=tree: not any(alive(p) for p in t), timeout=10,
                         what="the job's processes to die with the worker")
            except AssertionError:
                for process in tree:
                    if alive(process):
                        orphans.append((round_, process.name(), process.ppid()))
                        process.kill()
    finally:
        hold.unlink(missing_ok=True)
    assert orphans == [], f"processes that outlived their worker: {orphans}"
    [row] = db_dicts(home, "SELECT attempts FROM uploads WHERE id = ?", [upload_id])
    assert row["attempts"] == ROUNDS  # every round really ran the job

