"""The worker's heartbeat: its row in ``workers`` every second (the job runner keeps the
running job's lease: :mod:`core.jobs.lease`).

It runs on its own thread and its own database connection, so a busy database never
delays the memory samples that decide a kill. It reads what it reports from the job
runner (the running upload, memory, child) and the worker's state.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from core.config import Settings
from core.errors import DatabaseBusyError, PeakOpsError
from core.home import explain
from core.jobs.runner import JobRunner
from core.store import heartbeat
from core.store.db import open_database
from core.store.sqldb import SqlDatabase

logger = logging.getLogger(__name__)

BEAT_EVERY_S = 1.0
BEAT_BUSY_TIMEOUT_S = 5.0


class Heartbeat:
    """``start()`` the beating thread, ``set(state)`` what it says, ``stop()`` at the end."""

    def __init__(self, settings: Settings, name: str, runner: JobRunner) -> None:
        self.settings = settings
        self.name = name
        self.runner = runner
        self.state = "starting"
        self.started_at = time.time()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: str | None = None  # why beats fail, while they do

    def set(self, state: str, db: SqlDatabase | None = None) -> None:
        """Report ``state`` from now on; with ``db``, write it at once (start, stop)."""
        self.state = state
        if db is not None:
            self.write(db)

    def write(self, db: SqlDatabase) -> None:
        runner = self.runner
        current = runner.current
        child = runner.child
        busy = bool(current.get("upload_id"))
        state = "busy" if busy and self.state != "stopped" else self.state
        heartbeat.beat(
            db, self.name, pid=os.getpid(), host=socket.gethostname(), state=state,
            upload_id=current.get("upload_id"), stage=current.get("stage"),
            progress_done=current.get("done"), progress_total=current.get("total"),
            rss_kib=runner.rss_kib, peak_kib=runner.peak_kib,
            soft_limit_kib=self.settings.max_memory_per_child,
            hard_limit_kib=runner.limits.hard_kib, jobs_done=runner.jobs_done,
            child_pid=child.pid if child else None, child_starts=runner.child_starts,
            started_at=self.started_at, memory_enforcement=runner.enforcement)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        db = open_database(self.settings, busy_timeout_s=BEAT_BUSY_TIMEOUT_S)
        try:
            while not self._done.wait(BEAT_EVERY_S):
                self.beat_once(db)
        finally:
            db.close()

    def beat_once(self, db: SqlDatabase) -> None:
        """One beat; a missed one is logged, never fatal. A storage or database failure
        (a full disk, a lost server) is one line when it starts and one when it ends,
        not a traceback every second; anything else keeps its traceback."""
        try:
            self.write(db)
        except Exception as exc:
            if isinstance(exc, DatabaseBusyError):  # another writer holds it: next beat
                logger.warning("%s: heartbeat skipped: the state database is locked "
                               "by another writer", self.name)
                return
            if not isinstance(exc, PeakOpsError | OSError):
                logger.exception("%s: heartbeat write failed", self.name)
                return
            reason = explain(self.settings.home, exc) \
                if self.settings.database_dialect == "sqlite" else str(exc)
            if reason != self._failing:
                logger.warning("%s: heartbeat write failed: %s (retrying every %g s)",
                               self.name, reason, BEAT_EVERY_S)
            self._failing = reason
            return
        if self._failing is not None:
            logger.warning("%s: heartbeat written again after: %s", self.name, self._failing)
            self._failing = None
