"""Random kill -9 of the job child, of ffmpeg and of the whole worker, while clips stream in.

Seeded (``RELIABILITY_SEED``) so a failing run can be replayed. After the kills a burst
worker drains the queue; then nothing may be lost, stuck, duplicated or orphaned.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import time
from pathlib import Path

import psutil
import pytest

from batch.queue import enqueue
from core import samples
from core.app import open_app
from core.intake import submit_file
from tests.helpers import make_settings
from tests.reliability.support import (
    WorkerProcess,
    burst,
    check_invariants,
    db_dicts,
    db_rows,
    wait_for,
    with_padding,
)

CI_KILLS, SOAK_KILLS = 20, 200
SEED = int(os.environ.get("RELIABILITY_SEED", "9"))
ENV = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "4", "PEAKOPS_LEASE_SECONDS": "5",
       "PEAKOPS_MAX_ATTEMPTS": "1000", "PEAKOPS_RETRY_BACKOFF": "0"}
TARGETS = ("child", "ffmpeg", "worker")


class Driver:
    """Feeds clips, keeps one worker running and kills something at random moments."""

    def __init__(self, home: Path, base_clip: Path, folder: Path, rng: random.Random) -> None:
        self.home, self.base_clip, self.folder, self.rng = home, base_clip, folder, rng
        self.settings = make_settings(home, **{k.removeprefix("PEAKOPS_").lower(): v
                                               for k, v in ENV.items()})
        self.app = open_app(self.settings)
        self.submitted: list[int] = []
        self.worker: WorkerProcess | None = None
        self.log = home.parent / "worker.log"
        self.kills: dict[str, int] = dict.fromkeys(TARGETS, 0)
        self.recoveries: list[float] = []

    def feed(self, waiting: int = 2) -> None:
        """Keep a few clips waiting, each with distinct content."""
        active = db_rows(self.home, "SELECT COUNT(*) FROM uploads "
                                    "WHERE status IN ('QUEUED', 'PROCESSING')")[0][0]
        new = []
        for _ in range(max(0, waiting - active + 1)):
            n = len(self.submitted)
            clip = with_padding(self.base_clip, self.folder / f"inspection-{n:04d}.mp4", f"#{n}")
            result = submit_file(self.app, clip)
            assert not result.duplicate and result.status == "QUEUED"
            self.submitted.append(result.upload_id)
            new.append(result.upload_id)
        if new:
            enqueue(self.settings, new)

    def ensure_worker(self) -> WorkerProcess:
        if self.worker is None or not self.worker.alive():
            assert self.worker is None, "the worker died without being killed"
            self.worker = WorkerProcess(self.home, self.log, **ENV)
        return self.worker

    def processing(self) -> dict | None:
        rows = db_dicts(self.home, "SELECT id, attempts FROM uploads WHERE status = 'PROCESSING'")
        return rows[0] if rows else None

    def pick(self, target: str) -> int | None:
        """The pid to kill for ``target`` right now, if there is one."""
        assert self.worker is not None
        if target == "worker":
            return self.worker.pid
        if target == "child":
            try:
                children = psutil.Process(self.worker.pid).children()
            except psutil.NoSuchProcess:
                return None
            return children[0].pid if children else None
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # ffmpeg lives for a fraction of a second
            for process in self.worker.descendants():
                try:
                    if "ffmpeg" in process.name():
                        return process.pid
                except psutil.NoSuchProcess:
                    continue
            time.sleep(0.005)
        return None

    def kill_once(self) -> None:
        self.feed()
        worker = self.ensure_worker()
        job = wait_for(self.processing, timeout=60, what="a job to be running")
        time.sleep(self.rng.uniform(0.0, 1.0))
        target = self.rng.choice(TARGETS)
        job = self.processing() or job
        pid = self.pick(target)
        if pid is None:
            return
        killed_at = time.monotonic()
        if target == "worker":
            worker.kill()
            self.worker = None
            self.ensure_worker()
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return  # finished just before the signal: not a kill
        self.kills[target] += 1

        def recovered() -> bool:
            [(status, attempts)] = db_rows(self.home, "SELECT status, attempts FROM uploads "
                                                      "WHERE id = ?", [job["id"]])
            return status in ("DONE", "FAILED") or (
                status == "PROCESSING" and attempts > job["attempts"])

        wait_for(recovered, timeout=60, what=f"upload {job['id']} to recover from a {target} kill",
                 interval=0.01)
        self.recoveries.append(time.monotonic() - killed_at)

    def close(self) -> None:
        if self.worker is not None:
            assert self.worker.alive(), "the worker died without being killed"
            assert self.worker.stop() == 0
        self.app.close()


def test_random_kills_lose_nothing(tmp_path: Path, soak: bool) -> None:
    kills = SOAK_KILLS if soak else CI_KILLS
    rng = random.Random(SEED)
    home = tmp_path / "home"
    base = samples.make_clip(tmp_path / "base.mp4", seconds=4, width=160, height=120, keyint=25)
    driver = Driver(home, base, tmp_path, rng)
    started = time.monotonic()
    try:
        while sum(driver.kills.values()) < kills:
            driver.kill_once()
    finally:
        driver.close()
    burst(home, **ENV)

    counts = check_invariants(home, max_frames=4)
    submitted = driver.submitted
    rows = {r["id"]: r for r in db_dicts(home, "SELECT * FROM uploads")}
    lost = [i for i in submitted if i not in rows]
    stuck = [i for i, r in rows.items() if r["status"] not in ("DONE", "FAILED")]
    assert lost == [] and stuck == []
    # Valid clips, attempts to spare: every one must finish, whatever was killed.
    assert counts == {"DONE": len(submitted)}, {
        i: (r["status"], r["error_category"], r["error_message"])
        for i, r in rows.items() if r["status"] != "DONE"}
    claimed = dict(db_rows(home, "SELECT upload_id, COUNT(*) FROM events "
                                 "WHERE kind = 'claimed' GROUP BY upload_id"))
    released = dict(db_rows(home, "SELECT upload_id, COUNT(*) FROM events "
                                  "WHERE kind = 'released' GROUP BY upload_id"))
    for upload_id, row in rows.items():
        assert row["attempts"] == claimed[upload_id] - released.get(upload_id, 0), row
    done_events = db_rows(home, "SELECT COUNT(*) FROM events WHERE kind = 'done'")[0][0]
    assert done_events == len(submitted)  # each upload completed exactly once
    crashes = db_rows(home, "SELECT COUNT(*) FROM restarts WHERE cause = 'crash'")[0][0]
    assert 0 < crashes <= driver.kills["child"] + driver.kills["ffmpeg"]
    assert all(driver.kills.values()), driver.kills

    report = (f"random kills (seed {SEED}): {sum(driver.kills.values())} kills {driver.kills}, "
              f"{len(submitted)} uploads, DONE {counts.get('DONE', 0)}, lost {len(lost)}, "
              f"stuck {len(stuck)}, median recovery "
              f"{statistics.median(driver.recoveries):.2f} s (max "
              f"{max(driver.recoveries):.2f} s), run {time.monotonic() - started:.0f} s")
    print("\n" + report)
    (tmp_path.parent / "random-kills-report.txt").write_text(report + "\n")


@pytest.fixture(autouse=True)
def _no_stray_processes():
    """A leaked worker or ffmpeg would skew every later test on this 2-core machine."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    leaked = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    for process in leaked:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    assert not [p for p in leaked if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
