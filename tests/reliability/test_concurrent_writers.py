"""Console refresh, ``peakops submit`` in a loop, a worker and scheduler-like state changes
on one state database at once: no "database is locked", no lost update.

Lost updates are found by replaying each upload's activity log through the lifecycle:
every event must be a legal transition from the state the previous one left, and the
replay must end in the row's status and attempt count.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from batch.queue import enqueue
from core.errors import DatabaseError, StateError
from core.media import samples
from core.store import db as dbmod
from core.store import lifecycle, state
from tests.helpers import make_settings, run_cli
from tests.reliability.support import WorkerProcess, burst, check_invariants, db_dicts, with_padding

FRAMES = 2
ENV = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": str(FRAMES), "PEAKOPS_RETRY_BACKOFF": "0",
       "PEAKOPS_MAX_ATTEMPTS": "5"}
SUBMITS, FILES_PER_SUBMIT = 8, 3
MIN_CHANGES = 150         # accepted state changes per scheduler thread (two threads)
MAX_OPS = 20000           # a bound, so a broken lifecycle fails instead of spinning
REFRESHES = 3000

ACTIVE = {"UPLOADING", "QUEUED", "DEFERRED", "PROCESSING"}
OPERATOR_RETRY = "queued again by the operator"


def replay(events: list[dict]) -> tuple[str | None, int]:
    """Run an upload's events through the lifecycle; assert each step is legal."""
    status: str | None = None
    attempts = 0

    def move(allowed: set[str | None], target: str, event: dict) -> str:
        assert status in allowed, f"event {event} from {status}"
        return target

    for e in events:
        kind, message = e["kind"], e["message"]
        if kind == "submitted":
            status = move({None}, "UPLOADING", e)
        elif kind in ("queued", "deferred"):
            status = move({"UPLOADING"}, kind.upper(), e)
        elif kind == "claimed":
            status = move({"QUEUED"}, "PROCESSING", e)
            attempts += 1
        elif kind == "done":
            status = move({"PROCESSING"}, "DONE", e)
        elif kind == "retry" and message == OPERATOR_RETRY:
            status = move({"DONE", "FAILED", "CANCELLED"}, "QUEUED", e)
            attempts = 0
        elif kind == "retry":
            status = move({"PROCESSING"}, "QUEUED", e)
        elif kind == "failed":
            status = move({"PROCESSING", "UPLOADING"}, "FAILED", e)
        elif kind == "mode":
            status = move({"QUEUED", "DEFERRED"},
                          "QUEUED" if message.endswith(" now") else "DEFERRED", e)
        elif kind == "dispatched":  # the scheduler's window opened
            status = move({"DEFERRED"}, "QUEUED", e)
        elif kind == "withdrawn":
            status = move({"QUEUED"}, "DEFERRED", e)
        elif kind == "cancelled":
            status = move(ACTIVE, "CANCELLED", e)
        elif kind == "released":
            status = move({"PROCESSING"}, message.rsplit(" ", 1)[-1], e)
            attempts = max(attempts - 1, 0)
        else:
            raise AssertionError(f"unexpected event {e}")
    return status, attempts


class Errors:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.lock = threading.Lock()

    def add(self, text: str) -> None:
        with self.lock:
            self.items.append(text)


def scheduler_thread(path: Path, seed: int, errors: Errors, counts: dict,
                     submitted: threading.Event) -> None:
    """What the scheduler and the console's buttons do: mode, cancel, retry, shared state.

    Runs until every submission is in and this thread's changes were accepted
    MIN_CHANGES times, whatever the machine's speed (bounded by MAX_OPS).
    """
    rng = random.Random(seed)
    db = dbmod.connect(path)
    n = changed = 0  # n: operations on uploads
    try:
        while (changed < MIN_CHANGES or not submitted.is_set()) and n < MAX_OPS:
            # Mostly stored uploads: this loop is far faster than a submit, and an upload
            # cancelled while UPLOADING has no video and drops out of the churn for good (that
            # race has its own test below); now and then one is hit all the same.
            rows = db.execute("SELECT id, status FROM uploads").fetchall()
            stored = [i for i, status in rows if status != "UPLOADING"]
            ids = stored if stored and rng.random() < 0.99 else [i for i, _ in rows]
            try:
                if not ids or rng.random() < 0.1:
                    state.put(db, "scheduler.paused", rng.random() < 0.5)
                    continue
                n += 1
                upload_id = rng.choice(ids)
                action = rng.choices(["mode", "cancel", "retry"], weights=[8, 1, 2])[0]
                if action == "mode":
                    lifecycle.set_mode(db, upload_id, rng.choice([lifecycle.MODE_NOW, lifecycle.MODE_OFFPEAK]))
                elif action == "cancel":
                    lifecycle.cancel(db, upload_id)
                else:
                    lifecycle.retry(db, upload_id)
                changed += 1
                counts["changed"] += 1
            except StateError:
                counts["refused"] += 1  # not allowed from that status: the expected answer
            except DatabaseError as exc:
                errors.add(f"scheduler: {exc!r}")
    finally:
        counts[f"changed by {seed}"] = changed
        db.conn.close()


def refresh_thread(path: Path, errors: Errors, counts: dict, stop: threading.Event) -> None:
    """The console's model refresh: rows changed since the last look."""
    db = dbmod.connect(path)
    since = 0.0
    try:
        while counts["refreshes"] < REFRESHES or not stop.is_set():
            try:
                rows = list(db.query("SELECT * FROM uploads WHERE updated_at > ? "
                                     "ORDER BY updated_at", [since]))
                if rows:
                    since = rows[-1]["updated_at"] - 1.0  # overlap: same-second writes
                db.execute("SELECT * FROM workers").fetchall()
            except DatabaseError as exc:
                errors.add(f"refresh: {exc!r}")
            counts["refreshes"] += 1
            if counts["refreshes"] >= REFRESHES and stop.is_set():
                break
    finally:
        db.conn.close()


def test_concurrent_writers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = make_settings(home)
    dbmod.connect(settings.db_path).conn.close()
    base = samples.make_clip(tmp_path / "base.mp4", seconds=1, width=160, height=120)
    batches = [[with_padding(base, tmp_path / f"site-{b}-{i}.mp4", f"{b}/{i}")
                for i in range(FILES_PER_SUBMIT)] for b in range(SUBMITS)]
    errors = Errors()
    counts = {"changed": 0, "refused": 0, "refreshes": 0, "submits": 0}
    stop, submitted = threading.Event(), threading.Event()

    def submitter() -> None:
        try:
            for batch in batches:
                proc = run_cli(home, "submit", *map(str, batch), **ENV)
                # A scheduler thread may cancel an upload while it is being stored: then
                # submit refuses it ("is CANCELLED, not UPLOADING") and exits 1.
                bad = [line for line in proc.stderr.splitlines()
                       if ("rejected" in line and "is CANCELLED, not UPLOADING" not in line)
                       or "Traceback" in line or "locked" in line]
                if bad or proc.returncode not in (0, 1):
                    errors.add(f"submit exited {proc.returncode}: {proc.stderr[-500:]}")
                counts["submits"] += 1
        finally:
            submitted.set()

    worker = WorkerProcess(home, tmp_path / "worker.log", **ENV)
    threads = [threading.Thread(target=submitter),
               threading.Thread(target=refresh_thread,
                                args=(settings.db_path, errors, counts, stop)),
               *[threading.Thread(target=scheduler_thread,
                                  args=(settings.db_path, seed, errors, counts, submitted))
                 for seed in (1, 2)]]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        for thread in threads[:1] + threads[2:]:
            thread.join(timeout=240)
        stop.set()
        threads[1].join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert worker.alive(), "the worker died"
    finally:
        stop.set()
        code = worker.stop()
    assert code == 0
    elapsed = time.monotonic() - started
    # Whatever the churn left waiting is drained, as the worker would in its next window.
    db = dbmod.connect(settings.db_path)
    try:
        queued = [r[0] for r in db.execute("SELECT id FROM uploads WHERE status = 'QUEUED'")]
    finally:
        db.conn.close()
    enqueue(settings, queued)
    burst(home, **ENV)

    log = worker.log.read_text() + "\n".join(errors.items)
    assert "database is locked" not in log and "Traceback" not in log, log[-3000:]
    assert errors.items == []
    uploads = db_dicts(home, "SELECT * FROM uploads ORDER BY id")
    assert len(uploads) == SUBMITS * FILES_PER_SUBMIT  # every submitted file recorded once
    for upload in uploads:
        events = db_dicts(home, "SELECT kind, message FROM events WHERE upload_id = ? "
                                "ORDER BY id", [upload["id"]])
        assert replay(events) == (upload["status"], upload["attempts"]), (upload, events)
        assert upload["status"] in {"DONE", "FAILED", "CANCELLED", "DEFERRED"}, upload
    for upload in uploads:  # DEFERRED ones wait for a window; the rest must be settled
        if upload["status"] == "DEFERRED":
            db = dbmod.connect(settings.db_path)
            lifecycle.cancel(db, upload["id"])
            db.conn.close()
    check_invariants(home, max_frames=FRAMES, allow_cancelled=True)
    # The churn happened (each thread's changes were accepted), alongside the refreshes.
    assert counts["changed by 1"] >= MIN_CHANGES and counts["changed by 2"] >= MIN_CHANGES
    assert counts["refreshes"] >= REFRESHES
    print(f"\nconcurrent writers: {counts['changed']} state changes, {counts['refused']} "
          f"refused transitions, {counts['refreshes']} refreshes, {counts['submits']} submit "
          f"runs, {len(uploads)} uploads in {elapsed:.1f} s; 0 lock errors")


def test_cancel_while_storing_leaves_no_copy_and_cannot_be_retried(tmp_path: Path) -> None:
    """The race the churn above hits: the console cancels an upload mid-copy."""
    from core.app import open_app
    from core.intake import submit_file
    from core.storage.local import LocalStore

    settings = make_settings(tmp_path / "home")
    app = open_app(settings)

    class CancellingStore(LocalStore):
        def put_staged(self, key, staged):
            [(upload_id,)] = app.db.execute("SELECT id FROM uploads WHERE status = 'UPLOADING'")
            lifecycle.cancel(app.db, upload_id)  # as another process would, while it is stored
            return super().put_staged(key, staged)

    app.store = CancellingStore(settings.home / "objects")
    clip = samples.make_clip(tmp_path / "c.mp4", seconds=1, width=160, height=120)
    try:
        with pytest.raises(StateError, match="is CANCELLED, not UPLOADING"):
            submit_file(app, clip)
        [row] = db_dicts(settings.home, "SELECT * FROM uploads")
        assert (row["status"], row["storage_key"]) == ("CANCELLED", None)
        assert [p for p in (settings.home / "objects").rglob("*") if p.is_file()] == []
        with pytest.raises(StateError, match="no stored video"):
            lifecycle.retry(app.db, row["id"])
        app.store = LocalStore(settings.home / "objects")
        assert submit_file(app, clip).status == "QUEUED"  # submitting again works
    finally:
        app.close()
