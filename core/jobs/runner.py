"""The one job path: claim -> supervised job child -> settle -> apply.

:class:`JobRunner` runs uploads one at a time for one lease owner. ``run_one`` claims a
QUEUED upload, sends it to the job child (:mod:`core.jobs.supervisor` watches the whole
process tree against the hard memory limit, the timeouts and the stop request), lets
:func:`core.jobs.settle.settle` decide what the outcome means, and writes that decision
through :mod:`core.store.lifecycle`. The Huey worker, ``peakops process``,
``core.process`` and ``PeakOps.process`` all run uploads here, so libav never runs in a
caller's process and every job gets the memory limits and the degrade ladder.

What the runner knows of its caller comes in as values and callbacks: the hold (the
off-peak window's word on an upload), ``on_progress``, and ``stop()``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from core import maintenance, media
from core.app import App
from core.errors import DatabaseUnreachableError, InternalError
from core.jobs import learned
from core.jobs.cgroup import SAMPLING, MemoryCage, make_cage
from core.jobs.lease import LeaseKeeper
from core.jobs.settle import (
    COMPLETE,
    RELEASE,
    Decision,
    JobOutcome,
    decide_failure,
    replace_after_job,
    settle,
)
from core.jobs.supervisor import JobChild, Limits, tree_rss_kib, watch_job
from core.store import frames, heartbeat, lifecycle, queries
from core.store.db import when_unlocked

logger = logging.getLogger(__name__)

HOLD_EVERY_S = 1.0
OUTAGE_FIRST_BACKOFF_S = 0.5
OUTAGE_MAX_BACKOFF_S = 30.0
T = TypeVar("T")
LOG_LEVELS = ("debug", "info", "warning", "error")
SKIPPED = "skipped"
"""``run_one``'s answer when nothing ran: nothing to claim (a duplicate message, not
QUEUED, not yet due after a backoff) or the hold sent the upload back to DEFERRED."""

Hold = Callable[[Any, dict[str, Any], bool], str | None]
"""``hold(db, upload_row, starting)``: a reason why the upload must not start
(``starting``) or go on running (window end, pause), or None. The batch service passes
one; a held upload goes back to DEFERRED."""

ProgressFn = Callable[[str, int, int], None]
"""Called with (stage, done, total) as the job child reports progress."""


def caller_log_level() -> str | None:
    """The log level this process's root logger shows (for a job child that should log as
    its caller does), or None when it is not one a child can take."""
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    return level if level in LOG_LEVELS else None


class JobRunner:
    """Runs uploads in a supervised job child for one lease owner (``owner``).

    ``child_env`` is the job child's environment (default: this process's). The runner
    keeps one child across jobs and replaces it after ``max_tasks_per_child`` jobs, above
    ``max_memory_per_child`` after a job, or when it was killed. :meth:`close` stops it.
    ``child_log_level`` is the child's log level when it is not the settings' (a
    command or a script logs quietly, unlike a service).
    """

    def __init__(self, app: App, *, owner: str, child_env: dict[str, str] | None = None,
                 hold: Hold | None = None, on_progress: ProgressFn | None = None,
                 child_log_level: str | None = None) -> None:
        self.app = app
        self.settings = app.settings
        self.child_settings = self.settings if child_log_level is None else \
            dataclasses.replace(self.settings, log_level=child_log_level)
        self.owner = owner
        self.child_env = child_env if child_env is not None else dict(os.environ)
        self.hold = hold
        self.on_progress = on_progress
        self.limits = Limits(hard_kib=self.settings.hard_memory_limit_kib,
                             job_timeout_s=self.settings.job_timeout,
                             stall_timeout_s=self.settings.stall_timeout)
        self.child: JobChild | None = None
        self.child_starts = 0
        self.jobs_done = 0
        self.current: dict[str, Any] = {}
        """The running job as a heartbeat shows it: upload_id, stage, done, total."""
        self.rss_kib = self.peak_kib = 0
        self._stop = threading.Event()
        self._cage: MemoryCage | None = None
        self._cage_tried = False
        self._cage_kills = 0
        self.enforcement: str | None = None
        """How the hard limit is enforced (the cgroup, or sampling), once known."""
        self._held: str | None = None
        self._last_hold_check = 0.0

    # -- control -----------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop the running job (its upload is handed back) and refuse new ones."""
        self._stop.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, ending at once on :meth:`stop`; True when stopping."""
        return self._stop.wait(seconds)

    def close(self) -> None:
        """Stop the job child and remove the memory cage; the runner is done."""
        if self.child is not None:
            self.child.stop()
            self.child = None
        if self._cage is not None:
            self._cage.remove()
            self._cage = None

    # -- one upload --------------------------------------------------------------------

    def run_one(self, upload_id: int) -> str:
        """Claim and run ``upload_id`` in the job child; return its status afterwards, or
        :data:`SKIPPED` when there was nothing to claim."""
        db = self.app.db
        if self.stopping:
            return SKIPPED
        if self.hold is not None and self._held_at_start(upload_id):
            return SKIPPED
        row = lifecycle.claim(db, upload_id, self.owner, lease_seconds=self.settings.lease_seconds)
        if row is None:
            logger.debug("upload %s: nothing to claim for %s (duplicate message, not QUEUED "
                         "or not yet due)", upload_id, self.owner)
            return SKIPPED
        row = when_unlocked(lambda: learned.begin(db, row), what=f"upload {upload_id}'s start")
        self._held, self._last_hold_check = None, 0.0
        self.current = {"upload_id": upload_id, "stage": "starting"}
        self.peak_kib = 0
        started = time.monotonic()
        try:
            try:
                child = self._ensure_child()
            except (OSError, RuntimeError) as exc:
                if self._cage is not None and self._cage.oom_kills() > self._cage_kills:
                    self.child = None  # the kernel killed it at the limit while it started
                    return self._apply(upload_id, row, JobOutcome(
                        "crash", message=f"could not start a job child: {exc}",
                        transient=True))
                error = InternalError(f"could not start a job child: {exc}", transient=True,
                                      upload_id=upload_id)
                return self._write_failure(upload_id, self._failure(error, row), 0)
            try:
                with LeaseKeeper(self.settings, upload_id, self.owner):
                    outcome = watch_job(child, {"upload_id": upload_id, "owner": self.owner},
                                        self.limits, on_sample=self._on_sample,
                                        should_stop=lambda: self.stopping
                                        or self._held_now(upload_id))
            except BaseException:  # KeyboardInterrupt in a script: nothing left running
                self.close()
                when_unlocked(lambda: lifecycle.release(db, upload_id, self.owner,
                                                        reason="processing interrupted"),
                              what=f"upload {upload_id}'s outcome")
                raise
            status = self._apply(upload_id, row, outcome)
        finally:
            self.current = {}
        logger.info("upload %s: job ended %s (%s), %s frames, %.1f s, peak %.0f MB", upload_id,
                    status, outcome.kind, frames.count(db, upload_id), time.monotonic() - started,
                    outcome.peak_kib / 1024)
        return status

    def run_to_end(self, upload_id: int, *,
                   sleep: Callable[[float], object] | None = None) -> str:
        """Run ``upload_id`` until it is DONE or FAILED (or handed back by :meth:`stop`).

        Memory kills move down the degrade ladder and transient failures are retried after
        their backoff, as in the worker. ``sleep(seconds)`` waits a backoff out (default:
        until then or until :meth:`stop`). Returns the status.
        """
        sleep = sleep or self._stop.wait
        while True:
            status = self.run_one(upload_id)
            row = queries.get_upload(self.app.db, upload_id)
            if self.stopping or row["status"] != lifecycle.QUEUED:
                return row["status"]
            wait = (row["not_before"] or 0) - self.app.db.now()  # the clock it was set by
            if wait > 0:
                logger.info("upload %s: retrying in %.0f s", upload_id, wait)
                sleep(wait)
            elif status == SKIPPED:  # QUEUED and due, yet not claimed: someone else has it
                return row["status"]

    # -- the child ---------------------------------------------------------------------

    def prepare_cage(self) -> None:
        """Once: the kernel enforces the hard limit where it can (status shows which)."""
        if not self._cage_tried:
            self._cage_tried = True
            self._cage = make_cage(self.limits.hard_kib) if self.settings.memory_cgroup \
                else None
            self.enforcement = self._cage.describe() if self._cage else SAMPLING
            self.limits = dataclasses.replace(self.limits, kernel=self._cage is not None)
            logger.info("%s: hard memory limit %s KiB: %s", self.owner, self.limits.hard_kib,
                        self.enforcement)

    def _ensure_child(self) -> JobChild:
        if self.child is None or not self.child.alive():
            self.prepare_cage()
            self.child = JobChild(self.child_env, self.child_settings, self._cage)
            self.child_starts += 1
            logger.info("%s: job child %s started", self.owner, self.child.pid)
        return self.child

    def _replace_child(self, cause: str, message: str, upload_id: int,
                       rss_kib: int | None = None) -> None:
        heartbeat.record_restart(self.app.db, self.owner, cause, message=message,
                                 upload_id=upload_id, rss_kib=rss_kib)
        logger.info("%s: replacing job child (%s): %s", self.owner, cause, message)
        if self.child is not None:
            self.child.stop()
        self.child = None

    def _on_sample(self, rss_kib: int, progress: dict[str, Any] | None) -> None:
        self.rss_kib = rss_kib
        self.peak_kib = max(self.peak_kib, rss_kib)
        if progress:
            self.current = {**self.current, "stage": progress["stage"],
                            "done": progress["done"], "total": progress["total"]}
            if self.on_progress is not None:
                self.on_progress(progress["stage"], progress["done"], progress["total"])

    # -- the hold ----------------------------------------------------------------------

    def _held_at_start(self, upload_id: int) -> bool:
        """Send a QUEUED upload the hold refuses back to DEFERRED instead of claiming it."""
        assert self.hold is not None
        row = queries.get_upload(self.app.db, upload_id)
        if row["status"] != lifecycle.QUEUED:
            return False
        reason = self.hold(self.app.db, row, True)
        if reason is None:
            return False
        if lifecycle.withdraw(self.app.db, upload_id, reason=reason):
            logger.info("upload %s: not started: %s", upload_id, reason)
        return True

    def _held_now(self, upload_id: int) -> bool:
        """Ask the hold about the running upload, about once a second."""
        if self.hold is None:
            return False
        now = time.monotonic()
        if now - self._last_hold_check >= HOLD_EVERY_S:
            self._last_hold_check = now
            self._held = self.hold(self.app.db, queries.get_upload(self.app.db, upload_id),
                                   False)
        return self._held is not None

    # -- settle and apply --------------------------------------------------------------

    def _apply(self, upload_id: int, row: dict[str, Any], outcome: JobOutcome) -> str:
        """Let settle decide what ``outcome`` means, write it, and keep or replace the child."""
        db = self.app.db
        outcome = self._kernel_kill(outcome)
        peak = outcome.peak_kib
        self._outcome_write(lambda: learned.note(db, row, kind=outcome.kind, ok=outcome.ok,
                                                 peak_kib=peak), upload_id)
        decision = settle(outcome, row, self.settings,
                          held=None if self.stopping else self._held,
                          degrade_levels=media.DEGRADE_LEVELS)
        if outcome.kind != "result":
            self.child = None  # watch_job killed it, or it died
        if decision.action == RELEASE:
            if decision.status == lifecycle.DEFERRED:
                logger.info("upload %s: stopped and handed back: %s", upload_id, decision.reason)
            self._outcome_write(lambda: lifecycle.release(db, upload_id, self.owner,
                                                          reason=decision.reason,
                                                          target=decision.status), upload_id)
            return decision.status
        if outcome.kind != "result":
            maintenance.sweep_temp(self.app)  # its scratch copy of the video, at once
            self._outcome_write(lambda: heartbeat.record_restart(
                db, self.owner, decision.restart or "crash", message=outcome.message,
                upload_id=upload_id, rss_kib=peak), upload_id)
            return self._write_failure(upload_id, decision, peak)
        assert self.child is not None
        self.jobs_done += 1
        self.child.jobs_done += 1
        if decision.action == COMPLETE:
            self._outcome_write(lambda: lifecycle.complete(db, upload_id, self.owner,
                                                           peak_rss_kib=peak,
                                                           note=decision.note), upload_id)
            status = lifecycle.DONE
        else:
            status = self._write_failure(upload_id, decision, peak)
        after = self.rss_kib = tree_rss_kib(self.child.pid)
        replace = replace_after_job(self.child.jobs_done, after, self.settings)
        if replace is not None:
            self._replace_child(*replace, upload_id, after)
        return status

    def _kernel_kill(self, outcome: JobOutcome) -> JobOutcome:
        """A child that died while the cgroup counted an OOM kill hit the hard limit."""
        cage = self._cage
        if outcome.kind != "crash" or cage is None or cage.oom_kills() <= self._cage_kills:
            return outcome
        self._cage_kills = cage.oom_kills()
        top = max(outcome.peak_kib, cage.peak_kib() or 0, self.limits.hard_kib)
        return dataclasses.replace(
            outcome, kind="hard-limit", category="memory", peak_kib=top,
            message=f"the kernel stopped the process tree at the hard limit of "
                    f"{self.limits.hard_kib} KiB (cgroup memory.max; peak {top} KiB)")

    def _failure(self, error: InternalError, row: dict[str, Any]) -> Decision:
        return decide_failure(error, row, max_attempts=self.settings.max_attempts,
                              retry_backoff=self.settings.retry_backoff)

    def _write_failure(self, upload_id: int, decision: Decision, peak: int) -> str:
        return self._outcome_write(lambda: lifecycle.write_failure(
            self.app.db, upload_id, decision, owner=self.owner, peak_rss_kib=peak), upload_id)

    def _outcome_write(self, write: Callable[[], T], upload_id: int) -> T:
        """Write part of a job's outcome, waiting out a lock and an outage of the state
        database (a restart, a failover): the outcome is written once it is back, so an
        outage neither loses it nor costs the upload an attempt (a job that met the
        outage itself reports an error that costs none). One line when the wait starts,
        one when it ends; only a stop gives up (the reaper then frees the lease)."""
        since, delay = None, OUTAGE_FIRST_BACKOFF_S
        while True:
            try:
                result = when_unlocked(write, what=f"upload {upload_id}'s outcome")
            except DatabaseUnreachableError as exc:
                if self.stopping:
                    raise
                if since is None:
                    since = time.monotonic()
                    logger.warning("upload %s: %s; its outcome waits for the database",
                                   upload_id, exc)
                else:
                    delay = min(delay * 2, OUTAGE_MAX_BACKOFF_S)
                self.wait(delay)
                continue
            if since is not None:
                logger.warning("upload %s: the state database is back after %.0f s; outcome "
                               "written", upload_id, time.monotonic() - since)
            return result
