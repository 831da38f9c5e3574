"""``peakops process``: one upload, now, through the job runner, as in the worker.

The job runs in a job child watched by the supervisor, so the hard memory limit, the
degrade ladder, timeouts and the peak figure are those of the worker: one code path
enforces the limits. Ctrl-C or SIGTERM stops the job and hands the upload back at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], object], signals) -> Iterator[None]:
    """Call ``stop`` (from a relay thread) when one of ``signals`` arrives.

    The handler only writes a byte to a pipe: setting a ``threading.Event`` from a signal
    handler can deadlock when the signal lands while the main thread holds that event's
    lock inside ``Event.wait``, the very wait (a retry backoff) the signal must end.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def relay() -> None:
        while os.read(read_end, 1):
            stop()

    relay_thread = threading.Thread(target=relay, daemon=True, name="peakops-signals")
    relay_thread.start()

    def handler(signum, frame) -> None:
        with contextlib.suppress(BlockingIOError):  # a byte already waits: stop is coming
            os.write(write_end, b"\0")

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        os.close(write_end)  # the relay reads the end and returns
        relay_thread.join()
        os.close(read_end)
