"""Submitting a video: validate, hash, store, record. One path, used by CLI and console."""

from __future__ import annotations

import logging
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from core import jobs, media
from core.app import App, process_owner
from core.errors import InputError, PeakOpsError
from core.storage import ProgressCallback, sha256_file, video_key

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class SubmitResult:
    upload_id: int
    name: str
    status: str
    duplicate_of: int | None = None

    @property
    def duplicate(self) -> bool:
        return self.duplicate_of is not None


def display_name(path: Path | str) -> str:
    """The file's base name made safe to show and store as text (never used as a path)."""
    name = Path(str(path)).name or str(path).replace("/", "_")  # "/" has no base name
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch if unicodedata.category(ch)[0] != "C" else "?" for ch in name).strip()
    if len(name) > MAX_NAME_CHARS:
        name = name[:MAX_NAME_CHARS - 1] + "…"
    return name or "unnamed"


def check_file(path: Path, max_bytes: int) -> int:
    """Cheap checks before reading: exists, regular file, not empty, under the cap."""
    name = display_name(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(f"{name}: no such file ({path})") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{name}: is a folder, not a video file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{name}: is not a regular file")
    if info.st_size == 0:
        raise InputError(f"{name}: the file is empty (0 bytes)")
    if info.st_size > max_bytes:
        raise InputError(f"{name}: {info.st_size / 1048576:.1f} MB is over the "
                         f"{max_bytes // 1048576} MB limit (MAX_VIDEO_SIZE_MB)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{name}: no permission to read it")
    return info.st_size


def _drop_unreferenced(app: App, key: str) -> None:
    if not jobs.key_shared(app.db, key):
        try:
            app.store.delete(key)
        except PeakOpsError as exc:
            logger.warning("could not delete the unused stored copy %s: %s", key, exc)


def submit_file(app: App, path: Path, *, mode: str = jobs.MODE_NOW, priority: int = 0,
                on_progress: ProgressCallback | None = None) -> SubmitResult:
    """Validate ``path`` and record it as an upload; raise InputError for unusable files.

    Files failing the cheap checks are refused before any record exists. Once a record
    exists, any later failure leaves it FAILED with a category, and nothing half-stored.
    Content already submitted (same SHA-256) is reported as a duplicate, not stored twice.
    """
    settings = app.settings
    path = Path(path)
    name = display_name(path)
    size = check_file(path, settings.max_video_bytes)
    probing = media.start_probe(path, name=name)  # reads the header while the file is hashed
    try:
        sha256 = sha256_file(path)
        existing = jobs.find_by_sha256(app.db, sha256)
        if existing is not None:
            probing.cancel()
            return SubmitResult(existing["id"], name, existing["status"],
                                duplicate_of=existing["id"])
        owner = process_owner("submit")
        upload_id = jobs.create_upload(app.db, original_name=name, sha256=sha256, size=size,
                                       mode=mode, owner=owner, priority=priority,
                                       lease_seconds=max(settings.lease_seconds, 600))
    except BaseException as exc:
        probing.cancel()
        if isinstance(exc, FileNotFoundError):
            raise InputError(f"{name}: the file vanished while it was being read") from None
        raise
    key = video_key(sha256)
    stored = False
    try:
        facts = probing.result(upload_id=upload_id)
        app.store.put_file(key, path, on_progress)
        stored = True
        status = jobs.mark_stored(app.db, upload_id, storage_key=key, probe=facts.as_dict())
    except PeakOpsError as exc:
        exc.upload_id = upload_id
        jobs.fail(app.db, upload_id, exc, owner=owner, max_attempts=0)
        if stored:  # cancelled meanwhile: the copy belongs to no upload
            _drop_unreferenced(app, key)
        raise
    except BaseException as exc:  # interrupted: never leave the record in UPLOADING
        probing.cancel()
        jobs.fail(app.db, upload_id, InputError(f"{name}: submission interrupted ({exc!r})"),
                  owner=owner, max_attempts=0)
        raise
    logger.info("upload %s: %s stored as %s, %s", upload_id, name, key, status)
    return SubmitResult(upload_id, name, status)
