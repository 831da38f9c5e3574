"""The Huey queue (SQLite, ``queue.db`` in the home folder) and its thin task wrappers.

The queue carries only upload ids. Huey deletes a message when it dequeues it; the state
database decides what still has to run, and the worker re-sends QUEUED uploads the queue
has lost. Task names are the ones operators know from the runbook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from huey import SqliteHuey

from core.config import Settings

logger = logging.getLogger(__name__)


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
    huey: SqliteHuey
    process_video_upload: Any
    reprocess_video_from_s3: Any
    analyze_video: Any

    def enqueue(self, upload_ids: Iterable[int], kind: str = "process") -> int:
        task = {"process": self.process_video_upload, "reprocess": self.reprocess_video_from_s3,
                "analyze": self.analyze_video}[kind]
        count = 0
        for upload_id in upload_ids:
            task(int(upload_id))
            count += 1
        return count

    def describe(self) -> str:
        """Where the queue lives, for the worker's start line."""
        return f"SQLite {self.huey.storage.filename}"

    def pending_upload_ids(self) -> set[int]:
        return {t.args[0] for t in self.huey.pending() if t.args}


def make_queue(settings: Settings) -> Queue:
    settings.home.mkdir(parents=True, exist_ok=True)
    huey = SqliteHuey("peakops", filename=str(settings.home / "queue.db"), results=False,
                      timeout=30)

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
    return Queue(huey, process_video_upload, reprocess_video_from_s3, analyze_video)


def enqueue(settings: Settings, upload_ids: Iterable[int], kind: str = "process") -> int:
    """Put uploads on the queue (used by submit, retry and the console)."""
    return make_queue(settings).enqueue(upload_ids, kind)


def sender(settings: Settings) -> Callable[[list[int], str], None]:
    """The queue hook an entry point gives :func:`core.app.open_app` (``send_queued``)."""
    def send(upload_ids: list[int], kind: str = "process") -> None:
        enqueue(settings, upload_ids, kind)
    return send
