"""Random kill -9 of the job child or of the whole worker, while clips stream in.

Each kill lands on a job that surely runs: the job waits at a hold point (a random frame
of its plan) that the test controls, is killed there, and is released. Seeded
(``RELIABILITY_SEED``) so a failing run can be replayed. After the kills a burst worker
drains the queue; then nothing may be lost, stuck, duplicated or orphaned. (Frames are
decoded by libav inside the job child: there is no ffmpeg process to kill.)
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
from core.app import open_app
from core.intake import submit_file
from core.media import samples
from tests.helpers import HoldPoint, make_settings
from tests.reliability.support import (
    WorkerProcess,
    burst,
    check_invariants,
    db_dicts,
    db_rows,
    wait_for,
    with_padding,
)

CI_KILLS, SOAK_KILLS = 12, 200  # `make soak` runs the long one
SEED = int(os.environ.get("RELIABILITY_SEED", "9"))
ENV = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "4", "PEAKOPS_LEASE_SECONDS": "5",
       "PEAKOPS_MAX_ATTEMPTS": "1000", "PEAKOPS_RETRY_BACKOFF": "0"}
FRAMES = int(ENV["PEAKOPS_MAX_FRAMES_PER_VIDEO"])
TARGETS = ("child", "worker")


class Driver:
    """Feeds clips, keeps one worker running and kills something at random moments."""

    def __init__(self, home: Path, base_clip: Path, folder: Path, rng: random.Random) -> None:
        self.home, self.base_clip, self.folder, self.rng = home, base_clip, folder, rng
        self.settings = make_settings(home, **{k.removeprefix("PEAKOPS_").lower(): v
                                               for k, v in ENV.items()})
        self.app = open_app(self.settings)
        self.hold = HoldPoint(folder)
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
            self.worker = WorkerProcess(self.home, self.log, **ENV, **self.hold.env)
        return self.worker

    def attempts(self, upload_id: int) -> int:
        return db_rows(self.home, "SELECT attempts FROM uploads WHERE id = ?", [upload_id])[0][0]

    def kill_once(self) -> None:
        """Hold the next job at a random frame, kill the child or the worker, release."""
        self.feed()
        worker = self.ensure_worker()
        self.hold.arm(after_frames=self.rng.randrange(FRAMES))
        held = self.hold.wait_reached()
        upload_id, attempts = held["upload_id"], self.attempts(held["upload_id"])
        target = self.rng.choice(TARGETS)
        killed_at = time.monotonic()
        if target == "worker":
            worker.kill()  # waits until its job child has died with it
            self.worker = None
        else:
            os.kill(held["pid"], signal.SIGKILL)
        self.kills[target] += 1
        self.hold.release()
        self.ensure_worker()

        def recovered() -> bool:
            [(status, now_attempts)] = db_rows(self.home, "SELECT status, attempts FROM uploads "
                                                          "WHERE id = ?", [upload_id])
            return status in ("DONE", "FAILED") or (
                status == "PROCESSING" and now_attempts > attempts)

        wait_for(recovered, timeout=60, what=f"upload {upload_id} to recover from a {target} kill",
                 interval=0.01)
        self.recoveries.append(time.monotonic() - killed_at)

    def close(self) -> None:
        self.hold.release()
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
    assert crashes == driver.kills["child"]  # each child kill seen as a crash, once
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
    """A leaked worker or job child would skew every later test on this 2-core machine."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    leaked = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    for process in leaked:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    assert not [p for p in leaked if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
