"""The upload lifecycle: every transition is one conditional UPDATE plus an event row.

:data:`ACTIONS` is the one table of which operator action applies to which status; the
CLI, the console and the API read it (the console to enable its menu items).

```
submit -> UPLOADING -> QUEUED | DEFERRED;  DEFERRED -(window)-> QUEUED
QUEUED -(claim, lease)-> PROCESSING -> DONE
PROCESSING -(transient error | memory kill | lease expired, attempts left)-> QUEUED
PROCESSING -(permanent error | attempts exhausted)-> FAILED
any non-terminal -(cancel)-> CANCELLED;  FAILED/DONE/CANCELLED -(retry)-> QUEUED
```

A claim only succeeds on a QUEUED row, so a duplicate queue message is harmless. Every
function takes ``now`` (epoch seconds) so tests and the scheduler control time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from core.errors import PeakOpsError, StateError
from core.jobs import settle
from core.store import frames
from core.store.db import transaction
from core.store.queries import get_upload
from core.store.sqldb import SqlDatabase
from core.store.status import (  # noqa: F401  (re-exported: lifecycle.QUEUED and the rest)
    ACTIVE,
    CANCELLED,
    DEFERRED,
    DONE,
    FAILED,
    PROCESSING,
    QUEUED,
    STATUSES,
    TERMINAL,
    UPLOADING,
)

logger = logging.getLogger(__name__)

MODE_NOW, MODE_OFFPEAK = "now", "off-peak"

ACTIONS: dict[str, tuple[str, ...]] = {
    "retry": (FAILED, DONE, CANCELLED),
    "reprocess": (FAILED, DONE, CANCELLED),
    "reanalyse": (FAILED, DONE, CANCELLED),
    "cancel": ACTIVE,
    "offpeak": (QUEUED,),   # set_mode(off-peak): waiting now -> waiting for a window
    "now": (DEFERRED,),     # set_mode(now)
    "delete": (QUEUED, DEFERRED, *TERMINAL),
}
"""Operator action -> the statuses it applies to. Every other status refuses it."""


def _now(db: SqlDatabase, now: float | None) -> float:
    """``now``, or the database server's clock: the one clock every worker of a fleet
    shares, so leases, backoff and the reaper agree across machines."""
    return db.now() if now is None else now


def record_event(db: SqlDatabase, upload_id: int | None, kind: str, message: str,
                 *, now: float | None = None) -> None:
    db.execute("INSERT INTO events (at, upload_id, kind, message) VALUES (?, ?, ?, ?)",
               [_now(db, now), upload_id, kind, message])


def create_upload(db: SqlDatabase, *, original_name: str, sha256: str, size: int,
                  mode: str, owner: str, lease_seconds: float, priority: int = 0,
                  now: float | None = None) -> int:
    """Record a new upload in UPLOADING, leased by the submitter until it is stored."""
    if mode not in (MODE_NOW, MODE_OFFPEAK):
        raise ValueError(f"mode must be {MODE_NOW!r} or {MODE_OFFPEAK!r}, not {mode!r}")
    now = _now(db, now)
    with transaction(db):
        upload_id = db.insert(
            "INSERT INTO uploads (original_name, sha256, size, status, mode, priority, "
            "created_at, updated_at, lease_owner, lease_expires_at) "
            "VALUES (?, ?, ?, 'UPLOADING', ?, ?, ?, ?, ?, ?)",
            [original_name, sha256, size, mode, priority, now, now, owner, now + lease_seconds])
        record_event(db, upload_id, "submitted", f"{original_name} ({size} bytes), mode {mode}",
                     now=now)
    return upload_id


def mark_stored(db: SqlDatabase, upload_id: int, *, storage_key: str,
                probe: dict[str, Any], now: float | None = None) -> str:
    """UPLOADING -> QUEUED (mode now) or DEFERRED (off-peak); returns the new status."""
    now = _now(db, now)
    fields = {k: probe.get(k) for k in
              ("duration", "width", "height", "codec", "fps", "rotation", "has_audio")}
    fields["container"] = probe.get("container")
    fields["frame_count"] = probe.get("frames")
    fields["probe"] = json.dumps(probe, sort_keys=True)  # every structured fact (core.media)
    with transaction(db):
        row = get_upload(db, upload_id)
        if row["status"] != UPLOADING:
            raise StateError(f"upload {upload_id} is {row['status']}, not UPLOADING",
                             upload_id=upload_id)
        status = QUEUED if row["mode"] == MODE_NOW else DEFERRED
        sets = ", ".join(f"{k} = ?" for k in fields)
        db.execute(
            f"UPDATE uploads SET status = ?, storage_key = ?, {sets}, lease_owner = NULL, "
            "lease_expires_at = NULL, updated_at = ? WHERE id = ?",
            [status, storage_key, *fields.values(), now, upload_id])
        record_event(db, upload_id, status.lower(), f"stored as {storage_key}", now=now)
    return status


def claim(db: SqlDatabase, upload_id: int, owner: str, *, lease_seconds: float,
          now: float | None = None) -> dict[str, Any] | None:
    """QUEUED -> PROCESSING for ``owner``; None if someone else has it or it isn't QUEUED."""
    now = _now(db, now)
    with transaction(db):
        cursor = db.execute(
            "UPDATE uploads SET status = 'PROCESSING', lease_owner = ?, lease_expires_at = ?, "
            "attempts = attempts + 1, started_at = ?, updated_at = ?, stage = 'starting', "
            "error_category = NULL, error_message = NULL "
            "WHERE id = ? AND status = 'QUEUED' AND (not_before IS NULL OR not_before <= ?)",
            [owner, now + lease_seconds, now, now, upload_id, now])
        if cursor.rowcount != 1:
            return None
        row = get_upload(db, upload_id)
        record_event(db, upload_id, "claimed",
                     f"attempt {row['attempts']} by {owner}, degrade level {row['degrade_level']}",
                     now=now)
    return row


def renew_lease(db: SqlDatabase, upload_id: int, owner: str, *, lease_seconds: float,
                stage: str | None = None, done: int | None = None, total: int | None = None,
                now: float | None = None) -> bool:
    """Extend the lease and record progress; False if the upload is no longer ours."""
    now = _now(db, now)
    cursor = db.execute(
        "UPDATE uploads SET lease_expires_at = ?, updated_at = ?, stage = COALESCE(?, stage), "
        "progress_done = COALESCE(?, progress_done), progress_total = COALESCE(?, progress_total) "
        "WHERE id = ? AND status = 'PROCESSING' AND lease_owner = ?",
        [now + lease_seconds, now, stage, done, total, upload_id, owner])
    return cursor.rowcount == 1


def complete(db: SqlDatabase, upload_id: int, owner: str, *,
             peak_rss_kib: int | None = None, note: str = "", now: float | None = None) -> bool:
    """PROCESSING -> DONE; False if the upload was taken away meanwhile."""
    now = _now(db, now)
    with transaction(db):
        cursor = db.execute(
            "UPDATE uploads SET status = 'DONE', finished_at = ?, updated_at = ?, stage = 'done', "
            "lease_owner = NULL, lease_expires_at = NULL, error_category = NULL, "
            "error_message = NULL, "
            "peak_rss_kib = GREATEST(COALESCE(peak_rss_kib, 0), COALESCE(?, 0)) "
            "WHERE id = ? AND status = 'PROCESSING' AND lease_owner = ?",
            [now, now, peak_rss_kib, upload_id, owner])
        if cursor.rowcount != 1:
            return False
        record_event(db, upload_id, "done", f"{frames.count(db, upload_id)} frames recorded{note}",
                     now=now)
    return True


def fail(db: SqlDatabase, upload_id: int, error: PeakOpsError, *, status: str,
         level: int | None = None, delay: float = 0.0, refund: bool = False,
         owner: str | None = None, peak_rss_kib: int | None = None,
         now: float | None = None) -> str:
    """Write a failure of an active upload as :mod:`core.jobs.settle` decided it; return the
    upload's status afterwards.

    ``status`` is QUEUED (a retry, claimable after ``delay`` seconds) or FAILED; ``level``
    the degrade level from now on (None: unchanged); ``refund`` gives the attempt back.
    ``owner`` restricts the change to the lease holder. Terminal uploads are left alone.
    """
    if status not in (QUEUED, FAILED):
        raise ValueError(f"a failure leaves an upload QUEUED or FAILED, not {status!r}")
    now = _now(db, now)
    with transaction(db):
        row = get_upload(db, upload_id)
        if row["status"] in TERMINAL or (owner is not None and row["lease_owner"] != owner):
            return row["status"]
        before = row["degrade_level"] or 0
        level = before if level is None else level
        retry = status == QUEUED
        db.execute(
            "UPDATE uploads SET status = ?, error_category = ?, error_message = ?, "
            "degrade_level = ?, not_before = ?, lease_owner = NULL, lease_expires_at = NULL, "
            "updated_at = ?, finished_at = ?, attempts = attempts - ?, "
            "peak_rss_kib = GREATEST(COALESCE(peak_rss_kib, 0), COALESCE(?, 0)) WHERE id = ?",
            [status, error.category, error.message, level, now + delay if retry else None, now,
             None if retry else now, int(refund), peak_rss_kib, upload_id])
        if retry:
            what = f"degrade level {level}" if level != before else f"in {delay:.0f} s"
            if refund:
                what += ", not counted as an attempt"
            record_event(db, upload_id, "retry",
                         f"{error.category}: {error.message} (retrying, {what})", now=now)
        else:
            record_event(db, upload_id, "failed", f"{error.category}: {error.message}", now=now)
    return status


def write_failure(db: SqlDatabase, upload_id: int, decision: settle.Decision, *,
                  owner: str | None = None, peak_rss_kib: int | None = None,
                  now: float | None = None) -> str:
    """:func:`fail` with what a :class:`core.jobs.settle.Decision` says."""
    assert decision.error is not None
    return fail(db, upload_id, decision.error, status=decision.status, level=decision.level,
                delay=decision.delay, refund=decision.refund, owner=owner,
                peak_rss_kib=peak_rss_kib, now=now)


def _transition(db: SqlDatabase, upload_id: int, allowed: tuple[str, ...],
                target: str, kind: str, message: str, *, sets: dict[str, Any] | None = None,
                now: float | None = None) -> str:
    now = _now(db, now)
    sets = {"status": target, "updated_at": now, **(sets or {})}
    with transaction(db):
        row = get_upload(db, upload_id)
        if row["status"] not in allowed:
            raise StateError(
                f"upload {upload_id} is {row['status']}; {kind} needs one of {', '.join(allowed)}",
                upload_id=upload_id)
        db.execute(f"UPDATE uploads SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                   [*sets.values(), upload_id])
        record_event(db, upload_id, kind, message, now=now)
    return target


_RESET = dict.fromkeys(("not_before", "error_category", "error_message", "finished_at",
                        "lease_owner", "lease_expires_at", "stage", "progress_done",
                        "progress_total")) | {"attempts": 0, "degrade_level": 0}


def _needs_stored_video(db: SqlDatabase, upload_id: int) -> dict[str, Any]:
    """Refuse an upload whose video was never stored (cancelled or failed while it was
    being submitted): it could only fail again, so the file must be submitted again. The
    upload is left as it is, its original error included."""
    row = get_upload(db, upload_id)
    if not row["storage_key"]:
        raise StateError(f"upload {upload_id} has no stored video (its submission did not "
                         "finish); submit the file again", upload_id=upload_id)
    return row


def retry(db: SqlDatabase, upload_id: int, *, now: float | None = None) -> str:
    """FAILED/DONE/CANCELLED -> QUEUED with attempts and degrade level reset."""
    with transaction(db):
        _needs_stored_video(db, upload_id)
        return _transition(db, upload_id, ACTIONS["retry"], QUEUED, "retry",
                           "queued again by the operator", sets=_RESET, now=now)


def reprocess(db: SqlDatabase, upload_id: int, *, selection: str | None = None,
              now: float | None = None) -> list[str]:
    """Start over from the stored video: drop frames and labels, back to QUEUED.

    A finished upload is reset; a QUEUED one is left as it is. ``selection`` (``even``,
    ``sharpest``, ``coverage``) sets this upload's frame selection from now on, over the
    setting. Returns the storage keys of the dropped frames, for the caller to delete
    from the store.
    """
    with transaction(db):
        row = _needs_stored_video(db, upload_id)
        if selection is not None:
            db.execute("UPDATE uploads SET frame_selection = ? WHERE id = ?",
                       [selection, upload_id])
        if row["status"] == QUEUED:
            return []
        keys = frames.keys(db, upload_id)
        _transition(db, upload_id, ACTIONS["reprocess"], QUEUED, "reprocess",
                    "frames dropped; processing again from the stored video", sets=_RESET,
                    now=now)
        frames.drop(db, upload_id)
    return keys


def request_reanalysis(db: SqlDatabase, upload_id: int, *,
                       now: float | None = None) -> str:
    """Re-run only the analysis stage: labels dropped, frames kept, back to QUEUED."""
    with transaction(db):
        row = _needs_stored_video(db, upload_id)
        if row["status"] == QUEUED:  # said, not silently "done": nothing would change
            raise StateError(f"upload {upload_id} is QUEUED: it already waits for a worker, "
                             "which labels its frames when it runs; analyze re-labels a "
                             "DONE, FAILED or CANCELLED upload", upload_id=upload_id)
        _transition(db, upload_id, ACTIONS["reanalyse"], QUEUED, "reanalyse",
                    "labels dropped; analysing the recorded frames again", sets=_RESET,
                    now=now)
        frames.reset_analysis(db, upload_id)
    return QUEUED


def cancel(db: SqlDatabase, upload_id: int, *, now: float | None = None) -> str:
    """Any non-terminal -> CANCELLED; a running job sees it at its next lease renewal."""
    now = _now(db, now)
    return _transition(db, upload_id, ACTIONS["cancel"], CANCELLED, "cancelled",
                       "cancelled by the operator",
                       sets={"lease_owner": None, "lease_expires_at": None, "finished_at": now},
                       now=now)


def set_mode(db: SqlDatabase, upload_id: int, mode: str, *,
             now: float | None = None) -> str:
    """Move a waiting upload between process-now (QUEUED) and off-peak (DEFERRED)."""
    if mode not in (MODE_NOW, MODE_OFFPEAK):
        raise ValueError(f"mode must be {MODE_NOW!r} or {MODE_OFFPEAK!r}, not {mode!r}")
    target = QUEUED if mode == MODE_NOW else DEFERRED
    allowed = ACTIONS["now" if mode == MODE_NOW else "offpeak"]
    if get_upload(db, upload_id)["status"] == target:  # only the mode changes (e.g. a
        allowed = (target,)                             # dispatched off-peak upload)
    return _transition(db, upload_id, allowed, target, "mode", f"mode set to {mode}",
                       sets={"mode": mode}, now=now)


def reset_stuck(db: SqlDatabase, *, max_attempts: int,
                owner_alive: Callable[[str], bool] | None = None,
                now: float | None = None) -> list[tuple[int, str]]:
    """Return abandoned uploads to QUEUED (attempts left) or FAILED; list what changed.

    PROCESSING with an expired lease (or, when ``owner_alive`` is given, whose owner is
    dead) goes back to the queue. UPLOADING with an expired lease (the submitter died
    mid-copy) fails with category storage: the video was never stored.
    """
    now = _now(db, now)
    changed = []
    rows = [row for row in db.query(
        "SELECT id, status, lease_owner, lease_expires_at, attempts, degrade_level FROM uploads "
        "WHERE status IN ('PROCESSING', 'UPLOADING')")
        if row["lease_expires_at"] is None or row["lease_expires_at"] < now
        or (owner_alive is not None and row["lease_owner"] and not owner_alive(row["lease_owner"]))]
    for row in rows:
        decision = settle.abandoned(row, max_attempts=max_attempts)
        status = write_failure(db, row["id"], decision, owner=row["lease_owner"], now=now)
        changed.append((row["id"], status))
        logger.info("reset stuck upload %s (%s) -> %s", row["id"], row["status"], status)
    return changed


def release(db: SqlDatabase, upload_id: int, owner: str, *, reason: str,
            target: str = QUEUED, now: float | None = None) -> bool:
    """Hand a running upload back (shutdown, window end) without counting an attempt."""
    now = _now(db, now)
    with transaction(db):
        cursor = db.execute(
            "UPDATE uploads SET status = ?, attempts = GREATEST(attempts - 1, 0), "
            "lease_owner = NULL, lease_expires_at = NULL, updated_at = ?, stage = NULL "
            "WHERE id = ? AND status = 'PROCESSING' AND lease_owner = ?",
            [target, now, upload_id, owner])
        if cursor.rowcount != 1:
            return False
        record_event(db, upload_id, "released", f"{reason}; back to {target}", now=now)
    return True


def dispatch(db: SqlDatabase, upload_id: int, *, message: str,
             now: float | None = None) -> bool:
    """DEFERRED -> QUEUED while an off-peak window is open; the mode stays off-peak.

    False if the upload is no longer DEFERRED (cancelled, moved to process-now meanwhile).
    """
    now = _now(db, now)
    with transaction(db):
        cursor = db.execute("UPDATE uploads SET status = 'QUEUED', updated_at = ? "
                            "WHERE id = ? AND status = 'DEFERRED'", [now, upload_id])
        if cursor.rowcount != 1:
            return False
        record_event(db, upload_id, "dispatched", message, now=now)
    return True


def withdraw(db: SqlDatabase, upload_id: int, *, reason: str,
             now: float | None = None) -> bool:
    """QUEUED -> DEFERRED for an off-peak upload not yet claimed (window closed, paused).

    False if it was claimed or changed meanwhile; a queue message left behind finds
    nothing to claim.
    """
    now = _now(db, now)
    with transaction(db):
        cursor = db.execute("UPDATE uploads SET status = 'DEFERRED', updated_at = ? "
                            "WHERE id = ? AND status = 'QUEUED' AND mode = ?",
                            [now, upload_id, MODE_OFFPEAK])
        if cursor.rowcount != 1:
            return False
        record_event(db, upload_id, "withdrawn", f"{reason}; back to DEFERRED", now=now)
    return True


def remove(db: SqlDatabase, upload_id: int, *, kind: str, message: str,
           now: float | None = None) -> None:
    """Delete the upload's row with its frames and labels (``ON DELETE CASCADE``) and its
    activity; one event without an upload id records why. Objects are the caller's."""
    with transaction(db):
        db.execute("DELETE FROM events WHERE upload_id = ?", [upload_id])
        db.execute("DELETE FROM uploads WHERE id = ?", [upload_id])
        record_event(db, None, kind, message, now=now)
