"""The state database: the single record of truth (SQLite through sqlite-utils, WAL).

Schema changes are numbered migrations applied in place on open; ``PRAGMA user_version``
holds the number applied. Multi-statement writes go through :func:`transaction`, which
takes the write lock up front (``BEGIN IMMEDIATE``) so concurrent writers wait on the
busy timeout instead of failing with "database is locked" on a lock upgrade.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlite_utils

BUSY_TIMEOUT_S = 30.0

UPLOAD_STATUSES = ("UPLOADING", "QUEUED", "DEFERRED", "PROCESSING", "DONE", "FAILED", "CANCELLED")


def _v1(db: sqlite_utils.Database) -> None:
    db["uploads"].create({
        "id": int, "original_name": str, "sha256": str, "size": int,
        "status": str, "mode": str, "priority": int,
        "error_category": str, "error_message": str,
        "attempts": int, "degrade_level": int, "not_before": float,
        "storage_key": str,
        "duration": float, "width": int, "height": int, "codec": str, "fps": float,
        "rotation": int, "has_audio": int,
        "stage": str, "progress_done": int, "progress_total": int,
        "created_at": float, "updated_at": float, "started_at": float, "finished_at": float,
        "lease_owner": str, "lease_expires_at": float, "peak_rss_kib": int,
        "frames_planned": int,
    }, pk="id", not_null={"original_name", "status", "mode", "created_at", "updated_at"},
        defaults={"attempts": 0, "degrade_level": 0, "priority": 0})
    db["uploads"].create_index(["status", "priority", "id"])
    db["uploads"].create_index(["sha256"])
    db["uploads"].create_index(["updated_at"])
    db["frames"].create({
        "id": int, "upload_id": int, "idx": int, "timestamp": float, "storage_key": str,
        "width": int, "height": int, "sharpness": float, "brightness": float,
        "overexposed": float, "dhash": str, "created_at": float, "analyzed_at": float,
    }, pk="id", foreign_keys=[("upload_id", "uploads", "id")])
    db["frames"].create_index(["upload_id", "idx"], unique=True)
    db["labels"].create({
        "id": int, "frame_id": int, "name": str, "confidence": float, "source": str,
    }, pk="id", foreign_keys=[("frame_id", "frames", "id")])
    db["labels"].create_index(["frame_id"])
    db["events"].create({
        "id": int, "at": float, "upload_id": int, "kind": str, "message": str,
    }, pk="id")
    db["events"].create_index(["upload_id", "id"])


def _v2(db: sqlite_utils.Database) -> None:
    """Worker heartbeats and the record of job-child replacements."""
    db["workers"].create({
        "name": str, "pid": int, "host": str, "state": str, "upload_id": int, "stage": str,
        "progress_done": int, "progress_total": int, "rss_kib": int, "peak_kib": int,
        "soft_limit_kib": int, "hard_limit_kib": int, "jobs_done": int, "child_pid": int,
        "child_starts": int, "started_at": float, "last_seen": float,
    }, pk="name")
    db["restarts"].create({
        "id": int, "at": float, "worker": str, "cause": str, "upload_id": int,
        "rss_kib": int, "message": str,
    }, pk="id")
    db["restarts"].create_index(["worker", "id"])
    # Small shared state (scheduler pause, run-now override): key -> JSON text.
    db["state"].create({"key": str, "value": str, "updated_at": float}, pk="key")


def _v3(db: sqlite_utils.Database) -> None:
    """Paid analyzer calls per upload (cost visibility and the per-upload budget)."""
    db["uploads"].add_column("rekognition_calls", int, not_null_default=0)


def _v4(db: sqlite_utils.Database) -> None:
    """The structured probe (core.media.ProbeResult as JSON) and its most asked facts."""
    db["uploads"].add_column("container", str)
    db["uploads"].add_column("frame_count", int)
    db["uploads"].add_column("probe", str)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4]
"""Append-only: migration N (1-based) upgrades a database at user_version N-1."""

SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path, *, check_same_thread: bool = True) -> sqlite_utils.Database:
    """Open the state database at ``path``, upgrading its schema in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    db = sqlite_utils.Database(conn)
    migrate(db)
    return db


_migrate_lock = threading.Lock()


def migrate(db: sqlite_utils.Database) -> int:
    """Apply pending migrations, each in its own transaction; return the new version."""
    with _migrate_lock:
        while True:
            with transaction(db):
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version >= SCHEMA_VERSION:
                    return version
                MIGRATIONS[version](db)
                db.execute(f"PRAGMA user_version = {version + 1}")


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """One write transaction holding the write lock from its first statement."""
    conn = db.conn
    if conn.in_transaction:  # nested: join the outer transaction
        yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
