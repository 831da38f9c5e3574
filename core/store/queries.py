"""Reads of the upload record: one upload, lists, counts, the detail view.

Pure reads over the state database (the lifecycle's writes are :mod:`core.store.lifecycle`);
the CLI, the console, the API and the worker all ask through these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import NotFoundError
from core.store.schema import LIVE_SHA256
from core.store.sqldb import SqlDatabase


def get_upload(db: SqlDatabase, upload_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM uploads WHERE id = ?", [upload_id]).fetchone()
    if row is None:
        raise NotFoundError(f"no upload with id {upload_id}", upload_id=upload_id)
    columns = [c[0] for c in db.execute("SELECT * FROM uploads LIMIT 0").description]
    return dict(zip(columns, row, strict=True))


def list_uploads(db: SqlDatabase, *, status: str | Iterable[str] | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
    where, params = "", []
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        where = f"WHERE status IN ({','.join('?' * len(statuses))})"
        params = statuses
    sql = f"SELECT * FROM uploads {where} ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return list(db.query(sql, params))


def counts_by_status(db: SqlDatabase) -> dict[str, int]:
    return dict(db.execute("SELECT status, COUNT(*) FROM uploads GROUP BY status").fetchall())


def find_by_sha256(db: SqlDatabase, sha256: str) -> dict[str, Any] | None:
    """The live upload with this content, if any (cancelled or never stored ones don't count)."""
    rows = list(db.query(
        f"SELECT * FROM uploads WHERE sha256 = ? AND {LIVE_SHA256} ORDER BY id LIMIT 1",
        [sha256]))
    return rows[0] if rows else None


def find_refused(db: SqlDatabase, sha256: str) -> dict[str, Any] | None:
    """The upload that refused this content as unusable (input), if any."""
    rows = list(db.query(
        "SELECT * FROM uploads WHERE sha256 = ? AND status = 'FAILED' AND storage_key IS NULL "
        "AND error_category = 'input' ORDER BY id LIMIT 1", [sha256]))
    return rows[0] if rows else None



def next_queued(db: SqlDatabase, *, now: float | None = None) -> int | None:
    """The QUEUED upload to run next (priority, then submission order), if one is ready."""
    row = db.execute(
        "SELECT id FROM uploads WHERE status = 'QUEUED' AND (not_before IS NULL OR not_before <= ?)"
        " ORDER BY priority DESC, id LIMIT 1", [db.now() if now is None else now]).fetchone()
    return row[0] if row else None



@dataclass(frozen=True)
class UploadDetail:
    upload: dict[str, Any]
    frames: list[dict[str, Any]]
    events: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {**self.upload, "frames": self.frames, "events": self.events}


def detail(db: SqlDatabase, upload_id: int) -> UploadDetail:
    """An upload with its frames (each with its labels) and its activity log."""
    upload = get_upload(db, upload_id)
    if upload.get("vfr") is not None:
        upload["vfr"] = bool(upload["vfr"])
    frames = list(db.query("SELECT * FROM frames WHERE upload_id = ? ORDER BY idx", [upload_id]))
    labels: dict[int, list[dict[str, Any]]] = {}
    for label in db.query(
            "SELECT l.* FROM labels l JOIN frames f ON f.id = l.frame_id WHERE f.upload_id = ? "
            "ORDER BY l.frame_id, l.confidence DESC", [upload_id]):
        labels.setdefault(label["frame_id"], []).append(
            {"name": label["name"], "confidence": label["confidence"], "source": label["source"]})
    for frame in frames:
        frame["labels"] = labels.get(frame["id"], [])
        if frame.get("keyframe") is not None:
            frame["keyframe"] = bool(frame["keyframe"])
    events = list(db.query("SELECT at, kind, message FROM events WHERE upload_id = ? ORDER BY id",
                           [upload_id]))
    return UploadDetail(upload, frames, events)


def ids_with_status(db: SqlDatabase, status: str, *,
                    category: str | None = None) -> list[int]:
    """Ids of the uploads in ``status`` (and, if given, with that error category)."""
    sql, params = "SELECT id FROM uploads WHERE status = ?", [status]
    if category:
        sql += " AND error_category = ?"
        params.append(category)
    return [r[0] for r in db.execute(sql + " ORDER BY id", params)]


def has_status(db: SqlDatabase, status: str) -> bool:
    """Whether any upload is in ``status`` (e.g. QUEUED work left for a burst worker)."""
    return db.execute("SELECT 1 FROM uploads WHERE status = ? LIMIT 1",
                      [status]).fetchone() is not None


def key_shared(db: SqlDatabase, storage_key: str, upload_id: int | None = None) -> bool:
    """Whether an upload (other than ``upload_id``) holds the stored video ``storage_key``."""
    return db.execute("SELECT 1 FROM uploads WHERE storage_key = ? AND (? IS NULL OR id != ?) "
                      "LIMIT 1", [storage_key, upload_id, upload_id]).fetchone() is not None


def finished_before(db: SqlDatabase, cutoff: float) -> list[dict[str, Any]]:
    """DONE, FAILED or CANCELLED uploads that finished before ``cutoff`` (retention)."""
    return list(db.query(
        "SELECT id, storage_key FROM uploads WHERE status IN ('DONE', 'FAILED', 'CANCELLED') "
        "AND COALESCE(finished_at, updated_at) < ? ORDER BY id", [cutoff]))


def waiting_in_mode(db: SqlDatabase, status: str, mode: str) -> list[dict[str, Any]]:
    """Uploads in ``status`` and ``mode`` in dispatch order, each with ``frames_done``."""
    return list(db.query(
        "SELECT u.*, (SELECT COUNT(*) FROM frames f WHERE f.upload_id = u.id) AS frames_done "
        "FROM uploads u WHERE u.status = ? AND u.mode = ? ORDER BY u.priority DESC, u.id",
        [status, mode]))


def recent_done(db: SqlDatabase, limit: int) -> list[dict[str, Any]]:
    """Timing facts of the last ``limit`` DONE uploads, newest first (for estimates)."""
    return list(db.query(
        "SELECT started_at, finished_at, duration, width, height FROM uploads "
        "WHERE status = 'DONE' AND started_at IS NOT NULL AND finished_at IS NOT NULL "
        "ORDER BY finished_at DESC NULLS LAST LIMIT ?", [limit]))


def upload_rows(db: SqlDatabase, columns: Sequence[str], *,
                changed_after: float | None = None) -> list[tuple]:
    """``columns`` of every upload (by id), or of those changed after ``changed_after``
    (by change time). Column names are the caller's constants, never user text."""
    cols = ", ".join(columns)
    if changed_after is None:
        return db.execute(f"SELECT {cols} FROM uploads ORDER BY id").fetchall()
    return db.execute(f"SELECT {cols} FROM uploads WHERE updated_at > ? ORDER BY updated_at",
                      [changed_after]).fetchall()


def upload_count(db: SqlDatabase) -> int:
    return db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0]


def upload_ids(db: SqlDatabase) -> list[int]:
    return [r[0] for r in db.execute("SELECT id FROM uploads ORDER BY id")]
