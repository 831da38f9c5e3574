"""Run functions off the UI thread; hand results back on the UI thread through a signal.

Reads go to a general pool, writes to a pool with a single thread so they happen one
after another in the order the operator asked for them. Each pool thread opens its own
:class:`core.app.App` (sqlite connections are not shared across threads) on first use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from core.app import App, QueueSender, open_app
from core.config import Settings
from core.errors import DatabaseBusyError

logger = logging.getLogger(__name__)

Callback = Callable[[Any], None]
LOCKED_RETRIES = 3


class _Relay(QObject):
    """Lives on the UI thread; signals emitted from pool threads arrive here queued."""

    finished = Signal(object, object, object, object)  # on_result, on_error, result, error


class _PoolTask(QRunnable):
    def __init__(self, runner: TaskRunner, fn: Callable[..., Any], args: tuple,
                 on_result: Callback | None, on_error: Callback | None, with_app: bool,
                 write: bool = False) -> None:
        super().__init__()
        self.write = write
        self.runner, self.fn, self.args = runner, fn, args
        self.on_result, self.on_error, self.with_app = on_result, on_error, with_app

    def run(self) -> None:
        result = error = None
        try:
            result = self._call()
        except Exception as exc:  # delivered to on_error on the UI thread
            logger.debug("background task %s failed: %r", getattr(self.fn, "__name__", "?"), exc,
                         exc_info=True)
            error = exc
        self.runner.relay.finished.emit(self.on_result, self.on_error, result, error)

    def _call(self) -> Any:
        for attempt in range(LOCKED_RETRIES + 1):
            try:
                args = (self.runner.thread_app(), *self.args) if self.with_app else self.args
                return self.fn(*args)
            except DatabaseBusyError:
                # A read can meet a lock while a connection opens (WAL setup, migration);
                # it changed nothing, so trying again is safe. Writes are not retried.
                if self.write or attempt == LOCKED_RETRIES:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


class TaskRunner(QObject):
    """``read(fn, ...)`` / ``write(fn, ...)`` call ``fn(app, *args)`` on a pool thread.

    ``call(fn, ...)`` runs ``fn(*args)`` without an App (file work, subprocesses).
    Callbacks run on the UI thread; they must re-check that what they update still exists.
    """

    idle = Signal()

    def __init__(self, settings: Settings, parent: QObject | None = None,
                 *, max_threads: int = 3, send_queued: QueueSender | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.send_queued = send_queued  # the entry point's queue hook, for every App
        self.relay = _Relay()
        self.relay.finished.connect(self._deliver)
        self.reads = QThreadPool()
        self.reads.setMaxThreadCount(max_threads)
        self.reads.setExpiryTimeout(-1)  # keep threads, and so their connections, alive
        self.writes = QThreadPool()
        self.writes.setMaxThreadCount(1)
        self.writes.setExpiryTimeout(-1)
        self._local = threading.local()
        self._apps: list[App] = []
        self._lock = threading.Lock()
        self.pending = 0
        self.closed = False

    def thread_app(self) -> App:
        app = getattr(self._local, "app", None)
        if app is None:
            app = open_app(self.settings, check_same_thread=False,
                           send_queued=self.send_queued)
            self._local.app = app
            with self._lock:
                self._apps.append(app)
        return app

    def _submit(self, pool: QThreadPool, fn: Callable[..., Any], args: tuple,
                on_result: Callback | None, on_error: Callback | None, with_app: bool) -> None:
        if self.closed:
            return
        self.pending += 1
        pool.start(_PoolTask(self, fn, args, on_result, on_error, with_app, pool is self.writes))

    def read(self, fn: Callable[..., Any], *args: Any, on_result: Callback | None = None,
             on_error: Callback | None = None) -> None:
        self._submit(self.reads, fn, args, on_result, on_error, True)

    def write(self, fn: Callable[..., Any], *args: Any, on_result: Callback | None = None,
              on_error: Callback | None = None) -> None:
        self._submit(self.writes, fn, args, on_result, on_error, True)

    def call(self, fn: Callable[..., Any], *args: Any, on_result: Callback | None = None,
             on_error: Callback | None = None) -> None:
        self._submit(self.reads, fn, args, on_result, on_error, False)

    def _deliver(self, on_result: Callback | None, on_error: Callback | None,
                 result: Any, error: BaseException | None) -> None:
        self.pending -= 1
        if not self.closed:
            try:
                if error is not None:
                    if on_error is not None:
                        on_error(error)
                    else:
                        logger.error("background task failed: %s", error)
                elif on_result is not None:
                    on_result(result)
            except Exception:
                logger.exception("UI callback failed")
        if self.pending == 0:
            self.idle.emit()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop delivering, wait for running work, close the per-thread connections."""
        self.closed = True
        self.reads.waitForDone(timeout_ms)
        self.writes.waitForDone(timeout_ms)
        with self._lock:
            for app in self._apps:
                try:
                    app.close()
                except Exception:  # a connection still in use by a stuck thread
                    logger.debug("could not close a thread connection", exc_info=True)
            self._apps.clear()
