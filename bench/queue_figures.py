"""Queue figures: idle pickup latency, and no-op job round trips per second.

- Idle pickup: a real ``peakops worker`` (no ``--burst``) in a fresh home, idle; a tiny
  clip is submitted with ``peakops submit``; latency = ``uploads.started_at`` (the claim)
  minus the time of the upload's ``queued`` event (when it became claimable). Each clip
  is distinct (a duplicate would not be queued), and the next one is submitted only
  after the previous is DONE and the worker is idle again.
- Round trips: in this process, through the real Huey SQLite queue and the real state
  database, one job at a time: enqueue the upload id (the ``process_video_upload``
  task) -> receive the upload id -> ``lifecycle.claim`` -> ``lifecycle.complete``. The job
  child and the video work are left out (that is what "no-op" means here).
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import time
from pathlib import Path

from bench.approaches import cli, peakops_env
from bench.measure import track
from core.store.sqldb import read_only_row


def _query(db_path: Path, sql: str, params: tuple = ()) -> tuple | None:
    return read_only_row(db_path, sql, params)  # None while not created yet


def _wait(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def idle_pickup(workdir: Path, runs: int, log=print) -> dict:
    from core.media.samples import make_clip

    home = workdir / "pickup-home"
    env = peakops_env(home)
    db_path = home / "peakops.db"
    clips = [make_clip(workdir / f"tiny-{i}.mp4", seconds=1 + 0.2 * i, width=160, height=120)
             for i in range(runs)]
    with open(workdir / "pickup-worker.log", "w") as errlog:
        worker = subprocess.Popen(cli("worker"), env=env, cwd=workdir,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=errlog, start_new_session=True)
    track(worker.pid)
    latencies, after_return = [], []
    try:
        _wait(lambda: _query(db_path, "SELECT 1 FROM workers WHERE state = 'idle' AND pid = ?",
                             (worker.pid,)), 60, "the worker to be idle")
        for clip in clips:
            time.sleep(1.0)  # well inside the idle loop, not just after a job
            done = subprocess.run(cli("submit", str(clip)), env=env, cwd=workdir,
                                  capture_output=True, text=True, timeout=120)
            returned = time.time()
            if done.returncode != 0:
                raise RuntimeError(f"peakops submit failed: {done.stderr[-500:]}")
            upload_id = int(done.stdout.split()[0])
            started = _wait(lambda uid=upload_id: (_query(
                db_path, "SELECT started_at FROM uploads WHERE id = ?", (uid,)) or [None])[0],
                30, f"upload {upload_id} to be claimed")
            queued = _query(db_path, "SELECT MIN(at) FROM events WHERE upload_id = ? "
                            "AND kind = 'queued'", (upload_id,))[0]
            latencies.append(started - queued)
            after_return.append(started - returned)
            _wait(lambda uid=upload_id: (_query(
                db_path, "SELECT status FROM uploads WHERE id = ?", (uid,)) or [""])[0]
                in ("DONE", "FAILED"), 120, f"upload {upload_id} to finish")
            log(f"  idle pickup: upload {upload_id} claimed {latencies[-1] * 1000:.0f} ms "
                "after it was queued")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return {"runs": runs, "median_s": statistics.median(latencies), "max_s": max(latencies),
            "latencies_s": latencies,
            "claim_minus_submit_return_s": after_return,
            "measured": "uploads.started_at (claim) minus the upload's 'queued' event, "
                        "a running `peakops worker` idle for 1 s, `peakops submit` of a "
                        "distinct tiny clip"}


class _NoopExecutor:
    """Stands in for the job runner: claim and complete, no child, no video."""

    def __init__(self, db) -> None:
        self.db = db
        self.owner = "bench-noop@localhost:0"
        self.done = 0

    def run_one(self, upload_id: int) -> str:
        from core.store import lifecycle
        if lifecycle.claim(self.db, upload_id, self.owner, lease_seconds=60) is None:
            raise RuntimeError(f"upload {upload_id} could not be claimed")
        lifecycle.complete(self.db, upload_id, self.owner)
        self.done += 1
        return lifecycle.DONE

    def cleanup(self) -> None:
        return None


def noop_round_trips(workdir: Path, jobs_count: int) -> dict:
    from batch.queue import make_queue
    from core.app import open_app
    from core.config import load_settings
    from core.store import lifecycle

    home = workdir / "noop-home"
    settings = load_settings({"PEAKOPS_HOME": str(home)}, config_file=home / "no-config.toml")
    app = open_app(settings)
    queue = make_queue(settings)
    ids = []
    for i in range(jobs_count):
        upload_id = lifecycle.create_upload(app.db, original_name=f"noop-{i}.mp4", sha256=f"{i:064x}",
                                       size=1, mode=lifecycle.MODE_NOW, owner="bench",
                                       lease_seconds=60)
        lifecycle.mark_stored(app.db, upload_id, storage_key=f"noop/{i}", probe={})
        ids.append(upload_id)
    executor = _NoopExecutor(app.db)
    per_job = []
    try:
        start = time.perf_counter()
        for upload_id in ids:
            t0 = time.perf_counter()
            queue.enqueue([upload_id])
            executor.run_one(queue.receive())
            per_job.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
    finally:
        queue.close()
        app.close()
    if executor.done != jobs_count:
        raise RuntimeError(f"only {executor.done} of {jobs_count} no-op jobs completed")
    return {"jobs": jobs_count, "per_second": jobs_count / elapsed,
            "median_ms": statistics.median(per_job) * 1000,
            "measured": "one at a time: Huey SQLite enqueue -> receive the upload id -> "
                        "lifecycle.claim -> lifecycle.complete (state DB in WAL mode); no job child"}
