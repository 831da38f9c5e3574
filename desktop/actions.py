"""What the operator can do to uploads: which actions fit which statuses, and the calls.

Each operation runs on the write thread with that thread's App and returns a short
summary; uploads that changed state meanwhile are reported, not fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core import jobs, maintenance
from core.app import App
from core.errors import PeakOpsError

logger = logging.getLogger(__name__)

ALLOWED: dict[str, tuple[str, ...]] = {
    "retry": (jobs.FAILED, jobs.CANCELLED),
    "reprocess": (jobs.DONE, jobs.FAILED, jobs.CANCELLED),
    "reanalyse": (jobs.DONE, jobs.FAILED),
    "cancel": jobs.ACTIVE,
    "offpeak": (jobs.QUEUED,),
    "now": (jobs.DEFERRED,),
    "delete": (jobs.QUEUED, jobs.DEFERRED) + jobs.TERMINAL,
}
"""Action -> statuses it applies to (the lifecycle in core.jobs decides the rest)."""


def applicable(action: str, statuses: Iterable[str]) -> bool:
    """True when the action fits at least one of the selected uploads."""
    allowed = ALLOWED.get(action)
    return allowed is not None and any(s in allowed for s in statuses)


@dataclass
class Outcome:
    action: str
    changed: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.action}: {len(self.changed)} upload(s)"
        if self.refused:
            text += f", {len(self.refused)} refused ({self.refused[0][1]})"
        return text


def _enqueue(app: App, ids: list[int], kind: str = "process") -> None:
    if not ids:
        return
    from batch.queue import enqueue  # the worker's queue: ids only
    enqueue(app.settings, ids, kind)


def _each(app: App, action: str, ids: Iterable[int],
          fn: Callable[[App, int], object]) -> Outcome:
    outcome = Outcome(action)
    for upload_id in ids:
        try:
            fn(app, upload_id)
            outcome.changed.append(upload_id)
        except PeakOpsError as exc:
            outcome.refused.append((upload_id, str(exc)))
    return outcome


def retry(app: App, ids: list[int]) -> Outcome:
    outcome = _each(app, "retry", ids, lambda a, i: jobs.retry(a.db, i))
    _enqueue(app, outcome.changed)
    return outcome


def retry_all_failed(app: App, category: str | None = None) -> Outcome:
    sql = "SELECT id FROM uploads WHERE status = 'FAILED'"
    params: list[str] = []
    if category:
        sql += " AND error_category = ?"
        params.append(category)
    ids = [r[0] for r in app.db.execute(sql + " ORDER BY id", params)]
    return retry(app, ids)


def reprocess(app: App, ids: list[int]) -> Outcome:
    def one(a: App, upload_id: int) -> None:
        for key in jobs.reprocess(a.db, upload_id):
            a.store.delete(key)
    outcome = _each(app, "reprocess", ids, one)
    _enqueue(app, outcome.changed)
    return outcome


def reanalyse(app: App, ids: list[int]) -> Outcome:
    outcome = _each(app, "re-analyse", ids, lambda a, i: jobs.request_reanalysis(a.db, i))
    _enqueue(app, outcome.changed)
    return outcome


def cancel(app: App, ids: list[int]) -> Outcome:
    return _each(app, "cancel", ids, lambda a, i: jobs.cancel(a.db, i))


def set_mode(app: App, ids: list[int], mode: str) -> Outcome:
    outcome = _each(app, f"mode {mode}", ids, lambda a, i: jobs.set_mode(a.db, i, mode))
    if mode == jobs.MODE_NOW:
        _enqueue(app, outcome.changed)
    return outcome


def reset_stuck(app: App) -> Outcome:
    changed = jobs.reset_stuck(app.db, max_attempts=app.settings.max_attempts)
    _enqueue(app, [i for i, status in changed if status == jobs.QUEUED])
    return Outcome("reset stuck", [i for i, _ in changed])


def delete(app: App, ids: list[int]) -> Outcome:
    return _each(app, "delete", ids, maintenance.delete_upload)


def details_text(app: App, ids: list[int]) -> str:
    """Plain-text facts for the clipboard (one block per upload)."""
    blocks = []
    for upload_id in ids:
        d = jobs.detail(app.db, upload_id)
        u = d.upload
        lines = [f"upload {u['id']}: {u['original_name']}",
                 f"status {u['status']} (mode {u['mode']}, attempts {u['attempts']})"]
        if u["error_category"]:
            lines.append(f"error [{u['error_category']}] {u['error_message']}")
        if u["width"]:
            lines.append(f"video {u['width']}x{u['height']} {u['codec']}, "
                         f"{u['duration'] or 0:.1f} s, {u['fps'] or 0:g} fps")
        lines.append(f"frames {len(d.frames)}; sha256 {u['sha256']}")
        lines += [f"  {e['kind']}: {e['message']}" for e in d.events[-10:]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
