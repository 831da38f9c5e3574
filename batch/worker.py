"""``peakops worker``: the Huey consumer loop, the job child's supervisor, the reaper.

One video at a time. The loop dequeues an upload id, claims it in the state database
(a duplicate message finds nothing to claim), hands it to the job child and watches
the child's whole process tree. When the queue is empty it re-sends QUEUED uploads the
queue has lost, so the database, not the queue, decides what still has to run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from batch.queue import Queue, QueueUnreachableError, make_queue, set_executor
from core import maintenance, media
from core.app import App, open_app
from core.config import Settings
from core.errors import from_category
from core.jobs.cgroup import SAMPLING, MemoryCage, make_cage
from core.jobs.settle import COMPLETE, RELEASE, Decision, JobOutcome, replace_after_job, settle
from core.jobs.supervisor import JobChild, Limits, tree_rss_kib, watch_job
from core.liveness import host_id, owner_alive
from core.store import frames, heartbeat, lifecycle, queries
from core.store.db import is_locked, open_database, when_unlocked
from core.store.sqldb import DatabaseUnreachableError

logger = logging.getLogger(__name__)

IDLE_POLL_S = 0.1
REAP_EVERY_S = 30.0
"""At most this long between reaper rounds; sooner with short leases (half a lease), so a
killed worker's upload goes back to the queue about when its lease would expire."""
BEAT_EVERY_S = 1.0
BEAT_BUSY_TIMEOUT_S = 5.0
HOLD_EVERY_S = 1.0
QUEUE_RETRY_S = 1.0

AfterJob = Callable[[int, str], None]
"""``after_job(upload_id, status)``: called when a job has ended and been recorded. The
batch service passes one that runs the scheduler's dispatch at once."""

Hold = Callable[[Any, dict[str, Any], bool], str | None]
"""``hold(db, upload_row, starting)``: a reason why the upload must not start
(``starting``) or go on running (window end, pause), or None. The batch service passes
one; a held upload goes back to DEFERRED."""


class Worker:
    """Consumer loop plus job supervisor; ``run()`` returns when stopped or, in burst
    mode, when nothing is QUEUED any more."""

    def __init__(self, settings: Settings, *, burst: bool = False,
                 child_env: dict[str, str] | None = None, hold: Hold | None = None,
                 after_job: AfterJob | None = None) -> None:
        self.settings = settings
        self.burst = burst
        self.hold = hold
        self.after_job = after_job
        self.held: str | None = None
        self.last_hold_check = 0.0
        self.app: App = open_app(settings)
        self.queue: Queue = make_queue(settings)
        self.name = f"worker@{host_id()}:{os.getpid()}"
        self.child: JobChild | None = None
        self.child_env = child_env if child_env is not None else dict(os.environ)
        self.child_starts = 0
        self.jobs_done = 0
        self.stopping = False
        self.queue_down = False
        self.current: dict[str, Any] = {}
        self.rss_kib = self.peak_kib = 0
        self.state = "starting"
        self.beats_done = threading.Event()
        self.started_at = time.time()
        self.cage: MemoryCage | None = None
        self.on_progress: Callable[[str, int, int], None] | None = None  # `peakops process`
        self.cage_tried = False
        self.enforcement: str | None = None  # how the hard limit is enforced, once known
        self.cage_kills = 0
        self.reap_every = min(REAP_EVERY_S, max(1.0, settings.lease_seconds / 2))
        self.limits = Limits(hard_kib=settings.hard_memory_limit_kib,
                             job_timeout_s=settings.job_timeout,
                             stall_timeout_s=settings.stall_timeout)

    # -- lifecycle -------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        if not self.stopping:
            logger.info("%s: stop requested; handing back the current job", self.name)
        self.stopping = True

    def run(self) -> int:
        set_executor(self)
        if threading.current_thread() is threading.main_thread():
            # A worker embedded in another program's thread is stopped by request_stop().
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self.request_stop)
        self.prepare_cage()
        self.beat("starting", force=True)
        beater = threading.Thread(target=self._beat_loop, name="heartbeat", daemon=True)
        beater.start()
        self.reap()
        last_reap = time.monotonic()
        logger.info("%s: waiting for uploads on the queue (%s); SIGTERM or Ctrl-C stops it",
                    self.name, self.queue.where)
        try:
            while not self.stopping:
                try:
                    task = self.queue.receive()
                except QueueUnreachableError as exc:
                    self.wait_for_queue(exc)
                    continue
                if self.queue_down:
                    logger.info("%s: %s is reachable again", self.name, self.queue.where)
                    self.queue_down = False
                if task is not None:
                    self.queue.huey.execute(task)
                    continue
                try:
                    if self.resend_lost():
                        continue
                    if self.burst and not self.waiting_work():
                        break
                    if time.monotonic() - last_reap > self.reap_every:
                        self.reap()
                        last_reap = time.monotonic()
                except DatabaseUnreachableError as exc:
                    # The state database is away (a restart, a failover): the next
                    # statement reconnects; the work waits there meanwhile.
                    logger.warning("%s: %s; retrying", self.name, exc)
                    time.sleep(QUEUE_RETRY_S)
                    continue
                self.beat("idle")
                time.sleep(IDLE_POLL_S)
        finally:
            set_executor(None)
            if self.child:
                self.child.stop()
                self.child = None
            if self.cage is not None:
                self.cage.remove()
            self.beats_done.set()
            beater.join(timeout=5)
            self.beat("stopped", force=True)
            self.app.close()
        return 0

    def waiting_work(self) -> bool:
        """QUEUED uploads not yet ready (backoff) still count as work for burst mode."""
        return queries.has_status(self.app.db, lifecycle.QUEUED)

    def resend_lost(self) -> bool:
        upload_id = queries.next_queued(self.app.db)
        if upload_id is None:
            return False
        logger.info("upload %s: QUEUED but not in the queue; re-sent", upload_id)
        try:
            self.queue.enqueue([upload_id])
        except QueueUnreachableError as exc:
            self.wait_for_queue(exc)
            return False
        return True

    def wait_for_queue(self, error: QueueUnreachableError) -> None:
        """The queue's server is down (a Redis restart): the work waits in the state
        database, so wait and retry; a burst run ends with the error instead."""
        if self.burst:
            raise error
        if not self.queue_down:
            logger.warning("%s: %s; retrying every %.0f s", self.name, error, QUEUE_RETRY_S)
            self.queue_down = True
        self.beat("idle")
        time.sleep(QUEUE_RETRY_S)

    def reap(self) -> None:
        changed = lifecycle.reset_stuck(self.app.db, max_attempts=self.settings.max_attempts,
                                   owner_alive=owner_alive)
        swept = maintenance.sweep_temp(self.app)
        if changed or swept:
            logger.info("reaper: %s upload(s) reset %s, %s temp folder(s) removed",
                        len(changed), changed, swept)

    def beat(self, state: str, *, force: bool = False) -> None:
        """Set the state the heartbeat reports; ``force`` writes it now (start, stop)."""
        self.state = state
        if force:
            self._write_beat(self.app.db)

    def _write_beat(self, db: Any) -> None:
        current = dict(self.current)
        child = self.child
        heartbeat.beat(
            db, self.name, pid=os.getpid(), host=socket.gethostname(), state=self.state,
            upload_id=current.get("upload_id"), stage=current.get("stage"),
            progress_done=current.get("done"), progress_total=current.get("total"),
            rss_kib=self.rss_kib, peak_kib=self.peak_kib,
            soft_limit_kib=self.settings.max_memory_per_child,
            hard_limit_kib=self.limits.hard_kib, jobs_done=self.jobs_done,
            child_pid=child.pid if child else None, child_starts=self.child_starts,
            started_at=self.started_at, memory_enforcement=self.enforcement)
        if self.state == "busy" and current.get("upload_id"):
            lifecycle.renew_lease(db, current["upload_id"], self.name,
                             lease_seconds=self.settings.lease_seconds)

    def _beat_loop(self) -> None:
        """Heartbeat and lease renewal on their own thread and connection, so a busy
        database never delays the memory samples that decide a kill."""
        db = open_database(self.settings, busy_timeout_s=BEAT_BUSY_TIMEOUT_S)
        try:
            while not self.beats_done.wait(BEAT_EVERY_S):
                try:
                    self._write_beat(db)
                except sqlite3.OperationalError as exc:
                    if not is_locked(exc):
                        logger.exception("%s: heartbeat write failed", self.name)
                        continue
                    # Another writer holds the database: the next beat tries again.
                    logger.warning("%s: heartbeat skipped: the state database is locked by "
                                   "another writer", self.name)
                except Exception:  # a missed beat is logged, never fatal
                    logger.exception("%s: heartbeat write failed", self.name)
        finally:
            db.close()

    # -- the child -------------------------------------------------------------------

    def prepare_cage(self) -> None:
        """Once: the kernel enforces the hard limit where it can (status shows which)."""
        if not self.cage_tried:
            self.cage_tried = True
            self.cage = make_cage(self.limits.hard_kib) if self.settings.memory_cgroup else None
            self.enforcement = self.cage.describe() if self.cage else SAMPLING
            logger.info("%s: hard memory limit %s KiB: %s", self.name,
                        self.limits.hard_kib, self.enforcement)

    def ensure_child(self) -> JobChild:
        if self.child is None or not self.child.alive():
            self.prepare_cage()
            self.child = JobChild(self.child_env, self.settings, self.cage)
            self.child_starts += 1
            logger.info("%s: job child %s started", self.name, self.child.pid)
        return self.child

    def replace_child(self, cause: str, message: str, upload_id: int | None = None,
                      rss_kib: int | None = None) -> None:
        heartbeat.record_restart(self.app.db, self.name, cause, message=message,
                                 upload_id=upload_id, rss_kib=rss_kib)
        logger.info("%s: replacing job child (%s): %s", self.name, cause, message)
        if self.child:
            self.child.stop()
        self.child = None

    # -- tasks -----------------------------------------------------------------------

    def run_upload(self, upload_id: int, *, kind: str) -> str:
        """Claim and run one upload in the job child; returns its new status.

        ``kind`` (process, reprocess, analyze) only names the message: the entry point
        that sent it already made the upload QUEUED (frames or labels dropped), and the
        pipeline resumes from what is recorded.
        """
        db = self.app.db
        if self.hold is not None and self._held_at_start(upload_id):
            return lifecycle.DEFERRED
        if lifecycle.claim(db, upload_id, self.name, lease_seconds=self.settings.lease_seconds) is None:
            logger.debug("upload %s: nothing to claim for %s (duplicate message or not QUEUED)",
                         upload_id, kind)
            return "skipped"
        row = queries.get_upload(db, upload_id)
        self.held, self.last_hold_check = None, 0.0
        self.current = {"upload_id": upload_id, "stage": "starting"}
        self.peak_kib = 0
        self.state = "busy"
        try:
            child = self.ensure_child()
        except (OSError, RuntimeError) as exc:
            if self.cage is not None and self.cage.oom_kills() > self.cage_kills:
                self.child = None  # the kernel killed it at the limit while it started
                return self._settle(upload_id, row, JobOutcome(
                    "crash", message=f"could not start a job child: {exc}", transient=True))
            error = from_category("internal", f"could not start a job child: {exc}",
                                  transient=True)
            return lifecycle.fail(db, upload_id, error, owner=self.name,
                             max_attempts=self.settings.max_attempts,
                             retry_backoff=self.settings.retry_backoff)
        started = time.monotonic()
        outcome = watch_job(child, {"upload_id": upload_id, "owner": self.name,
                                    "reanalyse": False},
                            self.limits, on_sample=self._on_sample,
                            should_stop=lambda: self.stopping or self._held(upload_id))
        status = self._settle(upload_id, row, outcome)
        logger.info("upload %s: job ended %s (%s), %s frames, %.1f s, peak %.0f MB", upload_id,
                    status, outcome.kind, frames.count(db, upload_id), time.monotonic() - started,
                    outcome.peak_kib / 1024)
        self.current = {}
        self.beat("idle", force=True)
        if self.after_job is not None:
            try:
                self.after_job(upload_id, status)
            except Exception:  # the periodic dispatch tick still runs
                logger.exception("upload %s: end-of-job hook failed", upload_id)
        return status

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

    def _held(self, upload_id: int) -> bool:
        """Ask the hold about the running upload, about once a second."""
        if self.hold is None:
            return False
        now = time.monotonic()
        if now - self.last_hold_check >= HOLD_EVERY_S:
            self.last_hold_check = now
            self.held = self.hold(self.app.db, queries.get_upload(self.app.db, upload_id), False)
        return self.held is not None

    def _on_sample(self, rss_kib: int, progress: dict[str, Any] | None) -> None:
        self.rss_kib = rss_kib
        self.peak_kib = max(self.peak_kib, rss_kib)
        if progress:
            self.current.update(stage=progress["stage"], done=progress["done"],
                                total=progress["total"])
            if self.on_progress is not None:
                self.on_progress(progress["stage"], progress["done"], progress["total"])

    def _settle(self, upload_id: int, row: dict[str, Any], outcome: JobOutcome) -> str:
        """Record how the job ended (the policy is :func:`core.jobs.settle.settle`) and decide
        whether the child is replaced."""
        db, settings = self.app.db, self.settings
        if outcome.kind == "crash" and self.cage is not None \
                and self.cage.oom_kills() > self.cage_kills:  # the kernel's hard-limit kill
            self.cage_kills = self.cage.oom_kills()
            top = max(outcome.peak_kib, self.cage.peak_kib() or 0, self.limits.hard_kib)
            outcome = dataclasses.replace(
                outcome, kind="hard-limit", category="memory", peak_kib=top,
                message=f"the kernel stopped the process tree at the hard limit of "
                        f"{self.limits.hard_kib} KiB (cgroup memory.max; peak {top} KiB)")
        peak = outcome.peak_kib
        decision = settle(outcome, row, settings, held=None if self.stopping else self.held,
                          degrade_levels=media.DEGRADE_LEVELS)
        if outcome.kind != "result":
            self.child = None  # watch_job killed it, or it died
        if decision.action == RELEASE:
            if decision.status == lifecycle.DEFERRED:
                logger.info("upload %s: stopped and handed back: %s", upload_id, decision.reason)
                self.held = None
            lifecycle.release(db, upload_id, self.name, reason=decision.reason,
                         target=decision.status)
            return decision.status
        if outcome.kind == "result":
            self.jobs_done += 1
            assert self.child is not None
            self.child.jobs_done += 1
            if decision.action == COMPLETE:
                when_unlocked(lambda: lifecycle.complete(db, upload_id, self.name, peak_rss_kib=peak,
                                                    note=decision.note),
                              what=f"upload {upload_id}'s outcome")
                status = lifecycle.DONE
            else:
                status = self._fail(upload_id, decision, peak)
            after = self.rss_kib = _child_rss(self.child)
            replace = replace_after_job(self.child.jobs_done, after, settings)
            if replace is not None:
                self.replace_child(*replace, upload_id, after)
            return status
        maintenance.sweep_temp(self.app)  # its scratch copy of the video, at once
        heartbeat.record_restart(db, self.name, decision.restart or "crash",
                                 message=outcome.message, upload_id=upload_id, rss_kib=peak)
        return self._fail(upload_id, decision, peak)

    def _fail(self, upload_id: int, decision: Decision, peak: int) -> str:
        assert decision.error is not None
        return when_unlocked(lambda: lifecycle.fail(
            self.app.db, upload_id, decision.error, owner=self.name,
            max_attempts=self.settings.max_attempts, retry_backoff=self.settings.retry_backoff,
            degrade=decision.degrade, degrade_levels=media.DEGRADE_LEVELS, peak_rss_kib=peak),
            what=f"upload {upload_id}'s outcome")


def _child_rss(child: JobChild | None) -> int:
    return tree_rss_kib(child.pid) if child else 0
