"""``peakops process``: one upload, now, through the same supervisor as the worker.

The job runs in a job child watched by :func:`core.jobs.supervisor.watch_job`, so the hard
memory limit, the degrade ladder, timeouts and the peak figure are those of the worker:
one code path enforces the limits. Ctrl-C or SIGTERM stops the job and hands the upload
back at once.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from batch.worker import Worker
from core.app import process_owner
from core.config import Settings
from core.store import lifecycle, queries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessOutcome:
    status: str
    interrupted: bool


def process_upload(settings: Settings, upload_id: int, *,
                   on_progress: Callable[[str, int, int], None] | None = None
                   ) -> ProcessOutcome:
    """Run ``upload_id`` (QUEUED) to an end: DONE, FAILED, or handed back if interrupted.

    Memory kills move down the degrade ladder and transient failures are retried after
    their backoff, as in the worker, until the upload is DONE or FAILED.
    """
    # The job child logs as this command does (quiet unless -v), not as a service.
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    if level in ("debug", "info", "warning", "error"):
        settings = dataclasses.replace(settings, log_level=level)
    worker = Worker(settings, burst=True)
    worker.name = process_owner("process")
    worker.on_progress = on_progress
    previous = {sig: signal.signal(sig, worker.request_stop)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            status = worker.run_upload(upload_id, kind="process")
            if worker.stopping or status not in (lifecycle.QUEUED, "skipped"):
                break
            row = queries.get_upload(worker.app.db, upload_id)
            if row["status"] != lifecycle.QUEUED:
                status = row["status"]
                break
            wait = (row["not_before"] or 0) - time.time()
            if wait > 0:
                logger.info("upload %s: retrying in %.0f s", upload_id, wait)
                time.sleep(wait)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if worker.child:
            worker.child.stop()
            worker.child = None
        worker.beat("stopped", force=True)
        worker.app.close()
    return ProcessOutcome(status, worker.stopping)
