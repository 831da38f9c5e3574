"""``peakops scheduler``: one APScheduler 3.x instance that runs the off-peak batch.

Jobs, registered by textual reference with no arguments (the running
:class:`Runtime` is module state, as the queue's executor is):

- ``dispatch_tick`` every ``dispatch_interval`` seconds (30 by default) and once at start:
  re-reads the clock, the operator's pause/run-now and the backlog, withdraws queued
  off-peak uploads when closed, dispatches what fits, and (re)schedules
- ``job_ended_tick`` when the worker ends a job (:meth:`OffPeakScheduler.job_ended`, the
  batch service's end-of-job hook): the next upload is dispatched at once while the
  window and fit-before-close allow, so the interval tick is only a safety net;
- ``boundary_tick`` as a DateTrigger at the next window opening or closing computed
  by the window math, so a boundary is met to the second; the interval tick catches
  clock changes;
- ``reap_tick`` every minute (the reaper) and ``cleanup_tick`` daily at 03:30 local
  (retention cleanup, ``retention_days``).

Jobs run one at a time on a single executor thread, which alone uses the runtime's
database connection. Exactly one scheduler runs per home folder (:func:`acquire_lock`).

In a fleet every worker machine runs its own batch service, so exactly one of them leads:
the one whose database connection holds the leader lock (:data:`LEADER_LOCK`, a
PostgreSQL session advisory lock; on SQLite a file lock beside the database). Only the
leader dispatches, ticks at window boundaries, reaps and cleans up; the others only
execute. A leader that dies or loses its connection drops the lock, and another takes
it at its next tick. Pause, run-now and the windows are read from the database by all.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from batch.hold import Clock, wall_clock
from batch.queue import Queue, shared_queue
from core import maintenance
from core.app import App, open_app
from core.config import Settings
from core.errors import DatabaseUnreachableError, StateError
from core.filelock import try_lock
from core.results import report
from core.schedule import offpeak
from core.schedule.offpeak import Plan, fmt_duration
from core.schedule.windows import Schedule, parse_windows
from core.store import heartbeat, lifecycle
from core.store.db import open_database

logger = logging.getLogger(__name__)

REAP_EVERY_S = 60.0
CLEANUP_AT = {"hour": 3, "minute": 30}
LOCK_NAME = "scheduler.lock"
LEADER_LOCK = "peakops.leader"


def acquire_lock(home: Path) -> IO[bytes]:
    """Hold ``home/scheduler.lock`` for the life of the returned file; StateError if taken."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_NAME
    handle = try_lock(path)
    if handle is None:
        holder = path.read_text().strip() or "unknown"
        raise StateError(f"another scheduler is already running for {home} (pid {holder}); "
                         "only one may run per home folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    return handle


class Runtime:
    """What the scheduler's jobs work on: settings, schedule, database, queue."""

    def __init__(self, settings: Settings, scheduler: BackgroundScheduler,
                 clock: Clock = wall_clock, *, app: App | None = None,
                 schedule: Schedule | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.schedule: Schedule = schedule if schedule is not None else parse_windows(
            settings.offpeak_windows, settings.timezone)
        self.scheduler = scheduler
        if app is None:
            self.app: App = open_app(settings, check_same_thread=False)
        else:  # the batch service's App, with a connection of this executor thread's own
            self.app = dataclasses.replace(app, db=open_database(settings,
                                                                 check_same_thread=False))
        self.queue: Queue = shared_queue(settings)
        self.was_open: bool | None = None
        self.opened: offpeak.Opening | None = None  # the stretch a morning report covers
        self.last_deferred: dict[int, str] = {}
        self.last_waiting: dict[tuple[int, str], str] = {}
        self.leading = False

    def close(self) -> None:
        self.app.close()

    def lead(self) -> bool:
        """Whether this scheduler leads the fleet now (holds :data:`LEADER_LOCK`).

        The connection is checked first: one that dropped took the lock with it (the
        dialect layer reconnects and forgets it), so leadership is won again or lost.
        """
        db = self.app.db
        try:
            db.execute("SELECT 1").fetchone()
            leading = db.try_lock(LEADER_LOCK)
        except DatabaseUnreachableError as exc:
            logger.warning("leader check failed: %s", exc)
            leading = False
        if leading != self.leading:
            logger.info("this scheduler %s", "leads: it dispatches, reaps and cleans up"
                        if leading else "does not lead: another one dispatches and cleans up")
        self.leading = leading
        return leading

    def leading_tick(self, *, ended: int | None = None) -> Plan | None:
        """A dispatch round if this scheduler leads, else None (the leader runs it)."""
        if not self.lead():
            return None
        return self.tick(self.clock(), ended=ended)

    def tick(self, now: datetime, *, ended: int | None = None) -> Plan:
        """One dispatch round at ``now``; ``ended``: the upload whose end asked for it."""
        db = self.app.db
        plan = offpeak.load_plan(db, self.schedule, lookahead=self.settings.dispatch_lookahead,
                                 now=now)
        self._log_transition(plan)
        if not plan.open:
            reason = plan.pause or "off-peak window closed"
            withdrawn = [r["id"] for r in offpeak.offpeak_rows(db, lifecycle.QUEUED)
                         if lifecycle.withdraw(db, r["id"], reason=reason, now=now.timestamp())]
            if withdrawn:
                logger.info("withdrew %s queued off-peak upload(s) %s: %s", len(withdrawn),
                            withdrawn, reason)
        dispatched = []
        for decision in plan.to_dispatch():
            assert plan.opening is not None
            where = f"{plan.opening.source} until {plan.opening.end:%a %H:%M}"
            when = f" as upload {ended} ended" if ended is not None else ""
            if lifecycle.dispatch(db, decision.upload_id, now=now.timestamp(),
                             message=f"dispatched in {where}{when} (estimate "
                                     f"{fmt_duration(decision.estimate_s)})"):
                dispatched.append(decision.upload_id)
        if dispatched:
            self.queue.enqueue(dispatched)
            logger.info("dispatched %s upload(s) %s%s", len(dispatched), dispatched,
                        f" as upload {ended} ended" if ended is not None else "")
        waiting = {(d.upload_id, d.waits_for): d.reason for d in plan.decisions
                   if d.action != "dispatch"}
        if waiting != self.last_waiting:
            self._log_waiting(waiting)
        self.last_waiting = waiting
        self.last_deferred = {d.upload_id: d.reason for d in plan.deferred()}
        self._schedule_boundary(plan)
        return plan

    @staticmethod
    def _log_waiting(waiting: dict[tuple[int, str], str]) -> None:
        """Say what each undispatched upload waits for: the worker (dispatch checks again
        when the job ahead ends) or the next window."""
        for target, text in ((offpeak.WORKER, "wait in this window until the worker is free"),
                             (offpeak.NEXT_WINDOW, "deferred to the next window")):
            reasons = [f"upload {i}: {why}" for (i, what), why in waiting.items()
                       if what == target]
            if reasons:
                logger.info("%s upload(s) %s: %s", len(reasons), text, "; ".join(reasons))

    def job_ended(self, upload_id: int) -> Plan | None:
        """A job ended: dispatch at once what the window and fit-before-close allow,
        instead of leaving the worker idle until the next periodic tick (the leader does;
        on another machine its next tick does)."""
        return self.leading_tick(ended=upload_id)

    def _log_transition(self, plan: Plan) -> None:
        if plan.open == self.was_open:
            return
        self.was_open = plan.open
        if plan.open:
            assert plan.opening is not None
            logger.info("window opened (%s) until %s", plan.opening.source,
                        plan.opening.end.isoformat())
            self.opened = plan.opening
        else:
            nxt = plan.next_open.isoformat() if plan.next_open else "never"
            logger.info("window closed (%s); next opens %s",
                        plan.pause or "outside the schedule", nxt)
            if self.opened is not None:
                report.write_at_close(self.app, start=self.opened.start, end=plan.now,
                                      notes=self.last_deferred)
                self.opened = None

    def next_boundary(self, plan: Plan) -> datetime | None:
        """When the open/closed answer next changes, as far as the window math knows."""
        control = offpeak.read_control(self.app.db)
        moments = []
        if plan.opening is not None:
            moments.append(plan.opening.end)
        elif plan.next_open is not None:
            moments.append(plan.next_open)
        if control.timed_pause(plan.now) and control.pause_until < offpeak.PAUSE_FOREVER:
            moments.append(datetime.fromtimestamp(control.pause_until, UTC))
        future = [m.astimezone(UTC) for m in moments if m.timestamp() > plan.now.timestamp()]
        return min(future) if future else None

    def _schedule_boundary(self, plan: Plan) -> None:
        moment = self.next_boundary(plan)
        if moment is None:
            return
        job = self.scheduler.get_job("boundary")
        if job is not None and getattr(job.trigger, "run_date", None) == moment:
            return
        self.scheduler.add_job("batch.scheduler:boundary_tick", DateTrigger(run_date=moment),
                               id="boundary", name="window boundary", replace_existing=True,
                               misfire_grace_time=None)
        logger.debug("next window boundary at %s", moment.isoformat())

    def reap(self) -> None:
        from core.liveness import owner_alive
        changed = lifecycle.reset_stuck(self.app.db, max_attempts=self.settings.max_attempts,
                                   owner_alive=owner_alive)
        if changed:
            logger.info("reaper: %s upload(s) reset %s", len(changed), changed)

    def cleanup(self) -> None:
        result = maintenance.cleanup_expired(self.app)
        workers = heartbeat.prune(self.app.db)
        logger.info("retention cleanup (%g days): %s upload(s), %s object(s) removed, "
                    "%s error(s); %s worker(s) not seen for a day forgotten",
                    self.settings.retention_days, result.uploads, result.objects,
                    result.errors, workers)


_runtime: Runtime | None = None


def _current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("scheduler jobs run only inside `peakops scheduler` or `batch`")
    return _runtime


def dispatch_tick() -> None:
    _current().leading_tick()


def boundary_tick() -> None:
    _current().leading_tick()


def job_ended_tick(upload_id: int) -> None:
    _current().job_ended(upload_id)


def reap_tick() -> None:
    runtime = _current()
    if runtime.lead():
        runtime.reap()


def cleanup_tick() -> None:
    runtime = _current()
    if runtime.lead():
        runtime.cleanup()


class OffPeakScheduler:
    """The one APScheduler instance, in a background thread."""

    def __init__(self, settings: Settings, clock: Clock = wall_clock, *,
                 app: App | None = None, schedule: Schedule | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.app = app
        self.schedule = schedule
        self.scheduler = BackgroundScheduler(
            timezone=settings.timezone,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
        self.runtime: Runtime | None = None

    def start(self) -> None:
        global _runtime
        if _runtime is not None:
            raise RuntimeError("a scheduler already runs in this process")
        self.runtime = _runtime = Runtime(self.settings, self.scheduler, self.clock,
                                          app=self.app, schedule=self.schedule)
        schedule = self.runtime.schedule
        logger.info("scheduler: windows %r in %s, end policy %s, dispatch every %g s",
                    str(schedule) or "(none)", self.settings.timezone,
                    self.settings.window_end_policy, self.settings.dispatch_interval)
        # When jobs run is APScheduler's own business (its clock); what a tick decides
        # reads self.clock. A first dispatch round at once, then every interval.
        self.scheduler.add_job("batch.scheduler:dispatch_tick", DateTrigger(),
                               id="dispatch-first", name="dispatch at start",
                               misfire_grace_time=None)
        self.scheduler.add_job("batch.scheduler:dispatch_tick", IntervalTrigger(
            seconds=self.settings.dispatch_interval), id="dispatch", name="dispatch")
        self.scheduler.add_job("batch.scheduler:reap_tick", IntervalTrigger(
            seconds=REAP_EVERY_S), id="reap", name="reaper")
        self.scheduler.add_job("batch.scheduler:cleanup_tick", CronTrigger(**CLEANUP_AT),
                               id="cleanup", name="cleanup_expired_inspections")
        self.scheduler.start()

    def job_ended(self, upload_id: int, status: str | None = None) -> None:
        """The worker's end-of-job hook: run a dispatch round now, on the scheduler's one
        executor thread (which alone uses the runtime's database connection)."""
        if not self.scheduler.running:
            return
        self.scheduler.add_job("batch.scheduler:job_ended_tick", DateTrigger(), args=[upload_id],
                               id="job-ended", name="dispatch after a job",
                               replace_existing=True, misfire_grace_time=None)

    def shutdown(self) -> None:
        global _runtime
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.runtime is not None:
            self.runtime.close()
        self.runtime = _runtime = None


def run_scheduler(settings: Settings, stop: threading.Event, clock: Clock = wall_clock) -> int:
    """``peakops scheduler``: hold the lock and run until ``stop`` is set."""
    lock = acquire_lock(settings.home)
    scheduler = OffPeakScheduler(settings, clock)
    try:
        scheduler.start()
        while not stop.wait(1.0):
            pass
    finally:
        scheduler.shutdown()
        lock.close()
    return 0
