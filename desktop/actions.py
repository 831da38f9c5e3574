"""What the operator can do to uploads: which actions fit which statuses, and the calls.

Which action fits which status is :data:`core.store.lifecycle.ACTIONS`, the table the CLI's
commands obey too. The actions are :mod:`core.operations`, as for the command line; the
console runs them on the write thread with that thread's App, and shows each
:class:`~core.operations.Outcome`'s summary. Uploads made QUEUED go to ``app.queued``
(the queue hook the console was started with).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from core import operations
from core.app import App
from core.naming import fmt_timing
from core.store import lifecycle, queries

logger = logging.getLogger(__name__)

ALLOWED = lifecycle.ACTIONS
"""Action -> statuses it applies to: the lifecycle's one table."""


def applicable(action: str, statuses: Iterable[str]) -> bool:
    """True when the action fits at least one of the selected uploads."""
    allowed = ALLOWED.get(action)
    return allowed is not None and any(s in allowed for s in statuses)


def retry_all_failed(app: App, category: str | None = None) -> operations.Outcome:
    return operations.retry(app, queries.ids_with_status(app.db, lifecycle.FAILED,
                                                         category=category))


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
                         f"{fmt_timing(u['duration'], u['fps'], u['frame_count'])}")
        lines.append(f"frames {len(d.frames)}; sha256 {u['sha256']}")
        lines += [f"  {e['kind']}: {e['message']}" for e in d.events[-10:]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
