"""The state database: the single record of truth (SQLite through sqlite-utils, WAL).

Schema changes are numbered migrations applied in place on open; ``PRAGMA user_version``
holds the number applied. Multi-statement writes go through :func:`transaction`, which
takes the write lock up front (``BEGIN IMMEDIATE``) so concurrent writers wait on the
busy timeout instead of failing with "database is locked" on a lock upgrade.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlite_utils

BUSY_TIMEOUT_S = 30.0


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


_FRAME_COLUMNS = ("id, upload_id, idx, timestamp, storage_key, width, height, sharpness, "
                  "brightness, overexposed, dhash, created_at, analyzed_at")
_LABEL_COLUMNS = "id, frame_id, name, confidence, source"


def _v4(db: sqlite_utils.Database) -> None:
    """Frames go with their upload and labels with their frame (ON DELETE CASCADE), so
    one DELETE of an upload row removes everything recorded for it.

    SQLite cannot add an action to a foreign key: both tables are rebuilt. Labels are
    set aside first, so dropping the old frames table touches no row that refers to it.
    """
    run = db.conn.execute
    run(f"CREATE TABLE labels_v3 AS SELECT {_LABEL_COLUMNS} FROM labels")
    run("DROP TABLE labels")
    run("""CREATE TABLE frames_v4 (
        id INTEGER PRIMARY KEY,
        upload_id INTEGER REFERENCES uploads(id) ON DELETE CASCADE,
        idx INTEGER, timestamp REAL, storage_key TEXT, width INTEGER, height INTEGER,
        sharpness REAL, brightness REAL, overexposed REAL, dhash TEXT, created_at REAL,
        analyzed_at REAL)""")
    run(f"INSERT INTO frames_v4 ({_FRAME_COLUMNS}) SELECT {_FRAME_COLUMNS} FROM frames")
    run("DROP TABLE frames")
    run("ALTER TABLE frames_v4 RENAME TO frames")
    run("CREATE UNIQUE INDEX idx_frames_upload_id_idx ON frames (upload_id, idx)")
    run("""CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        frame_id INTEGER REFERENCES frames(id) ON DELETE CASCADE,
        name TEXT, confidence REAL, source TEXT)""")
    run(f"INSERT INTO labels ({_LABEL_COLUMNS}) SELECT {_LABEL_COLUMNS} FROM labels_v3")
    run("DROP TABLE labels_v3")
    run("CREATE INDEX idx_labels_frame_id ON labels (frame_id)")


_ID_PRIMARY_KEY = re.compile(r"""([\["]?id[\]"]?\s+INTEGER\s+PRIMARY\s+KEY)""", re.IGNORECASE)


def _v5(db: sqlite_utils.Database) -> None:
    """Upload ids are never reused, not even after the newest uploads were deleted by
    ``cleanup`` (``AUTOINCREMENT``): an id in a report, export or log stays unique.

    SQLite cannot add AUTOINCREMENT to a table: ``uploads`` is rebuilt from its own
    CREATE statement (so columns other migrations added come along), with foreign keys
    off (see :func:`migrate`) so dropping the old table cascades to no frame.
    """
    run = db.conn.execute
    sql = run("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'uploads'"
              ).fetchone()[0]
    head, body = sql.split("(", 1)
    rebuilt, found = _ID_PRIMARY_KEY.subn(r"\1 AUTOINCREMENT", body, count=1)
    if not found:
        raise RuntimeError(f"unexpected uploads schema: {sql}")
    indexes = [r[0] for r in run("SELECT sql FROM sqlite_master WHERE type = 'index' AND "
                                 "tbl_name = 'uploads' AND sql IS NOT NULL")]
    columns = ", ".join(f"[{r[1]}]" for r in run("PRAGMA table_info(uploads)"))
    run(f"CREATE TABLE [uploads_v5] ({rebuilt}")
    run(f"INSERT INTO uploads_v5 ({columns}) SELECT {columns} FROM uploads")
    run("DROP TABLE uploads")
    run("ALTER TABLE uploads_v5 RENAME TO uploads")
    for index in indexes:
        run(index)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4, _v5]
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


def schema_version(db: sqlite_utils.Database) -> int:
    """The migration number the database is at."""
    return db.execute("PRAGMA user_version").fetchone()[0]


_migrate_lock = threading.Lock()


def migrate(db: sqlite_utils.Database) -> int:
    """Apply pending migrations, each in its own transaction; return the new version.

    Foreign keys are off meanwhile, as SQLite's procedure for rebuilding a table asks
    (dropping a referenced table must not cascade); each migration ends with a foreign
    key check instead.
    """
    with _migrate_lock:
        enforced = db.execute("PRAGMA foreign_keys").fetchone()[0]
        current = db.execute("PRAGMA user_version").fetchone()[0]
        if current >= SCHEMA_VERSION:
            return current
        db.execute("PRAGMA foreign_keys = OFF")
        try:
            while True:
                with transaction(db):
                    version = db.execute("PRAGMA user_version").fetchone()[0]
                    if version >= SCHEMA_VERSION:
                        return version
                    MIGRATIONS[version](db)
                    broken = db.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration {version + 1} broke foreign keys: "
                                           f"{broken[:5]}")
                    db.execute(f"PRAGMA user_version = {version + 1}")
        finally:
            db.execute(f"PRAGMA foreign_keys = {'ON' if enforced else 'OFF'}")


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
