"""Housekeeping: retention cleanup and abandoned scratch folders."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass

from core import jobs
from core.app import App
from core.db import transaction
from core.errors import StateError, StorageError
from core.liveness import pid_running

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanupResult:
    uploads: int
    objects: int
    errors: int


def cleanup_expired(app: App, *, days: float | None = None,
                    now: float | None = None) -> CleanupResult:
    """Delete DONE/FAILED/CANCELLED uploads finished more than ``days`` ago, with their objects.

    The seed runbook's ``cleanup_expired_inspections``. Objects are deleted before rows,
    so a storage failure leaves the row (and a retry next time), never an orphan object.
    """
    days = app.settings.retention_days if days is None else days
    now = time.time() if now is None else now
    cutoff = now - days * 86400
    rows = list(app.db.query(
        "SELECT id, storage_key FROM uploads WHERE status IN ('DONE', 'FAILED', 'CANCELLED') "
        "AND COALESCE(finished_at, updated_at) < ? ORDER BY id", [cutoff]))
    removed = objects = failures = 0
    for row in rows:
        upload_id = row["id"]
        keys = [r[0] for r in app.db.execute(
            "SELECT storage_key FROM frames WHERE upload_id = ?", [upload_id])]
        shared = row["storage_key"] and app.db.execute(
            "SELECT 1 FROM uploads WHERE storage_key = ? AND id != ?",
            [row["storage_key"], upload_id]).fetchone()
        if row["storage_key"] and not shared:  # a resubmission may hold the same content
            keys.append(row["storage_key"])
        try:
            for key in keys:
                app.store.delete(key)
                objects += 1
        except StorageError as exc:
            failures += 1
            logger.warning("cleanup: upload %s kept, its objects could not be deleted: %s",
                           upload_id, exc)
            continue
        with transaction(app.db):
            app.db.execute("DELETE FROM labels WHERE frame_id IN "
                           "(SELECT id FROM frames WHERE upload_id = ?)", [upload_id])
            app.db.execute("DELETE FROM frames WHERE upload_id = ?", [upload_id])
            app.db.execute("DELETE FROM events WHERE upload_id = ?", [upload_id])
            app.db.execute("DELETE FROM uploads WHERE id = ?", [upload_id])
            jobs.record_event(app.db, None, "cleanup",
                              f"upload {upload_id} removed after {days:g} days", now=now)
        removed += 1
    if removed:
        logger.info("cleanup: removed %s uploads and %s objects older than %g days",
                    removed, objects, days)
    return CleanupResult(removed, objects, failures)


def sweep_temp(app: App) -> int:
    """Remove scratch folders of jobs, and partial objects, whose process is gone (kill -9)."""
    sweep_partials = getattr(app.store, "sweep_partials", None)  # stores staging locally
    removed = sweep_partials() if sweep_partials else 0
    for folder in app.settings.tmp_dir.glob("job-*-*"):
        try:
            pid = int(folder.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if not pid_running(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def delete_upload(app: App, upload_id: int, *, now: float | None = None) -> int:
    """Delete one upload: its stored objects, then its frames, labels, events and row.

    Refused (StateError) while the upload is being stored or processed. The video object
    is kept when another upload holds the same content. Returns the objects deleted.
    """
    row = jobs.get_upload(app.db, upload_id)
    if row["status"] in (jobs.UPLOADING, jobs.PROCESSING):
        raise StateError(f"upload {upload_id} is {row['status']}; cancel it before deleting",
                         upload_id=upload_id)
    keys = [r[0] for r in app.db.execute(
        "SELECT storage_key FROM frames WHERE upload_id = ?", [upload_id])]
    if row["storage_key"] and not app.db.execute(
            "SELECT 1 FROM uploads WHERE storage_key = ? AND id != ?",
            [row["storage_key"], upload_id]).fetchone():
        keys.append(row["storage_key"])
    for key in keys:  # objects first: a storage failure leaves the row, never an orphan
        app.store.delete(key)
    with transaction(app.db):
        app.db.execute("DELETE FROM labels WHERE frame_id IN "
                       "(SELECT id FROM frames WHERE upload_id = ?)", [upload_id])
        app.db.execute("DELETE FROM frames WHERE upload_id = ?", [upload_id])
        app.db.execute("DELETE FROM events WHERE upload_id = ?", [upload_id])
        app.db.execute("DELETE FROM uploads WHERE id = ?", [upload_id])
        jobs.record_event(app.db, None, "deleted",
                          f"upload {upload_id} ({row['original_name']}) deleted", now=now)
    logger.info("upload %s deleted with %s object(s)", upload_id, len(keys))
    return len(keys)
