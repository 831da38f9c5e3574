"""How a job ended, and what follows for the upload and the job child: pure policy.

The supervisor watches a job child and reports a :class:`JobOutcome`; :func:`settle`
turns it into a :class:`Decision`: complete, fail (status, degrade level, delay before a
retry, whether the attempt is given back) or hand back. It is the only place that
decides; :mod:`core.store.lifecycle` writes what it decided. :func:`replace_after_job`
says whether the child is replaced after a job. Nothing here touches a database or a
process, so every rule has a table-driven unit test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.errors import InternalError, MemoryLimitError, PeakOpsError, StorageError, from_category
from core.store.status import DEFERRED, DONE, FAILED, QUEUED, UPLOADING

COMPLETE, FAIL, RELEASE = "complete", "fail", "release"
BACKOFF_CAP_S = 600.0

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

    ``action`` is COMPLETE, FAIL or RELEASE (hand back to ``status`` without counting an
    attempt, for ``reason``). A FAIL carries the ``error``, the upload's ``status``
    afterwards (QUEUED or FAILED), its degrade ``level`` from now on, the ``delay``
    before a retry may be claimed, ``degrade`` for a memory kill and ``refund`` when the
    attempt is given back (never the video's fault). ``restart`` names the cause to
    record when the child was killed or died.
    """

    action: str
    status: str
    error: PeakOpsError | None = None
    level: int = 0
    delay: float = 0.0
    degrade: bool = False
    refund: bool = False
    reason: str = ""
    note: str = ""
    restart: str | None = None


def backoff_seconds(attempts: int, base: float) -> float:
    """Capped exponential backoff for transient retries: base, 2*base, 4*base ..."""
    return min(BACKOFF_CAP_S, base * (2 ** max(0, attempts - 1)))


def decide_failure(error: PeakOpsError, upload: dict[str, Any], *, max_attempts: int,
                   retry_backoff: float = 0.0, degrade: bool = False, degrade_levels: int = 1,
                   restart: str | None = None) -> Decision:
    """The retry policy for a failed attempt of ``upload`` (its row: attempts, level).

    A memory kill (``degrade``) retries at the next degrade level until the last; an
    error that is not the video's fault (``costs_attempt`` False: a database lock) is
    retried and its attempt given back; a transient error retries with backoff while
    attempts remain; anything else fails. Reads the error's category and flags, never
    its text.
    """
    attempts, level = upload.get("attempts") or 0, upload.get("degrade_level") or 0
    if degrade:
        if level + 1 < degrade_levels:
            return Decision(FAIL, QUEUED, error, level + 1, degrade=True, restart=restart)
        return Decision(FAIL, FAILED, error, level, degrade=True, restart=restart)
    if not error.costs_attempt:
        return Decision(FAIL, QUEUED, error, level, backoff_seconds(1, retry_backoff),
                        refund=True, restart=restart)
    if error.transient and attempts < max_attempts:
        return Decision(FAIL, QUEUED, error, level, backoff_seconds(attempts, retry_backoff),
                        restart=restart)
    return Decision(FAIL, FAILED, error, level, restart=restart)


def settle(outcome: JobOutcome, upload: dict[str, Any], settings: Settings, *,
           held: str | None = None, degrade_levels: int = 3) -> Decision:
    """Decide what ``outcome`` means for ``upload`` (its row: attempts, degrade_level).

    ``held`` is why the worker stopped the job itself (window end, pause); a stop
    without it is a shutdown. ``degrade_levels`` is how many levels the extractor has.
    """
    upload_id = upload["id"]
    level = upload.get("degrade_level") or 0
    if outcome.kind == "stopped":
        if held:
            return Decision(RELEASE, DEFERRED, level=level, reason=held)
        return Decision(RELEASE, QUEUED, level=level, reason="worker shutting down")
    if outcome.kind == "result" and outcome.ok:
        detail = outcome.detail or {}
        return Decision(COMPLETE, DONE, level=level,
                        note=f" ({detail.get('extracted', 0)} extracted in this run, "
                             f"peak tree memory {outcome.peak_kib} KiB)")
    restart = None if outcome.kind == "result" else KILLED.get(outcome.kind, "crash")
    policy = {"max_attempts": settings.max_attempts, "retry_backoff": settings.retry_backoff}
    if outcome.kind == "hard-limit":
        message = outcome.message + f" at degrade level {level}"
        if level + 1 >= degrade_levels:
            message = (f"needs more memory than the hard limit of "
                       f"{settings.hard_memory_limit_kib} KiB even at the lowest degrade level "
                       f"(peak {outcome.peak_kib} KiB)")
        return decide_failure(MemoryLimitError(message, upload_id=upload_id), upload, **policy,
                              degrade=True, degrade_levels=degrade_levels, restart=restart)
    # A reported error keeps its own transient flag; a killed or dead child may succeed
    # on another try.
    transient = outcome.transient if outcome.kind == "result" else True
    costs_attempt = (outcome.detail or {}).get("costs_attempt", True) \
        if outcome.kind == "result" else True  # False: a database lock, not the video
    error = from_category(outcome.category or "internal", outcome.message,
                          transient=transient, upload_id=upload_id, costs_attempt=costs_attempt)
    return decide_failure(error, upload, **policy, restart=restart)


def abandoned(upload: dict[str, Any], *, max_attempts: int) -> Decision:
    """What the reaper does with an upload whose lease expired or whose owner died.

    UPLOADING (the submitter died mid-copy) fails: the video was never stored.
    PROCESSING goes back to the queue while attempts remain.
    """
    if upload["status"] == UPLOADING:
        return decide_failure(StorageError(
            "the upload was interrupted before the video was stored; submit it again",
            upload_id=upload["id"]), upload, max_attempts=0)
    return decide_failure(InternalError(
        f"worker {upload['lease_owner']} stopped renewing its lease (crashed or killed)",
        upload_id=upload["id"], transient=True), upload, max_attempts=max_attempts)


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
