"""``peakops process``: one upload, now, through the job runner, as in the worker.

The job runs in a job child watched by the supervisor, so the hard memory limit, the
degrade ladder, timeouts and the peak figure are those of the worker: one code path
enforces the limits. Ctrl-C or SIGTERM stops the job and hands the upload back at once.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from batch.signals import stop_on_signals
from core.app import open_app, process_owner
from core.config import Settings
from core.jobs.runner import JobRunner, caller_log_level

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessOutcome:
    status: str
    interrupted: bool


def process_upload(settings: Settings, upload_id: int, *,
                   on_progress: Callable[[str, int, int], None] | None = None
                   ) -> ProcessOutcome:
    """Run ``upload_id`` (QUEUED) to an end: DONE, FAILED, or handed back if interrupted."""
    app = open_app(settings)
    # The job child logs as this command does (quiet unless -v), not as a service.
    runner = JobRunner(app, owner=process_owner("process"), on_progress=on_progress,
                       child_log_level=caller_log_level())
    try:
        with stop_on_signals(runner.stop, (signal.SIGINT, signal.SIGTERM)):
            status = runner.run_to_end(upload_id)  # its backoff wait wakes on stop()
    finally:
        runner.close()
        app.close()
    return ProcessOutcome(status, runner.stopping)
