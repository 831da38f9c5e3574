"""Nothing a job starts outlives its worker: 10 rounds of kill -9 of the worker while
ffmpeg is surely running, 0 orphans.

The stored video is swapped for a FIFO nobody writes to, so the job's ffmpeg blocks
opening it: a hold point inside ffmpeg itself, with no sleeping and hoping.
"""

from __future__ import annotations

import os
import signal

import psutil

from core import samples
from tests.reliability.support import WorkerProcess, db_dicts, submit, wait_for

ENV = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "3", "PEAKOPS_MAX_ATTEMPTS": "100",
       "PEAKOPS_LEASE_SECONDS": "5", "PEAKOPS_RETRY_BACKOFF": "0"}
ROUNDS = 10


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ffmpeg_of(worker: WorkerProcess) -> list[psutil.Process]:
    found = []
    for process in worker.descendants():
        try:
            if "ffmpeg" in process.name():
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def test_kill_9_of_the_worker_leaves_no_ffmpeg_behind(tmp_path):
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=2, width=160, height=120)
    [upload_id] = submit(home, clip, **ENV)
    [row] = db_dicts(home, "SELECT storage_key FROM uploads WHERE id = ?", [upload_id])
    stored = home / "objects" / row["storage_key"]
    stored.unlink()
    os.mkfifo(stored)
    orphans: list[tuple[int, str, int]] = []
    try:
        for round_ in range(ROUNDS):
            worker = WorkerProcess(home, tmp_path / f"worker-{round_}.log", **ENV)
            wait_for(lambda w=worker: ffmpeg_of(w), timeout=60,
                     what=f"round {round_}: the job's ffmpeg to be running")
            tree = worker.descendants()
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
        stored.unlink()
    assert orphans == [], f"processes that outlived their worker: {orphans}"
    [row] = db_dicts(home, "SELECT attempts FROM uploads WHERE id = ?", [upload_id])
    assert row["attempts"] == ROUNDS  # every round really ran the job
