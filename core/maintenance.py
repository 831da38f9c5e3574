"""Housekeeping: retention cleanup and abandoned scratch folders."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass

from core.app import App
from core.errors import StateError, StorageError
from core.liveness import pid_running
from core.store import frames, lifecycle, queries

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
    removed = objects = failures = 0
    for row in queries.finished_before(app.db, cutoff):
        upload_id = row["id"]
        keys = _object_keys(app, row)
        try:
            for key in keys:
                app.store.delete(key)
                objects += 1
        except StorageError as exc:
            failures += 1
            logger.warning("cleanup: upload %s kept, its objects could not be deleted: %s",
                           upload_id, exc)
            continue
        lifecycle.remove(app.db, upload_id, kind="cleanup",
                         message=f"upload {upload_id} removed after {days:g} days", now=now)
        removed += 1
    if removed:
        logger.info("cleanup: removed %s uploads and %s objects older than %g days",
                    removed, objects, days)
    return CleanupResult(removed, objects, failures)


def _object_keys(app: App, row: dict) -> list[str]:
    """The frame images and the video of an upload; the video only when no other upload
    holds the same content (a resubmission)."""
    keys = frames.keys(app.db, row["id"])
    if row["storage_key"] and not queries.key_shared(app.db, row["storage_key"], row["id"]):
        keys.append(row["storage_key"])
    return keys


def sweep_temp(app: App) -> int:
    """Remove scratch folders of jobs, and partial objects, whose process is gone (kill -9)."""
    removed = app.store.sweep_partials()
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
    row = queries.get_upload(app.db, upload_id)
    if row["status"] in (lifecycle.UPLOADING, lifecycle.PROCESSING):
        raise StateError(f"upload {upload_id} is {row['status']}; cancel it before deleting",
                         upload_id=upload_id)
    keys = _object_keys(app, row)
    for key in keys:  # objects first: a storage failure leaves the row, never an orphan
        app.store.delete(key)
    lifecycle.remove(app.db, upload_id, kind="deleted",
                     message=f"upload {upload_id} ({row['original_name']}) deleted", now=now)
    logger.info("upload %s deleted with %s object(s)", upload_id, len(keys))
    return len(keys)
