"""The Huey queue and its thin task wrappers.

SQLite (``queue.db`` in the home folder) by default; Huey's own Redis storage when
``queue_url`` is a ``redis://`` URL, so workers on several machines share one queue.
The queue carries only upload ids, as one task (the runbook's ``process_video_upload``).
Huey deletes a message when it dequeues it; the state database decides what still has
to run, and the worker re-sends QUEUED uploads the queue has lost. One queue per process
(:func:`shared_queue`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from batch.hueyload import Huey, RedisHuey, SqliteHuey, enable_redis
from core.config import Settings
from core.errors import PeakOpsError
from core.urls import redacted_url, url_scheme

logger = logging.getLogger(__name__)


class QueueUnreachableError(PeakOpsError):
    """The queue's server cannot be reached now; the state database still holds the work."""

    transient = True


TASK_NAME = "process_video_upload"
"""The one task: an upload id to run. Process, reprocess and analyze all send it; the
entry point that sent it already made the upload QUEUED (frames or labels dropped) and
the job resumes from what is recorded, so the message needs no kind."""


@dataclass(frozen=True)
class Queue:
    """One process's queue: ``enqueue`` sends upload ids, ``receive`` takes the next one.

    The worker never executes a message through Huey: it reads the upload id and gives it
    to its job runner, so no task body and no module-global executor are involved.
    """

    huey: Huey
    task: Any
    where: str = "the queue"
    """Where the queue is, safe to show (a Redis URL with its password redacted)."""

    def enqueue(self, upload_ids: Iterable[int]) -> int:
        """Send upload ids; QueueUnreachableError when the queue's server is down."""
        count = 0
        with self.reachable():
            for upload_id in upload_ids:
                self.task(int(upload_id))
                count += 1
        return count

    def receive(self) -> int | None:
        """The next message's upload id, or None when there is none (Redis waits up to a
        second)."""
        with self.reachable():
            message = self.huey.dequeue()
        return upload_id_of(message) if message is not None else None

    @contextlib.contextmanager
    def reachable(self) -> Iterator[None]:
        """Turn the queue server's connection errors into QueueUnreachableError."""
        try:
            yield
        except _unreachable(self.huey) as exc:  # redis-py's messages carry no password
            raise QueueUnreachableError(f"queue {self.where} unreachable: {exc}") from None

    def pending_upload_ids(self) -> set[int]:
        return {t.args[0] for t in self.huey.pending() if t.args}

    def close(self) -> None:
        """Drop the Redis connection pool (SQLite opens a connection per call)."""
        if isinstance(self.huey, RedisHuey):
            self.huey.storage.pool.disconnect()


def _unreachable(huey: Huey) -> tuple[type[Exception], ...]:
    """The errors that mean the queue's server is down: redis-py's connection errors for a
    Redis queue (redis is imported only there), none for SQLite's local file."""
    if not isinstance(huey, RedisHuey):
        return ()
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    return (RedisConnectionError, RedisTimeoutError)


def upload_id_of(message: Any) -> int | None:
    """The upload id a queue message carries (None for a message that is not ours)."""
    if getattr(message, "name", None) != TASK_NAME or not message.args:
        logger.warning("queue message %r is not an upload id; dropped", message)
        return None
    return int(message.args[0])


def client_name() -> str:
    """The name this process's queue connections carry on the Redis server."""
    return f"peakops-{os.getpid()}"


def make_huey(settings: Settings, name: str = "peakops") -> Huey:
    """RedisHuey for a ``redis://`` queue URL, SqliteHuey otherwise."""
    if url_scheme(settings.queue_url) in ("redis", "rediss"):
        # Blocking dequeue: an idle worker waits in Redis (BRPOP, 1 s at a time) instead
        # of polling, and wakes as soon as a message arrives.
        # Named connections: Redis's CLIENT LIST shows which process holds each one.
        enable_redis()  # redis is loaded only here: a worker on SQLite never holds it
        from redis import ConnectionPool
        pool = ConnectionPool.from_url(settings.queue_url, client_name=client_name())
        return RedisHuey(name, connection_pool=pool, results=False, blocking=True,
                         read_timeout=1)
    settings.queue_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(settings.queue_path), results=False, timeout=30)


def describe_queue(settings: Settings) -> str:
    """Where the queue is and how many messages wait; raises if it cannot be reached."""
    queue = shared_queue(settings)
    with queue.reachable():
        waiting = queue.huey.pending_count()
    kind = "Redis" if isinstance(queue.huey, RedisHuey) else "SQLite"
    return f"{kind} at {queue.where} ({waiting} message(s) waiting)"


def make_queue(settings: Settings) -> Queue:
    """A new queue on the settings' storage; most callers want :func:`shared_queue`."""
    huey = make_huey(settings)

    @huey.task(name=TASK_NAME)
    def process_video_upload(upload_id: int) -> None:
        raise RuntimeError(f"upload {upload_id}: queue messages are run by `peakops worker`'s "
                           "job runner, not executed by Huey")

    # Retention cleanup (the runbook's cleanup_expired_inspections) is an APScheduler job
    # of the scheduler and `peakops cleanup`, not a queue task.
    where = redacted_url(settings.queue_url) if isinstance(huey, RedisHuey) \
        else str(settings.queue_path)
    return Queue(huey, process_video_upload, where)


_queues: dict[tuple[str, str], Queue] = {}
_queues_lock = threading.Lock()


def shared_queue(settings: Settings) -> Queue:
    """This process's one queue for the settings' queue location, made on first use.

    Every sender of a process (submit, retry, the console, the scheduler's dispatch, the
    worker's re-sends) shares it, so a process opens one Redis connection pool, not one
    per message. :func:`close_queues` drops them at exit.
    """
    key = (settings.queue_url or "", str(settings.queue_path))
    with _queues_lock:
        queue = _queues.get(key)
        if queue is None:
            queue = _queues[key] = make_queue(settings)
        return queue


def close_queues() -> None:
    with _queues_lock:
        for queue in _queues.values():
            queue.close()
        _queues.clear()


atexit.register(close_queues)


def enqueue(settings: Settings, upload_ids: Iterable[int]) -> int:
    """Put uploads on this process's queue (used by submit, retry and the console)."""
    return shared_queue(settings).enqueue(upload_ids)


def sender(settings: Settings) -> Callable[..., None]:
    """The queue hook an entry point gives :func:`core.app.open_app` (``send_queued``)."""
    def send(upload_ids: list[int], kind: str = "process") -> None:
        enqueue(settings, upload_ids)  # every kind is the same message (TASK_NAME)
    return send
