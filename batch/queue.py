"""The Huey queue and its thin task wrappers.

SQLite (``queue.db`` in the home folder) by default; Huey's own Redis storage when
``queue_url`` is a ``redis://`` URL, so workers on several machines share one queue.
The queue carries only upload ids. Huey deletes a message when it dequeues it; the state
database decides what still has to run, and the worker re-sends QUEUED uploads the queue
has lost. Task names are the ones operators know from the runbook.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from batch.hueyload import Huey, RedisHuey, SqliteHuey
from core.config import Settings
from core.errors import PeakOpsError
from core.urls import redacted_url, url_scheme

logger = logging.getLogger(__name__)

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


class QueueUnreachableError(PeakOpsError):
    """The queue's server cannot be reached now; the state database still holds the work."""

    transient = True


class Executor(Protocol):
    """What the tasks call: the worker supervisor in the consumer process."""

    def run_upload(self, upload_id: int, *, kind: str) -> str: ...


_executor: Executor | None = None


def set_executor(executor: Executor | None) -> None:
    global _executor
    _executor = executor


def _current() -> Executor:
    if _executor is None:
        raise RuntimeError("PeakOps tasks run only inside `peakops worker`")
    return _executor


@dataclass(frozen=True)
class Queue:
    huey: Huey
    process_video_upload: Any
    reprocess_video_from_s3: Any
    analyze_video: Any
    where: str = "the queue"
    """Where the queue is, safe to show (a Redis URL with its password redacted)."""

    def enqueue(self, upload_ids: Iterable[int], kind: str = "process") -> int:
        """Send upload ids; QueueUnreachableError when the queue's server is down."""
        task = {"process": self.process_video_upload, "reprocess": self.reprocess_video_from_s3,
                "analyze": self.analyze_video}[kind]
        count = 0
        with self.reachable():
            for upload_id in upload_ids:
                task(int(upload_id))
                count += 1
        return count

    def receive(self) -> Any:
        """The next message, or None when there is none (Redis waits up to a second)."""
        with self.reachable():
            return self.huey.dequeue()

    @contextlib.contextmanager
    def reachable(self) -> Iterator[None]:
        """Turn the queue server's connection errors into QueueUnreachableError."""
        try:
            yield
        except _UNREACHABLE as exc:  # redis-py's messages carry no password
            raise QueueUnreachableError(f"queue {self.where} unreachable: {exc}") from None

    def pending_upload_ids(self) -> set[int]:
        return {t.args[0] for t in self.huey.pending() if t.args}


def make_huey(settings: Settings, name: str = "peakops") -> Huey:
    """RedisHuey for a ``redis://`` queue URL, SqliteHuey otherwise."""
    if url_scheme(settings.queue_url) in ("redis", "rediss"):
        # Blocking dequeue: an idle worker waits in Redis (BRPOP, 1 s at a time) instead
        # of polling, and wakes as soon as a message arrives.
        return RedisHuey(name, url=settings.queue_url, results=False, blocking=True,
                         read_timeout=1)
    settings.queue_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(settings.queue_path), results=False, timeout=30)


def describe_queue(settings: Settings) -> str:
    """Where the queue is and how many messages wait; raises if it cannot be reached."""
    queue = make_queue(settings)
    try:
        with queue.reachable():
            waiting = queue.huey.pending_count()
    finally:
        if isinstance(queue.huey, RedisHuey):
            queue.huey.storage.pool.disconnect()
    kind = "Redis" if isinstance(queue.huey, RedisHuey) else "SQLite"
    return f"{kind} at {queue.where} ({waiting} message(s) waiting)"


def make_queue(settings: Settings) -> Queue:
    huey = make_huey(settings)

    @huey.task(name="process_video_upload")
    def process_video_upload(upload_id: int) -> None:
        _current().run_upload(upload_id, kind="process")

    @huey.task(name="reprocess_video_from_s3")
    def reprocess_video_from_s3(upload_id: int) -> None:
        """Re-run from the stored object (any store; the name is the runbook's)."""
        _current().run_upload(upload_id, kind="reprocess")

    @huey.task(name="analyze_video")
    def analyze_video(upload_id: int) -> None:
        """Analyse the recorded frames again (``peakops analyze``, the console's re-analyse)."""
        _current().run_upload(upload_id, kind="analyze")

    # Retention cleanup (the runbook's cleanup_expired_inspections) is an APScheduler job
    # of the scheduler and `peakops cleanup`, not a queue task.
    where = redacted_url(settings.queue_url) if isinstance(huey, RedisHuey) \
        else str(settings.queue_path)
    return Queue(huey, process_video_upload, reprocess_video_from_s3, analyze_video, where)


def enqueue(settings: Settings, upload_ids: Iterable[int], kind: str = "process") -> int:
    """Put uploads on the queue (used by submit, retry and the console)."""
    return make_queue(settings).enqueue(upload_ids, kind)


def sender(settings: Settings) -> Callable[[list[int], str], None]:
    """The queue hook an entry point gives :func:`core.app.open_app` (``send_queued``)."""
    def send(upload_ids: list[int], kind: str = "process") -> None:
        enqueue(settings, upload_ids, kind)
    return send
