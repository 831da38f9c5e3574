"""Frames and labels of an upload: what a job records, checkpoint by checkpoint.

A frame row is written as soon as its image is stored and its labels as soon as it is
analysed, so a rerun skips finished work. Labels and frames go with their upload
(``ON DELETE CASCADE``, schema version 4).
"""

from __future__ import annotations

import time
from typing import Any

from core.store.db import transaction
from core.store.sqldb import SqlDatabase


def indices(db: SqlDatabase, upload_id: int) -> set[int]:
    """Plan indices of the frames already stored for the upload."""
    return {r[0] for r in db.execute("SELECT idx FROM frames WHERE upload_id = ?", [upload_id])}


def count(db: SqlDatabase, upload_id: int) -> int:
    return db.execute("SELECT COUNT(*) FROM frames WHERE upload_id = ?",
                      [upload_id]).fetchone()[0]


def keys(db: SqlDatabase, upload_id: int) -> list[str]:
    """Storage keys of the upload's frame images."""
    return [r[0] for r in db.execute("SELECT storage_key FROM frames WHERE upload_id = ?",
                                     [upload_id])]


def timestamps(db: SqlDatabase, upload_id: int) -> dict[int, float]:
    """Recorded frames' timestamps by plan index."""
    return {r[0]: r[1] for r in db.execute(
        "SELECT idx, timestamp FROM frames WHERE upload_id = ?", [upload_id])}


def set_planned(db: SqlDatabase, upload_id: int, planned: int) -> None:
    db.execute("UPDATE uploads SET frames_planned = ? WHERE id = ?", [planned, upload_id])


def record(db: SqlDatabase, upload_id: int, index: int, *, timestamp: float,
           storage_key: str, width: int, height: int, metrics: Any,
           facts: Any = None, now: float | None = None) -> None:
    """Record one stored frame with its local metrics (a rerun's duplicate is ignored).

    ``facts`` is the extracted frame (:class:`core.media.ExtractedFrame`): its place in
    the stream, its time on the file's clock, keyframe flag, focus score and reason.
    """
    keyframe = getattr(facts, "keyframe", None)
    db.execute(
        "INSERT INTO frames (upload_id, idx, timestamp, storage_key, width, "
        "height, sharpness, brightness, overexposed, dhash, created_at, stream_frame, "
        "source_time, keyframe, focus, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [upload_id, index, timestamp, storage_key, width, height, metrics.sharpness,
         metrics.brightness, metrics.overexposed, f"{metrics.dhash:016x}",
         time.time() if now is None else now, getattr(facts, "number", None),
         getattr(facts, "source_time", None), None if keyframe is None else int(keyframe),
         getattr(facts, "focus", None), getattr(facts, "reason", None) or None])


def set_video_facts(db: SqlDatabase, upload_id: int, *, vfr: bool) -> None:
    """What the job learnt about the whole video: whether its frame rate varies."""
    db.execute("UPDATE uploads SET vfr = ? WHERE id = ?", [int(vfr), upload_id])


def for_analysis(db: SqlDatabase, upload_id: int) -> list[dict[str, Any]]:
    """The upload's frames in index order, with whether each was analysed."""
    return list(db.query(
        "SELECT id, idx, storage_key, dhash, analyzed_at FROM frames WHERE upload_id = ? "
        "ORDER BY idx", [upload_id]))


def record_labels(db: SqlDatabase, frame_id: int, labels: list[Any], *,
                  duplicate_of: int | None = None, now: float | None = None) -> None:
    """Replace a frame's labels and mark it analysed (joins a transaction already open).

    ``duplicate_of`` is the plan index of the frame this one is a near-duplicate of.
    """
    with transaction(db):
        db.execute("DELETE FROM labels WHERE frame_id = ?", [frame_id])
        for label in labels:
            db.execute("INSERT INTO labels (frame_id, name, confidence, source) "
                       "VALUES (?, ?, ?, ?)", [frame_id, label.name, label.confidence,
                                               label.source])
        db.execute("UPDATE frames SET analyzed_at = ?, duplicate_of = ? WHERE id = ?",
                   [time.time() if now is None else now, duplicate_of, frame_id])


def reset_analysis(db: SqlDatabase, upload_id: int) -> None:
    """Drop the upload's labels and mark every frame not analysed yet."""
    with transaction(db):
        db.execute("DELETE FROM labels WHERE frame_id IN "
                   "(SELECT id FROM frames WHERE upload_id = ?)", [upload_id])
        db.execute("UPDATE frames SET analyzed_at = NULL, duplicate_of = NULL WHERE upload_id = ?",
                   [upload_id])


def drop(db: SqlDatabase, upload_id: int) -> None:
    """Delete the upload's frames; their labels go with them (ON DELETE CASCADE)."""
    db.execute("DELETE FROM frames WHERE upload_id = ?", [upload_id])


def paid_calls(db: SqlDatabase, upload_id: int) -> int:
    """Paid analyzer calls made for the upload so far (kept across retries)."""
    row = db.execute("SELECT rekognition_calls FROM uploads WHERE id = ?", [upload_id]).fetchone()
    return (row[0] or 0) if row else 0


def set_paid_calls(db: SqlDatabase, upload_id: int, calls: int) -> None:
    db.execute("UPDATE uploads SET rekognition_calls = ? WHERE id = ?", [calls, upload_id])
