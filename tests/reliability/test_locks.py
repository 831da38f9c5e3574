"""A write lock held by another process: readers don't wait, a job doesn't lose an
attempt, the heartbeat thread says so in one line. Real SQLite, real processes."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from core.app import App, open_app
from core.errors import InputError
from core.intake import submit_file
from core.jobs import pipeline
from core.media import default_extractor
from core.store import lifecycle, queries
from core.store.db import connect
from tests.helpers import cli_env, make_settings, run_cli, wait_for
from tests.reliability.support import WorkerProcess


@contextlib.contextmanager
def write_lock(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock (as a long writer would)."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO events (at, upload_id, kind, message) VALUES (0, NULL, 'x', 'x')")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_reading_commands_do_not_wait_for_a_writer(tmp_path, clip_h264):
    home = tmp_path / "home"
    run_cli(home, "submit", str(clip_h264), check=True)
    with write_lock(home / "peakops.db"):
        listed = run_cli(home, "list", "--json", timeout=20)
        shown = run_cli(home, "show", "1", "--json", timeout=20)
    assert listed.returncode == 0 and '"QUEUED"' in listed.stdout, listed.stderr
    assert shown.returncode == 0, shown.stderr


def test_write_commands_wait_out_a_long_lock_and_then_succeed(tmp_path, clip_h264,
                                                              clip_noaudio):
    """A writer holds the lock past the busy timeout (2 s here; 30 s by default): cancel
    and submit say they wait, in one line each, and finish once it is released."""
    home = tmp_path / "home"
    run_cli(home, "submit", str(clip_h264), check=True)
    logs = {name: tmp_path / f"{name}.log" for name in ("cancel", "submit")}
    argv = {"cancel": ["cancel", "1"], "submit": ["submit", str(clip_noaudio)]}
    with write_lock(home / "peakops.db"):
        procs = {}
        for name, log in logs.items():
            with log.open("w") as out:
                procs[name] = subprocess.Popen([sys.executable, "-m", "cli", *argv[name]],
                                               cwd=tmp_path, stdout=out,
                                               env=cli_env(home, PEAKOPS_DB_BUSY_TIMEOUT="2"),
                                               stderr=subprocess.STDOUT, text=True)
        for log in logs.values():
            wait_for(lambda log=log: "waits for it" in log.read_text(), timeout=90,
                     what="the command to say it waits for the lock")
    for name, proc in procs.items():
        assert proc.wait(timeout=60) == 0, logs[name].read_text()
        assert "Traceback" not in logs[name].read_text()
    assert "1\tCANCELLED" in logs["cancel"].read_text()
    assert "2\tQUEUED" in logs["submit"].read_text()


class LockingExtractor:
    """The real extractor, which takes the write lock on another connection when the job
    opens the video, as another writer might while frames are extracted."""

    def __init__(self, db_path: Path) -> None:
        self.inner = default_extractor()
        self.db_path = db_path
        self.lock: contextlib.ExitStack | None = None

    def open(self, *args, **kwargs):
        if self.lock is None:
            self.lock = contextlib.ExitStack()
            self.lock.enter_context(write_lock(self.db_path))
        return self.inner.open(*args, **kwargs)


class ReleaseWhenWaiting(logging.Handler):
    def __init__(self, extractor: LockingExtractor) -> None:
        super().__init__(logging.WARNING)
        self.extractor = extractor

    def emit(self, record: logging.LogRecord) -> None:
        if "waits for it" in record.getMessage() and self.extractor.lock is not None:
            self.extractor.lock.close()


def test_a_lock_during_a_job_does_not_cost_an_attempt(tmp_path, clip_h264):
    settings = make_settings(tmp_path / "home", max_frames_per_video=3)
    base = open_app(settings)
    upload_id = submit_file(base, clip_h264).upload_id
    extractor = LockingExtractor(settings.db_path)
    app = App(settings, connect(settings.db_path, busy_timeout_s=0.2), base.store,
              base.analyzer, extractor)
    release = ReleaseWhenWaiting(extractor)
    logging.getLogger("core.store.db").addHandler(release)
    try:
        status = pipeline.process_now(app, upload_id, "cli-test")
    finally:
        logging.getLogger("core.store.db").removeHandler(release)
        if extractor.lock is not None:
            extractor.lock.close()
    row = queries.get_upload(base.db, upload_id)
    assert (status, row["status"], row["attempts"]) == (lifecycle.QUEUED, lifecycle.QUEUED, 0), row
    [event] = [e for e in queries.detail(base.db, upload_id).events if e["kind"] == "retry"]
    assert "not counted as an attempt" in event["message"]
    app.close()
    base.close()


def test_lock_errors_are_refunded_only_for_running_jobs(tmp_path):
    from core.errors import DatabaseBusyError
    from core.jobs import settle

    db = connect(tmp_path / "peakops.db")
    upload_id = lifecycle.create_upload(db, original_name="a.mp4", sha256="ab", size=1,
                                   mode=lifecycle.MODE_NOW, owner="s", lease_seconds=60, now=1.0)
    busy = DatabaseBusyError("locked")

    def fail(upload_id, error, owner, max_attempts, now):
        decision = settle.decide_failure(error, queries.get_upload(db, upload_id),
                                         max_attempts=max_attempts)
        return lifecycle.write_failure(db, upload_id, decision, owner=owner, now=now)
    # A submission that met a lock stays failed: nothing was stored to run (intake
    # writes FAILED itself, whatever the error).
    assert lifecycle.fail(db, upload_id, busy, owner="s", status=lifecycle.FAILED,
                          now=2.0) == lifecycle.FAILED
    other = lifecycle.create_upload(db, original_name="b.mp4", sha256="cd", size=1,
                               mode=lifecycle.MODE_NOW, owner="s", lease_seconds=60, now=1.0)
    lifecycle.mark_stored(db, other, storage_key="videos/cd", probe={}, now=1.0)
    for attempt in range(5):  # more lock failures than max_attempts: still queued
        assert lifecycle.claim(db, other, "w", lease_seconds=60, now=10.0 + 1000 * attempt)
        assert fail(other, busy, "w", 2, 11.0 + 1000 * attempt) == lifecycle.QUEUED
    assert queries.get_upload(db, other)["attempts"] == 0
    assert lifecycle.claim(db, other, "w", lease_seconds=60, now=9000.0)
    assert fail(other, InputError("bad"), "w", 2, 9001.0) == lifecycle.FAILED
    db.conn.close()


def test_heartbeat_under_a_lock_logs_one_line_not_a_traceback(tmp_path):
    home = tmp_path / "home"
    log = tmp_path / "worker.log"
    run_cli(home, "list", check=True)
    worker = WorkerProcess(home, log, PEAKOPS_LOG_LEVEL="info")
    try:
        wait_for(lambda: sqlite3.connect(home / "peakops.db").execute(
            "SELECT COUNT(*) FROM workers").fetchone()[0], what="the worker's first heartbeat")
        with write_lock(home / "peakops.db"):
            wait_for(lambda: any(said in log.read_text() for said in (
                ": heartbeat skipped", ": heartbeat write failed")), timeout=40,
                what="the heartbeat thread to meet the lock")
    finally:
        assert worker.stop() == 0
    text = log.read_text()
    assert "heartbeat skipped: the state database is locked" in text
    assert "Traceback" not in text
