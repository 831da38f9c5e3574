"""What ``import core`` offers a script: process a video, or work with a PeakOps home.

    import core

    result = core.process("clip.mp4", home="peakops-home")
    print(result.status, result.error)
    for frame in result.frames:
        print(frame.timestamp, frame.path, [label.name for label in frame.labels])

:func:`process` runs the pipeline in a memory-supervised job child, as the worker does,
and returns when the upload is DONE or FAILED. :func:`open` returns a :class:`PeakOps`
handle on a home folder, for scripts that submit, inspect, retry or cancel uploads a worker (``peakops worker``) runs.
Results are plain frozen objects; nothing here needs Qt, Huey or APScheduler.

A video read but not processable is a FAILED :class:`Result`, not an exception. What is
raised is a :class:`core.errors.PeakOpsError`: ``InputError`` (nothing could be recorded:
no such file, a folder, empty, too large), ``ConfigError`` (a bad setting),
``StorageError``/``HomeError`` (unusable home or store), ``NotFoundError`` (no such
upload id), ``StateError`` (the upload's status forbids the operation) and, in fleet
mode, ``DatabaseUnreachableError``.
"""

from __future__ import annotations

import builtins
import io
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from core.config import Settings, load_settings
from core.errors import PeakOpsError

__all__ = ["Frame", "Label", "PeakOps", "Result", "open", "process"]

QueuedHook = Callable[[list[int]], None]
"""Called with the ids of uploads an operation made QUEUED (to put them on a queue)."""


@dataclass(frozen=True)
class Label:
    """One label of a frame: what the analyzer saw, with its confidence (0-100)."""

    name: str
    confidence: float
    source: str


@dataclass(frozen=True)
class Frame:
    """One extracted frame: its time in the video (seconds), its image and its labels.

    ``path`` is the image file when the home stores objects in a local folder, else None
    (S3); :meth:`open` works with every store.
    """

    index: int
    timestamp: float
    key: str
    width: int | None
    height: int | None
    labels: tuple[Label, ...]
    path: Path | None
    _store: Any = field(repr=False, compare=False, default=None)

    def open(self) -> BinaryIO:
        """The JPEG image as a binary file object (the caller closes it)."""
        if self.path is not None:
            return self.path.open("rb")
        with tempfile.TemporaryDirectory(prefix="peakops-frame-") as folder:
            image = Path(folder) / "frame.jpg"
            self._store.get_file(self.key, image)
            return io.BytesIO(image.read_bytes())  # a frame is a small JPEG


@dataclass(frozen=True)
class Result:
    """An upload as a script sees it.

    ``status`` is one of UPLOADING, QUEUED, DEFERRED, PROCESSING, DONE, FAILED,
    CANCELLED; ``error`` is the one-line reason of a FAILED upload (``category`` says
    whether it was the input, storage, analysis, memory, a timeout or internal).
    """

    upload_id: int
    name: str
    status: str
    error: str | None
    category: str | None
    frames: tuple[Frame, ...]
    duplicate_of: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "DONE"


class PeakOps:
    """A handle on one PeakOps home: submit, get, list, retry, cancel, reprocess,
    analyze and delete uploads (the operations of :mod:`core.operations`).

    Use it as a context manager, or call :meth:`close`. ``on_queued`` is called with the
    ids an operation made QUEUED; without it a running worker finds them on its own
    (it re-sends QUEUED uploads whenever its queue is empty).
    """

    def __init__(self, settings: Settings, *, on_queued: QueuedHook | None = None) -> None:
        from core.app import open_app
        self.settings = settings
        # The App's queue hook is the one every operation uses (core.operations).
        self.app = open_app(settings, send_queued=None if on_queued is None
                            else lambda ids, kind: on_queued(ids))

    def __enter__(self) -> PeakOps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.app.close()

    def submit(self, path: str | Path, *, off_peak: bool = False) -> int:
        """Validate, store and record a video; return its upload id.

        A file already submitted returns the id of that upload. An unusable file raises
        :class:`core.errors.InputError` (its ``upload_id`` names the FAILED record when
        one was made).
        """
        from core import operations
        return operations.submit(self.app, Path(path), off_peak=off_peak).upload_id

    def get(self, upload_id: int) -> Result:
        """The upload with its frames and labels; NotFoundError if there is none."""
        from core.store import queries
        return self._result(queries.detail(self.app.db, upload_id))

    def list(self, status: str | Iterable[str] | None = None) -> builtins.list[Result]:
        """Every upload (or those in ``status``), oldest first, with frames."""
        from core.store import queries
        if isinstance(status, str):
            status = status.upper()
        elif status is not None:
            status = [s.upper() for s in status]
        return [self.get(row["id"]) for row in queries.list_uploads(self.app.db, status=status)]

    def retry(self, upload_id: int) -> Result:
        """FAILED, DONE or CANCELLED back to QUEUED (StateError otherwise)."""
        return self._one(upload_id, "retry")

    def cancel(self, upload_id: int) -> Result:
        """Cancel an upload that has not finished (StateError otherwise)."""
        return self._one(upload_id, "cancel")

    def reprocess(self, upload_id: int) -> Result:
        """Drop frames and labels and process again from the stored video (QUEUED)."""
        return self._one(upload_id, "reprocess")

    def analyze(self, upload_id: int) -> Result:
        """Keep the frames, analyse them again (QUEUED)."""
        return self._one(upload_id, "analyze")

    def delete(self, upload_id: int) -> None:
        """Delete the upload for good: video, frames, labels and activity (StateError
        while it is being stored or processed)."""
        self._one(upload_id, "delete", result=False)

    def reset_stuck(self) -> builtins.list[tuple[int, str]]:
        """Return uploads whose worker is gone to QUEUED or FAILED; (id, status) each."""
        from core import operations
        return builtins.list(operations.reset_stuck(self.app).statuses.items())

    def _one(self, upload_id: int, action: str, *, result: bool = True) -> Any:
        from core import operations
        outcome = getattr(operations, action)(self.app, [upload_id])
        if outcome.refused:
            raise outcome.refused[0][1]
        return self.get(upload_id) if result else None

    def process(self, upload_id: int) -> Result:
        """Run a QUEUED upload now and return it DONE or FAILED.

        The job runs in a job child under the memory limits (the hard limit with its
        degrade ladder, the timeouts), as in the worker; transient failures are retried
        after their backoff. libav never runs in this process.
        """
        from core.app import process_owner
        from core.jobs.runner import JobRunner, caller_log_level
        # The child logs as the script does (warnings only, unless it configured more).
        runner = JobRunner(self.app, owner=process_owner("lib"),
                           child_log_level=caller_log_level())
        try:
            runner.run_to_end(upload_id)
        finally:
            runner.close()
        return self.get(upload_id)

    def _result(self, detail: Any, duplicate_of: int | None = None) -> Result:
        from core.storage.local import LocalStore, check_key
        store = self.app.store
        local = store.root if isinstance(store, LocalStore) else None
        frames = tuple(
            Frame(index=f["idx"], timestamp=f["timestamp"], key=f["storage_key"],
                  width=f["width"], height=f["height"],
                  labels=tuple(Label(lb["name"], lb["confidence"], lb["source"])
                               for lb in f["labels"]),
                  path=local / check_key(f["storage_key"]) if local is not None else None,
                  _store=store)
            for f in detail.frames)
        row = detail.upload
        failed = row["status"] == "FAILED"
        return Result(upload_id=row["id"], name=row["original_name"], status=row["status"],
                      error=row["error_message"] if failed else None,
                      category=row["error_category"] if failed else None, frames=frames,
                      duplicate_of=duplicate_of)


def _settings(home: str | Path | None, overrides: dict[str, Any]) -> Settings:
    # An absolute home: frame paths stay valid if the script changes directory.
    values = {**overrides,
              "home": str(Path(home).expanduser().absolute()) if home is not None else None}
    return load_settings(overrides=values)


def open(home: str | Path | None = None, *, on_queued: QueuedHook | None = None,
         **overrides: Any) -> PeakOps:
    """A :class:`PeakOps` handle on ``home`` (default: ``$PEAKOPS_HOME``, else the platform
    data folder). ``overrides`` are settings by name, e.g. ``max_frames_per_video=5``;
    the config file and environment apply below them, as for the command line."""
    return PeakOps(_settings(home, overrides), on_queued=on_queued)


def process(path: str | Path, home: str | Path | None = None, **overrides: Any) -> Result:
    """Submit the video at ``path`` and process it now, in a job child; return it DONE or
    FAILED.

    Content that was already submitted is not processed again (unless it is QUEUED),
    whatever ``overrides`` say: the result is that upload as it is, with ``duplicate_of``
    set to its id. To redo it with new settings: ``open(home, **overrides)`` then
    ``reprocess(id)`` and ``process(id)``. An unusable file gives a FAILED result with the
    reason, or raises :class:`core.errors.InputError` when no upload could be recorded
    (e.g. no such file). ``overrides`` are settings by name, as for :func:`open`.
    """
    from core.intake import submit_file
    from core.store import lifecycle, queries
    with open(home, **overrides) as peakops:
        try:
            submitted = submit_file(peakops.app, Path(path))
        except PeakOpsError as exc:
            if exc.upload_id is None:
                raise
            return peakops.get(exc.upload_id)
        if submitted.status == lifecycle.QUEUED:
            return peakops.process(submitted.upload_id)
        detail = queries.detail(peakops.app.db, submitted.upload_id)
        return peakops._result(detail, duplicate_of=submitted.duplicate_of)
