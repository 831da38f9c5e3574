"""How a job ended, and what follows for the upload and the job child: pure policy.

The supervisor (``batch``) watches a job child and reports a :class:`JobOutcome`;
:func:`settle` turns it into a :class:`Decision` (complete, fail with which error, or
hand back), and :func:`replace_after_job` says whether the child is replaced after a
job. The worker applies both through :mod:`core.store.lifecycle`. Nothing here touches a
database or a process, so every rule has a table-driven unit test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.errors import MemoryLimitError, PeakOpsError, from_category
from core.store.lifecycle import DEFERRED, DONE, QUEUED, after_failure

COMPLETE, FAIL, RELEASE = "complete", "fail", "release"

KILLED = {"hard-limit": "hard-limit", "timeout": "timeout", "stall": "stall"}
"""Outcome kind -> the restart cause recorded when the child was killed (else crash)."""


@dataclass(frozen=True)
class JobOutcome:
    """How one job ended, as the supervisor saw it."""

    kind: str                   # "result", "hard-limit", "timeout", "stall", "crash", "stopped"
    ok: bool = False
    category: str | None = None
    message: str = ""
    transient: bool = False
    peak_kib: int = 0
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class Decision:
    """What to record for the upload.

    ``action`` is COMPLETE, FAIL (with ``error``, ``degrade`` for a memory kill) or
    RELEASE (hand back to ``status`` without counting an attempt, for ``reason``).
    ``status`` is the upload's status afterwards as the policy sees it. ``restart`` names
    the cause to record when the child was killed or died.
    """

    action: str
    status: str
    error: PeakOpsError | None = None
    degrade: bool = False
    reason: str = ""
    note: str = ""
    restart: str | None = None


def settle(outcome: JobOutcome, upload: dict[str, Any], settings: Settings, *,
           held: str | None = None, degrade_levels: int = 3) -> Decision:
    """Decide what ``outcome`` means for ``upload`` (its row: attempts, degrade_level).

    ``held`` is why the worker stopped the job itself (window end, pause); a stop
    without it is a shutdown. ``degrade_levels`` is how many levels the extractor has.
    """
    upload_id = upload["id"]
    attempts, level = upload["attempts"] or 0, upload["degrade_level"] or 0
    if outcome.kind == "stopped":
        if held:
            return Decision(RELEASE, DEFERRED, reason=held)
        return Decision(RELEASE, QUEUED, reason="worker shutting down")
    if outcome.kind == "result" and outcome.ok:
        detail = outcome.detail or {}
        return Decision(COMPLETE, DONE, note=f" ({detail.get('extracted', 0)} extracted in "
                                             f"this run, peak tree memory {outcome.peak_kib} KiB)")
    restart = None if outcome.kind == "result" else KILLED.get(outcome.kind, "crash")
    if outcome.kind == "hard-limit":
        message = outcome.message + f" at degrade level {level}"
        if level + 1 >= degrade_levels:
            message = (f"needs more memory than the hard limit of "
                       f"{settings.hard_memory_limit_kib} KiB even at the lowest degrade level "
                       f"(peak {outcome.peak_kib} KiB)")
        error: PeakOpsError = MemoryLimitError(message, upload_id=upload_id)
        policy = after_failure(attempts, level, error, max_attempts=settings.max_attempts,
                               degrade=True, degrade_levels=degrade_levels)
        return Decision(FAIL, policy.status, error=error, degrade=True, restart=restart)
    # A reported error keeps its own transient flag; a killed or dead child may succeed
    # on another try.
    transient = outcome.transient if outcome.kind == "result" else True
    costs_attempt = (outcome.detail or {}).get("costs_attempt", True) \
        if outcome.kind == "result" else True  # False: a database lock, not the video
    error = from_category(outcome.category or "internal", outcome.message,
                          transient=transient, upload_id=upload_id, costs_attempt=costs_attempt)
    policy = after_failure(attempts, level, error, max_attempts=settings.max_attempts,
                           retry_backoff=settings.retry_backoff)
    return Decision(FAIL, policy.status, error=error, restart=restart)


def replace_after_job(jobs_done: int, rss_after_kib: int,
                      settings: Settings) -> tuple[str, str] | None:
    """(cause, message) when a child that finished a job must be replaced, else None."""
    if jobs_done >= settings.max_tasks_per_child:
        return "tasks", (f"{jobs_done} jobs done "
                         f"(max_tasks_per_child={settings.max_tasks_per_child})")
    if rss_after_kib > settings.max_memory_per_child:
        return "memory-after-job", (
            f"child tree at {rss_after_kib} KiB after the job, over "
            f"max_memory_per_child={settings.max_memory_per_child}")
    return None
