"""What the operator can do to uploads: which actions fit which statuses, and the calls.

Which action fits which status is :data:`core.store.lifecycle.ACTIONS`, the table the CLI's
commands obey too. Each operation runs on the write thread with that thread's App and
returns a short summary; uploads that changed state meanwhile are reported, not fatal.
Uploads made QUEUED go to ``app.queued`` (the queue hook the console was started with).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core import maintenance
from core.app import App
from core.errors import PeakOpsError
from core.store import lifecycle, queries

logger = logging.getLogger(__name__)

ALLOWED = lifecycle.ACTIONS
"""Action -> statuses it applies to: the lifecycle's one table."""


def applicable(action: str, statuses: Iterable[str]) -> bool:
    """True when the action fits at least one of the selected uploads."""
    allowed = ALLOWED.get(action)
    return allowed is not None and any(s in allowed for s in statuses)


@dataclass
class ActionResult:
    action: str
    changed: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.action}: {len(self.changed)} upload(s)"
        if self.refused:
            text += f", {len(self.refused)} refused ({self.refused[0][1]})"
        return text


def _each(app: App, action: str, ids: Iterable[int],
          fn: Callable[[App, int], object]) -> ActionResult:
    outcome = ActionResult(action)
    for upload_id in ids:
        try:
            fn(app, upload_id)
            outcome.changed.append(upload_id)
        except PeakOpsError as exc:
            outcome.refused.append((upload_id, str(exc)))
    return outcome


def retry(app: App, ids: list[int]) -> ActionResult:
    outcome = _each(app, "retry", ids, lambda a, i: lifecycle.retry(a.db, i))
    app.queued(outcome.changed)
    return outcome


def retry_all_failed(app: App, category: str | None = None) -> ActionResult:
    return retry(app, queries.ids_with_status(app.db, lifecycle.FAILED, category=category))


def reprocess(app: App, ids: list[int]) -> ActionResult:
    def one(a: App, upload_id: int) -> None:
        for key in lifecycle.reprocess(a.db, upload_id):
            a.store.delete(key)
    outcome = _each(app, "reprocess", ids, one)
    app.queued(outcome.changed, "reprocess")
    return outcome


def reanalyse(app: App, ids: list[int]) -> ActionResult:
    outcome = _each(app, "re-analyse", ids, lambda a, i: lifecycle.request_reanalysis(a.db, i))
    app.queued(outcome.changed, "analyze")
    return outcome


def cancel(app: App, ids: list[int]) -> ActionResult:
    return _each(app, "cancel", ids, lambda a, i: lifecycle.cancel(a.db, i))


def set_mode(app: App, ids: list[int], mode: str) -> ActionResult:
    outcome = _each(app, f"mode {mode}", ids, lambda a, i: lifecycle.set_mode(a.db, i, mode))
    if mode == lifecycle.MODE_NOW:
        app.queued(outcome.changed)
    return outcome


def reset_stuck(app: App) -> ActionResult:
    changed = lifecycle.reset_stuck(app.db, max_attempts=app.settings.max_attempts)
    app.queued(i for i, status in changed if status == lifecycle.QUEUED)
    return ActionResult("reset stuck", [i for i, _ in changed])


def delete(app: App, ids: list[int]) -> ActionResult:
    return _each(app, "delete", ids, maintenance.delete_upload)


def details_text(app: App, ids: list[int]) -> str:
    """Plain-text facts for the clipboard (one block per upload)."""
    blocks = []
    for upload_id in ids:
        d = queries.detail(app.db, upload_id)
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
