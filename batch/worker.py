"""``peakops worker``: the Huey consumer loop around the job runner, with heartbeat and reaper.

One video at a time. The loop receives an upload id and gives it to
:meth:`core.jobs.runner.JobRunner.run_one` (claim, supervised job child, settle, apply;
a duplicate message finds nothing to claim). When the queue is empty it re-sends QUEUED
uploads the queue has lost, so the database, not the queue, decides what still has to
run, and now and then it reaps expired leases.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from batch.heartbeat import Heartbeat
from batch.outage import Outage
from batch.queue import Queue, QueueUnreachableError, shared_queue
from batch.signals import stop_on_signals
from core import maintenance
from core.app import App, open_app
from core.config import Settings
from core.errors import DatabaseUnreachableError
from core.jobs.runner import SKIPPED, Hold, JobRunner
from core.liveness import host_id, owner_alive
from core.store import lifecycle, queries

logger = logging.getLogger(__name__)

IDLE_POLL_S = 0.1
REAP_EVERY_S = 30.0
"""At most this long between reaper rounds; sooner with short leases (half a lease), so a
killed worker's upload goes back to the queue about when its lease would expire."""

AfterJob = Callable[[int, str], None]
"""``after_job(upload_id, status)``: called when a job has ended and been recorded. The
batch service passes one that runs the scheduler's dispatch at once."""


class Worker:
    """The consumer loop; ``run()`` returns when stopped or, in burst mode, when nothing is
    QUEUED any more. ``app`` and ``queue`` default to the process's own."""

    def __init__(self, settings: Settings, *, app: App | None = None, queue: Queue | None = None,
                 burst: bool = False, child_env: dict[str, str] | None = None,
                 hold: Hold | None = None, after_job: AfterJob | None = None) -> None:
        self.settings = settings
        self.burst = burst
        self.after_job = after_job
        self._own_app = app is None
        self.app = app if app is not None else open_app(settings)
        self.queue = queue if queue is not None else shared_queue(settings)
        self.name = f"worker@{host_id()}:{os.getpid()}"
        self.runner = JobRunner(self.app, owner=self.name, child_env=child_env, hold=hold)
        self.heartbeat = Heartbeat(settings, self.name, self.runner)
        self.reap_every = min(REAP_EVERY_S, max(1.0, settings.lease_seconds / 2))
        self.last_reap = 0.0
        self.queue_outage = Outage(self.name, f"queue {self.queue.where}", self.runner.wait)
        self.database_outage = Outage(self.name, "the state database", self.runner.wait)

    def request_stop(self) -> None:
        if not self.runner.stopping:
            logger.info("%s: stop requested; handing back the current job", self.name)
        self.runner.stop()

    def run(self) -> int:
        # A worker embedded in another program's thread is stopped by request_stop().
        signals = (signal.SIGTERM, signal.SIGINT) \
            if threading.current_thread() is threading.main_thread() else ()
        with stop_on_signals(self.request_stop, signals):
            return self._run()

    def _run(self) -> int:
        self.runner.prepare_cage()
        self.heartbeat.start()
        try:
            self._until_done(self._start)
            logger.info("%s: waiting for uploads on the queue (%s); SIGTERM or Ctrl-C stops it",
                        self.name, self.queue.where)
            while not self.runner.stopping:
                if self._until_done(self.step) == "burst over":
                    break
        finally:
            self.runner.close()
            self.heartbeat.stop()
            with contextlib.suppress(DatabaseUnreachableError):
                self.heartbeat.set("stopped", self.app.db)
            if self._own_app:
                self.app.close()
        return 0

    def _start(self) -> None:
        self.heartbeat.set("starting", self.app.db)
        self.reap()
        self.last_reap = time.monotonic()

    def _until_done(self, step: Callable[[], object]) -> object:
        """Run ``step`` once, riding out a lost queue or database: one line when it goes,
        one when it is back, a backoff between tries (a burst run ends with the error)."""
        while not self.runner.stopping:
            try:
                result = step()
            except QueueUnreachableError as exc:
                if self.burst:
                    raise
                self.heartbeat.set("idle")
                self.queue_outage.failed(exc)
                continue
            except DatabaseUnreachableError as exc:
                if self.burst:
                    raise
                self.database_outage.failed(exc)
                continue
            self.queue_outage.ok()
            self.database_outage.ok()
            return result
        return None

    def step(self) -> str:
        """One turn of the loop: run a message, or re-send lost work, reap, or idle."""
        upload_id = self.queue.receive()
        self.queue_outage.ok()
        if upload_id is not None:
            self.run_one(upload_id)
            return "ran"
        if self.resend_lost():
            return "re-sent"
        if self.burst and not queries.has_status(self.app.db, lifecycle.QUEUED):
            return "burst over"  # QUEUED uploads waiting out a backoff still count as work
        if time.monotonic() - self.last_reap > self.reap_every:
            self.reap()
            self.last_reap = time.monotonic()
        self.heartbeat.set("idle")
        self.runner.wait(IDLE_POLL_S)
        return "idle"

    def run_one(self, upload_id: int) -> str:
        """One message: the runner runs the upload; the batch service hears when it ended."""
        status = self.runner.run_one(upload_id)
        self.heartbeat.set("idle", self.app.db)
        if status != SKIPPED and self.after_job is not None:
            try:
                self.after_job(upload_id, status)
            except Exception:  # the periodic dispatch tick still runs
                logger.exception("upload %s: end-of-job hook failed", upload_id)
        return status

    def resend_lost(self) -> bool:
        upload_id = queries.next_queued(self.app.db)
        if upload_id is None:
            return False
        logger.info("upload %s: QUEUED but not in the queue; re-sent", upload_id)
        self.queue.enqueue([upload_id])
        return True

    def reap(self) -> None:
        changed = lifecycle.reset_stuck(self.app.db, max_attempts=self.settings.max_attempts,
                                        owner_alive=owner_alive)
        swept = maintenance.sweep_temp(self.app)
        if changed or swept:
            logger.info("reaper: %s upload(s) reset %s, %s temp folder(s) removed",
                        len(changed), changed, swept)
