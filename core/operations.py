"""Operator actions on uploads, written once: submit, retry, cancel, reprocess, analyze,
set-mode, delete and reset-stuck.

The command line, the console and the script API (:mod:`core.api`) all call these. Each
action over several uploads applies to every one on its own: a refusal (the upload's
status does not allow it, it is gone) is recorded in the :class:`Outcome` and the others
go on. Uploads an action made QUEUED go to the App's one queue hook (``app.queued``),
with the kind of work the worker has to do for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core import maintenance
from core.app import App
from core.errors import InputError, PeakOpsError
from core.intake import SubmitResult, submit_file
from core.liveness import owner_alive
from core.media.selection import SELECTIONS
from core.store import lifecycle
from core.store.db import when_unlocked

logger = logging.getLogger(__name__)

ProgressHook = Callable[[int], None]


@dataclass
class Outcome:
    """What one action did to each upload it was given."""

    action: str
    statuses: dict[int, str] = field(default_factory=dict)
    """Upload id -> its status after the action (deleted uploads: ``DELETED``)."""
    refused: list[tuple[int, PeakOpsError]] = field(default_factory=list)

    @property
    def changed(self) -> list[int]:
        return list(self.statuses)

    def summary(self) -> str:
        text = f"{self.action}: {len(self.statuses)} upload(s)"
        if self.refused:
            text += f", {len(self.refused)} refused ({self.refused[0][1]})"
        return text


DELETED = "DELETED"


def _each(app: App, action: str, ids: Iterable[int], change: Callable[[int], str], *,
          kind: str | None = None) -> Outcome:
    outcome = Outcome(action)
    for upload_id in ids:
        try:
            outcome.statuses[upload_id] = change(upload_id)
        except PeakOpsError as exc:
            outcome.refused.append((upload_id, exc))
    if kind is not None:
        app.queued((i for i, s in outcome.statuses.items() if s == lifecycle.QUEUED), kind)
    return outcome


def submit(app: App, path: Path, *, off_peak: bool = False,
           on_progress: ProgressHook | None = None) -> SubmitResult:
    """Validate, store and record one video; a new QUEUED upload goes to the queue.

    A duplicate is already on its way (or finished): no second queue message. An unusable
    file raises :class:`~core.errors.InputError` (or the storage's error).
    """
    mode = lifecycle.MODE_OFFPEAK if off_peak else lifecycle.MODE_NOW
    result = submit_file(app, Path(path), mode=mode, on_progress=on_progress)
    if result.status == lifecycle.QUEUED and not result.duplicate:
        app.queued([result.upload_id])
    return result


def retry(app: App, ids: Iterable[int]) -> Outcome:
    """FAILED, DONE or CANCELLED back to QUEUED, attempts and degrade level reset."""
    return _each(app, "retry", ids, lambda i: lifecycle.retry(app.db, i), kind="process")


def reprocess(app: App, ids: Iterable[int], selection: str | None = None) -> Outcome:
    """Start over from the stored video: frames and labels dropped, their images leave
    the store, back to QUEUED. ``selection`` (``even``, ``sharpest``, ``coverage``) is
    the frame selection for these uploads from now on (``None``: as before)."""
    if selection is not None and selection not in SELECTIONS:
        raise InputError(f"frame selection must be one of {', '.join(SELECTIONS)}, "
                         f"got {selection!r}")

    def one(upload_id: int) -> str:
        for key in lifecycle.reprocess(app.db, upload_id, selection=selection):
            app.store.delete(key)
        return lifecycle.QUEUED
    return _each(app, "reprocess", ids, one, kind="reprocess")


def analyze(app: App, ids: Iterable[int]) -> Outcome:
    """Analyse the recorded frames again (labels dropped, frames kept)."""
    return _each(app, "analyze", ids, lambda i: lifecycle.request_reanalysis(app.db, i),
                 kind="analyze")


def cancel(app: App, ids: Iterable[int]) -> Outcome:
    """Cancel uploads that have not finished; a long database lock is waited out."""
    def one(upload_id: int) -> str:
        return when_unlocked(lambda: lifecycle.cancel(app.db, upload_id),
                             what=f"the cancel of upload {upload_id}")
    return _each(app, "cancel", ids, one)


def set_mode(app: App, ids: Iterable[int], mode: str) -> Outcome:
    """Move waiting uploads between process-now (QUEUED) and off-peak (DEFERRED)."""
    return _each(app, f"mode {mode}", ids, lambda i: lifecycle.set_mode(app.db, i, mode),
                 kind="process")


def delete(app: App, ids: Iterable[int]) -> Outcome:
    """Delete uploads for good: stored objects first, then frames, labels and the row.

    Refused while an upload is being stored or processed (cancel it first)."""
    def one(upload_id: int) -> str:
        maintenance.delete_upload(app, upload_id)
        return DELETED
    return _each(app, "delete", ids, one)


def reset_stuck(app: App, *, now: float | None = None,
                alive: Callable[[str], bool] = owner_alive) -> Outcome:
    """Return abandoned uploads to QUEUED (attempts left) or FAILED.

    Abandoned: the lease expired, or its owner is a process on this host that is gone
    (the check the worker's reaper makes). Those made QUEUED go to the queue.
    """
    changed = lifecycle.reset_stuck(app.db, max_attempts=app.settings.max_attempts,
                                    owner_alive=alive, now=now)
    outcome = Outcome("reset stuck", statuses=dict(changed))
    app.queued((i for i, s in changed if s == lifecycle.QUEUED), "process")
    return outcome
