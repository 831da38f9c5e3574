"""``peakops batch``: the worker and the off-peak scheduler as one long-running service.

The worker's consumer loop runs in the main thread (it owns the signal handlers: SIGTERM
or Ctrl-C hand the current job back and stop); the scheduler runs in its background
thread. The worker gets the scheduler's hold, so an off-peak upload never starts outside
an open window and a hard window end or a pause stops the running one and returns it to
DEFERRED; and, when a job ends, the scheduler dispatches the next upload at once. This is what a systemd user unit starts.
"""

from __future__ import annotations

import logging

from batch.hold import Clock, hold_for, wall_clock
from batch.queue import shared_queue
from batch.scheduler import OffPeakScheduler, acquire_lock
from batch.worker import Worker
from core.app import open_app
from core.config import Settings
from core.schedule.windows import parse_windows

logger = logging.getLogger(__name__)


def run_batch(settings: Settings, clock: Clock = wall_clock) -> int:
    """Run until SIGTERM/SIGINT; exit code 0. StateError if a scheduler already runs.

    ``clock`` tells both the scheduler and the worker's hold what time it is. One App,
    one queue and one parse of the windows serve both."""
    # A bad window spec fails here, before anything runs.
    schedule = parse_windows(settings.offpeak_windows, settings.timezone)
    lock = acquire_lock(settings.home)
    try:
        app = open_app(settings)
        try:
            queue = shared_queue(settings)
            scheduler = OffPeakScheduler(settings, clock, app=app, schedule=schedule)
            # When a job ends the scheduler dispatches the next upload at once (window and
            # fit-before-close permitting); its periodic tick is only the safety net.
            worker = Worker(settings, app=app, queue=queue,
                            hold=hold_for(settings, clock=clock, schedule=schedule),
                            after_job=scheduler.job_ended)
            scheduler.start()
            try:
                logger.info("batch service: worker %s with the off-peak scheduler", worker.name)
                return worker.run()
            finally:
                scheduler.shutdown()
        finally:
            app.close()
    finally:
        lock.close()
