"""Processing one claimed upload: fetch -> probe -> extract -> analyse -> record.

Checkpointed per frame: a frame row is written as soon as its image is stored, and
labels as soon as it is analysed, so a rerun after a crash or kill skips finished work.
Frame indices refer to the full plan of ``max_frames_per_video`` timestamps; a degraded
retry takes a subset of the same plan, so earlier frames stay valid.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import media
from core.analysis.local import SharedBudget, measure
from core.app import App, temp_dir_for
from core.errors import (
    CancelledError,
    DatabaseBusyError,
    DatabaseFullError,
    InputError,
    InternalError,
    MemoryLimitError,
    PeakOpsError,
    StorageError,
)
from core.holdpoint import wait_at_hold_point
from core.jobs import settle
from core.storage.local import MissingObjectError, disk_full, frame_key
from core.store import frames as frame_records
from core.store import lifecycle, queries
from core.store.db import transaction, when_unlocked

logger = logging.getLogger(__name__)

SCRATCH_NAME = "video"
"""The fetched copy's name: neutral, so no user-chosen suffix sways libav's demuxer choice."""

ProgressFn = Callable[[str, int, int], None]
"""Called with (stage, done, total) whenever the job moves on."""


@dataclass(frozen=True)
class JobResult:
    upload_id: int
    frames_total: int
    frames_extracted: int   # extracted in this run (the rest came from a checkpoint)
    frames_analysed: int    # analysed in this run
    labels: int


class _PipelineRun:
    """One run of the pipeline for one upload, by one lease owner."""

    def __init__(self, app: App, upload_id: int, owner: str, on_progress: ProgressFn | None):
        self.app, self.upload_id, self.owner = app, upload_id, owner
        self.on_progress = on_progress
        self.settings = app.settings
        self.resources = contextlib.ExitStack()  # the open video; closed when the run ends
        self.reader = None  # the video read by range, when the store serves ranges

    def step(self, stage: str, done: int, total: int) -> None:
        """Renew the lease with progress; stop if the upload is no longer ours."""
        if not lifecycle.renew_lease(self.app.db, self.upload_id, self.owner,
                                lease_seconds=self.settings.lease_seconds,
                                stage=stage, done=done, total=total):
            raise CancelledError(f"upload {self.upload_id} was cancelled or taken over",
                                 upload_id=self.upload_id)
        if self.on_progress:
            self.on_progress(stage, done, total)

    def fetch(self, row: dict, workdir: Path):
        """The video to decode: read by range where the store offers it (S3: only the
        header and the GOPs decoded come over the network, nothing lands on disk), else
        a scratch copy. A store that cannot serve ranges gets the whole download."""
        self.step("fetching", 0, 1)
        open_range = getattr(self.app.store, "open_range", None)
        if open_range is None or not row.get("probe"):  # no recorded facts: probe a copy
            return self.download(row, workdir)
        try:
            self.reader = self.resources.enter_context(open_range(row["storage_key"]))
        except MissingObjectError:
            raise
        except StorageError as exc:
            return self.download(row, workdir, why=exc.message)
        return self.reader

    def download(self, row: dict, workdir: Path, why: str | None = None) -> Path:
        video = workdir / "source" / SCRATCH_NAME
        video.parent.mkdir(exist_ok=True)
        size = self.app.store.get_file(row["storage_key"], video)
        if why is not None:
            lifecycle.record_event(self.app.db, self.upload_id, "fetch",
                                   f"range reads failed ({why}); downloaded the whole video "
                                   f"({size} bytes)")
        return video

    def check_reader(self) -> None:
        """Raise the ranged read's failure, if one happened. PyAV raises it again from
        the libav call that read; this check keeps a frame decoded after a failure that
        libav took as a short read from being recorded."""
        error = getattr(self.reader, "error", None)
        if error is not None:
            raise error

    def range_failure(self) -> str | None:
        """Why reading by range failed, if it did (libav may report it as a read error)."""
        error = getattr(self.reader, "error", None)
        return error.message if error is not None else None

    def record_range_read(self) -> None:
        reader = self.reader
        lifecycle.record_event(self.app.db, self.upload_id, "fetch",
                               f"video read by range: {reader.fetched} of {reader.size} bytes "
                               f"in {reader.requests} requests, no local copy")

    def facts(self, row: dict, video: Path) -> media.ProbeResult:
        """The probe recorded at submit; uploads from before it are probed here (job child)."""
        if row.get("probe"):
            return media.ProbeResult.from_json(row["probe"])
        try:
            return media.probe(video, upload_id=self.upload_id)
        except InputError as exc:
            exc.message = exc.message.replace(SCRATCH_NAME, row["original_name"], 1)
            raise

    def extract(self, row: dict, video: Path, workdir: Path) -> tuple[int, dict[int, Path]]:
        db = self.app.db
        level = row["degrade_level"] or 0
        indices, options = media.degrade_plan(level, self.settings.max_frames_per_video)
        options = dataclasses.replace(
            options, max_width=min(options.max_width, self.settings.frame_max_width),
            selection=row.get("frame_selection") or self.settings.frame_selection)
        facts = self.facts(row, video)
        source = self.resources.enter_context(
            self.app.extractor.open(video, facts, options, name=row["original_name"]))
        try:
            times = source.plan(self.settings.max_frames_per_video)
        except InputError as exc:
            self.check_reader()
            raise _degraded(exc, level) from None
        self.check_reader()
        index = getattr(source, "index", None)
        for note in getattr(index, "notes", ()):
            lifecycle.record_event(db, self.upload_id, "frames", note)
        if index is not None:
            frame_records.set_video_facts(db, self.upload_id, vfr=index.variable_rate())
        indices = [i for i in indices if i < len(times)]
        recorded = frame_records.timestamps(db, self.upload_id)
        todo = [i for i in indices if i not in recorded]
        frame_records.set_planned(db, self.upload_id, len(indices))
        images: dict[int, Path] = {}
        extracted = skipped = 0
        position = 0

        def heartbeat(decoded: int) -> None:  # renews the lease while a long read goes on
            self.step("extracting", position, len(indices))

        results = source.take(todo, lambda i: workdir / f"{i:04d}.jpg",
                              taken=recorded.values(), heartbeat=heartbeat)
        for slot in todo:
            position = indices.index(slot)
            self.step("extracting", position, len(indices))
            wait_at_hold_point(self.settings.hold_file, self.upload_id, position)
            try:
                result = next(results)
            except InputError as exc:
                self.check_reader()
                raise _degraded(exc, level) from None
            self.check_reader()
            if result.frame is None:
                skipped += 1
                lifecycle.record_event(db, self.upload_id, "frames",
                                       f"slot {result.slot}: no frame ({result.note})")
                continue
            frame = result.frame
            metrics = measure(frame.path)  # local metrics always, offline
            key = frame_key(self.upload_id, result.slot)
            self.app.store.put_file(key, frame.path)
            frame_records.record(db, self.upload_id, result.slot, timestamp=frame.timestamp,
                                 storage_key=key, width=frame.width, height=frame.height,
                                 metrics=metrics, facts=frame)
            images[result.slot] = frame.path
            extracted += 1
        if skipped:
            frame_records.set_planned(db, self.upload_id, len(indices) - skipped)
        self.step("extracting", len(indices), len(indices))
        return extracted, images

    def analyse(self, images: dict[int, Path], workdir: Path) -> tuple[int, int]:
        """Label every frame of the upload not analysed yet, in index order."""
        db = self.app.db
        frames = frame_records.for_analysis(db, self.upload_id)
        # Hashes of the frames analysed so far, in plan order: a frame is compared with
        # those before it (the one just before above all), also when a retry resumes.
        seen = [(f["idx"], int(f["dhash"], 16)) for f in frames if f["analyzed_at"] is not None]
        pending = [f for f in frames if f["analyzed_at"] is None]
        # Paid analyzers count calls per upload (budget and cost), kept across retries,
        # and take each call from the period's budget shared by every worker.
        analyzer = self.app.analyzer
        calls_recorded = frame_records.paid_calls(db, self.upload_id)
        analyzer.begin_upload(self.upload_id, calls_recorded)
        analyzer.use_budget(SharedBudget(db, analyzer.name))
        analysed = labels = 0
        for k, frame in enumerate(pending):
            self.step("analysing", k, len(pending))
            image = images.get(frame["idx"])
            if image is None or not image.exists():
                image = workdir / f"stored-{frame['idx']:04d}.jpg"
                self.app.store.get_file(frame["storage_key"], image)
            before = seen[:bisect.bisect_left(seen, (frame["idx"], -1))]
            result = analyzer.analyze(image, [h for _, h in before])
            bisect.insort(seen, (frame["idx"], result.metrics.dhash))
            duplicate_of = (None if result.near_duplicate_of is None
                            else before[result.near_duplicate_of][0])
            with transaction(db):
                frame_records.record_labels(db, frame["id"], result.labels,
                                            duplicate_of=duplicate_of)
                if analyzer.calls_made != calls_recorded:
                    calls_recorded = analyzer.calls_made
                    frame_records.set_paid_calls(db, self.upload_id, calls_recorded)
            analysed += 1
            labels += len(result.labels)
        self.step("analysing", len(pending), len(pending))
        return analysed, labels


def _degraded(exc: InputError, level: int) -> PeakOpsError:
    """At a degraded level a decode failure is the level's, not the video's."""
    if level == 0:
        return exc
    return MemoryLimitError(f"{exc.message} (at degrade level {level}, after the full decode "
                            "ran out of memory)", upload_id=exc.upload_id)


def _owned_row(app: App, upload_id: int, owner: str) -> dict:
    row = queries.get_upload(app.db, upload_id)
    if row["status"] != lifecycle.PROCESSING or row["lease_owner"] != owner:
        raise CancelledError(f"upload {upload_id} is {row['status']}, not being processed by "
                             f"{owner}", upload_id=upload_id)
    if not row["storage_key"]:
        raise InputError(f"upload {upload_id} has no stored video", upload_id=upload_id)
    return row


def run(app: App, upload_id: int, owner: str, *,
        on_progress: ProgressFn | None = None) -> JobResult:
    """Process a claimed upload (status PROCESSING, leased by ``owner``).

    Does not change the upload's final status: the caller completes or fails it, so that
    the worker supervisor can account for memory kills around the same call.
    Frames and labels already recorded are kept (a re-analysis dropped the labels
    before it queued the upload), so only what is missing is done.
    """
    job = _PipelineRun(app, upload_id, owner, on_progress)
    row = _owned_row(app, upload_id, owner)
    workdir = temp_dir_for(app.settings, upload_id)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        indices, _ = media.degrade_plan(row["degrade_level"] or 0,
                                        app.settings.max_frames_per_video)
        have = frame_records.indices(app.db, upload_id)
        extracted, images = 0, {}
        if not set(indices) <= have:
            video = job.fetch(row, workdir)
            try:
                extracted, images = job.extract(row, video, workdir)
            except PeakOpsError:
                why = job.range_failure() if video is job.reader else None
                if why is None:
                    raise
                # Frames recorded so far stay: the second pass skips them.
                job.reader = None
                video = job.download(row, workdir, why=why)
                extracted, images = job.extract(row, video, workdir)
            if video is job.reader:
                job.record_range_read()
        else:  # a lower level's attempt already stored every frame this level plans
            frame_records.set_planned(app.db, upload_id, len(indices))
        analysed, labels = job.analyse(images, workdir)
    except InputError as exc:
        exc.upload_id = upload_id
        raise
    except OSError as exc:
        if not disk_full(exc):
            raise
        raise StorageError(f"{workdir.parent}: disk full ({exc.strerror})", upload_id=upload_id,
                           transient=True) from None
    except DatabaseFullError:
        raise StorageError(f"state database {app.settings.db_path}: disk full",
                           upload_id=upload_id, transient=True) from None
    except DatabaseBusyError:
        raise DatabaseBusyError(f"upload {upload_id}: the state database stayed locked by "
                                "another writer", upload_id=upload_id) from None
    finally:
        job.resources.close()
        shutil.rmtree(workdir, ignore_errors=True)
    total = frame_records.count(app.db, upload_id)
    logger.info("upload %s: %s frames (%s extracted now), %s analysed, %s labels",
                upload_id, total, extracted, analysed, labels)
    return JobResult(upload_id, total, extracted, analysed, labels)


class JobInterrupted(KeyboardInterrupt):
    """``process_now`` was interrupted; the upload was handed back (``released``) at once
    rather than left PROCESSING until its lease ran out."""

    def __init__(self, upload_id: int, released: bool) -> None:
        super().__init__(upload_id, released)
        self.upload_id, self.released = upload_id, released


def process_now(app: App, upload_id: int, owner: str, *,
                on_progress: ProgressFn | None = None) -> str:
    """Claim, run and complete/fail one upload in *this* process, one attempt.

    For tests and tools that inject their own store, analyzer or extractor into ``app``.
    Every product entry point (worker, ``peakops process``, ``core.process``) goes
    through :class:`core.jobs.runner.JobRunner` instead, so libav runs in a job child
    under the memory limits.
    """
    if lifecycle.claim(app.db, upload_id, owner, lease_seconds=app.settings.lease_seconds) is None:
        row = queries.get_upload(app.db, upload_id)
        raise InputError(f"upload {upload_id} is {row['status']}, not QUEUED", upload_id=upload_id)
    what = f"upload {upload_id}'s outcome"
    try:
        run(app, upload_id, owner, on_progress=on_progress)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into one by the entry point
        released = when_unlocked(lambda: lifecycle.release(
            app.db, upload_id, owner, reason="processing interrupted"), what=what)
        raise JobInterrupted(upload_id, released) from None
    except PeakOpsError as exc:
        failure: PeakOpsError = exc
    except Exception as exc:
        logger.exception("upload %s: unexpected error", upload_id)
        failure = InternalError(f"unexpected error: {exc!r}")
    else:
        when_unlocked(lambda: lifecycle.complete(app.db, upload_id, owner), what=what)
        return lifecycle.DONE
    decision = settle.decide_failure(failure, queries.get_upload(app.db, upload_id),
                                     max_attempts=1)
    return when_unlocked(lambda: lifecycle.write_failure(app.db, upload_id, decision,
                                                         owner=owner), what=what)
