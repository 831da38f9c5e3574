"""Submitting a video: check, copy once (hashing, capped), probe, store, record.

One path, used by the CLI and the console.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core import media
from core.app import App, process_owner
from core.errors import (
    DatabaseConstraintError,
    InputError,
    InternalError,
    PeakOpsError,
    StorageError,
)
from core.holdpoint import wait_at_submit
from core.liveness import owner_alive
from core.naming import safe_name
from core.storage import staging
from core.storage.local import ProgressCallback, disk_full, video_key
from core.store import lifecycle, queries
from core.store.db import when_unlocked

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


# Symlinks, wherever they sit in the path (the file or any folder above it), never lead
# into the system folders, and a link made by someone other than root is followed only
# to a regular file of that link's owner, through folders that owner may enter: a link
# planted in a shared folder cannot make a privileged submitter read (and record the
# size and hash of) someone else's file, such as /etc/shadow, or a file inside another
# user's private (0700) folder. Root's own links (``/home -> /data/home``) are trusted:
# only root can make them, and root could read the file anyway.
SYSTEM_FOLDERS = tuple(Path(p) for p in (
    "/etc", "/proc", "/sys", "/dev", "/run", "/boot", "/var/lib", "/var/log", "/var/run",
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"))
DUPLICATE_WAIT_S = 120.0
"""How long a second submitter of the same content waits for the first one's outcome."""


def _link_owners(path: Path) -> set[int]:
    """The owners of the symlinks met in ``path``, component by component."""
    full = path if path.is_absolute() else Path.cwd() / path  # no "..": it is resolved later
    owners = set()
    for prefix in (*reversed(full.parents[:-1]), full):
        try:
            info = prefix.lstat()
        except OSError:
            break  # reported by the caller's own lstat/stat
        if stat.S_ISLNK(info.st_mode):
            owners.add(info.st_uid)
    return owners


def _untrusted(owners: set[int]) -> set[int]:
    return {owner for owner in owners if owner != 0}


def _may_enter(folder: os.stat_result, uid: int) -> bool:
    if folder.st_mode & stat.S_IXOTH:
        return True
    if folder.st_uid == uid:
        return bool(folder.st_mode & stat.S_IXUSR)
    if folder.st_mode & stat.S_IXGRP:
        try:
            import pwd
            entry = pwd.getpwuid(uid)
            return folder.st_gid in os.getgrouplist(entry.pw_name, entry.pw_gid)
        except (KeyError, OSError):
            return False
    return False


def _check_links(path: Path, name: str, owners: set[int]) -> os.stat_result:
    """Apply the symlink rule to the resolved path; return the target's stat."""
    try:
        target = path.stat()
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise InputError(f"{name}: a symlink to a missing file") from None
    except OSError as exc:
        raise InputError(f"{name}: a symlink that cannot be followed: {exc.strerror}") from None
    if any(resolved == folder or folder in resolved.parents for folder in SYSTEM_FOLDERS):
        raise InputError(f"{name}: a symlink into a system folder ({resolved.parent})")
    if not stat.S_ISREG(target.st_mode):
        raise InputError(f"{name}: a symlink to something that is not a regular file")
    owners = _untrusted(owners)
    if any(target.st_uid != owner for owner in owners):
        raise InputError(f"{name}: a symlink to a file of another owner (symlinks are followed "
                         "only to files with the link's own owner)")
    for folder in resolved.parents if owners else ():
        info = folder.stat()
        if not all(_may_enter(info, owner) for owner in owners):
            raise InputError(f"{name}: a symlink into a folder the link's owner cannot enter "
                             f"({folder}, mode {stat.S_IMODE(info.st_mode):o})")
    return target


def open_source(path: Path, max_bytes: int) -> tuple[BinaryIO, int]:
    """Open the file once for reading, after the cheap checks: exists, regular, not empty,
    under the cap, and the symlink rule. The checks read the opened file (fstat), so a
    file swapped for another between check and open is refused, not read."""
    name = display_name(path)
    try:
        link = path.lstat()
    except FileNotFoundError:
        raise InputError(f"{name}: no such file ({path})") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read: {exc.strerror}") from None
    owners = _link_owners(path)
    expected = _check_links(path, name, owners) if owners else link
    if stat.S_ISDIR(expected.st_mode):
        raise InputError(f"{name}: is a folder, not a video file")
    if not stat.S_ISREG(expected.st_mode):
        raise InputError(f"{name}: is not a regular file")
    try:  # O_NONBLOCK: a FIFO swapped in after the check must not block the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except PermissionError:
        raise InputError(f"{name}: no permission to read it") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read: {exc.strerror}") from None
    handle = os.fdopen(fd, "rb")
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (expected.st_dev, expected.st_ino):
            raise InputError(f"{name}: the file was replaced while it was being opened")
        if info.st_size == 0:
            raise InputError(f"{name}: the file is empty (0 bytes)")
        if info.st_size > max_bytes:
            raise _too_big(name, info.st_size, max_bytes)
    except BaseException:
        handle.close()
        raise
    return handle, info.st_size


def _too_big(name: str, size: int, max_bytes: int) -> InputError:
    return InputError(f"{name}: {size / 1048576:.1f} MB is over the "
                      f"{max_bytes // 1048576} MB limit (MAX_VIDEO_SIZE_MB)")


def check_file(path: Path, max_bytes: int) -> int:
    """The cheap checks of :func:`open_source` alone; returns the size."""
    handle, size = open_source(path, max_bytes)
    handle.close()
    return size


@dataclass(frozen=True)
class Staged:
    path: Path
    sha256: str
    size: int
    sync: staging.Sync   # the fsync running on a thread


def _staging_folder(app: App) -> Path:
    make = getattr(app.store, "staging_folder", None)  # the local store: beside the objects
    if make is not None:
        return make()
    folder = app.settings.tmp_dir / f"job-submit.{uuid.uuid4().hex}-{os.getpid()}"
    folder.mkdir(parents=True)
    return folder


def stage(app: App, source: BinaryIO, name: str, on_progress: ProgressCallback | None) -> Staged:
    """Copy ``source`` once into a staging file (a reflink where the filesystem can),
    hashing it and enforcing the size cap as it goes: what is recorded is exactly what is
    stored, even if the file changes. Not yet fsynced: ``Staged.sync.wait()`` before the
    copy is recorded as stored."""
    max_bytes = app.settings.max_video_bytes
    try:
        folder = _staging_folder(app)
    except OSError as exc:
        raise StorageError(f"cannot stage {name}: {exc.strerror}", errno=exc.errno,
                           transient=disk_full(exc)) from None
    staged = folder / safe_name(name, fallback="video", keep_suffix=True)
    try:
        with staged.open("w+b") as out:
            sha256, size, how = staging.copy_hashing(source, out, max_bytes=max_bytes,
                                                     on_progress=on_progress)
        if size == 0:
            raise InputError(f"{name}: the file is empty (0 bytes)")
        logger.debug("%s: staged by %s (%s bytes)", name, how, size)
        return Staged(staged, sha256, size, staging.Sync(staged))
    except staging.TooBigError:
        shutil.rmtree(folder, ignore_errors=True)
        raise InputError(f"{name}: grew past the {max_bytes // 1048576} MB limit "
                         "(MAX_VIDEO_SIZE_MB) while it was being copied") from None
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if disk_full(exc):
            raise StorageError(f"{folder.parent}: disk full, cannot copy {name} "
                               f"({exc.strerror})", errno=exc.errno, transient=True) from None
        raise StorageError(f"cannot copy {name}: {exc.strerror}", errno=exc.errno) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _durable(staged: Staged, name: str) -> None:
    """Wait for the staged copy's fsync (started when it was made); its failure is the
    store's."""
    try:
        staged.sync.wait()
    except OSError as exc:
        raise StorageError(f"cannot copy {name}: {exc.strerror}", errno=exc.errno,
                           transient=disk_full(exc)) from None


def _store_staged(app: App, key: str, staged: Staged,
                  on_progress: ProgressCallback | None) -> None:
    put_staged = getattr(app.store, "put_staged", None)
    if put_staged is not None:
        put_staged(key, staged.path)
    else:  # a remote store: its upload is the long part, and reports the progress
        app.store.put_file(key, staged.path, on_progress)


def _drop_unreferenced(app: App, key: str) -> None:
    if not queries.key_shared(app.db, key):
        try:
            app.store.delete(key)
        except PeakOpsError as exc:
            logger.warning("could not delete the unused stored copy %s: %s", key, exc)


def _settled(app: App, upload_id: int) -> dict:
    """The upload once it has left UPLOADING (another submitter's), or as it is after
    :data:`DUPLICATE_WAIT_S`."""
    deadline = time.monotonic() + DUPLICATE_WAIT_S
    logger.info("upload %s: the same content is being submitted there; waiting for its "
                "outcome", upload_id)
    while True:
        row = queries.get_upload(app.db, upload_id)
        if row["status"] != lifecycle.UPLOADING or time.monotonic() > deadline:
            return row
        if row["lease_owner"] and not owner_alive(row["lease_owner"]):
            # Its submitter died on this host (killed mid-copy): fail that record now
            # rather than wait out its lease, and go ahead with this submission.
            changed = lifecycle.reset_stuck(app.db, max_attempts=app.settings.max_attempts,
                                            owner_alive=owner_alive)
            app.queued(i for i, status in changed if status == lifecycle.QUEUED)
            logger.info("upload %s: its submitter %s is gone; its record was reset",
                        upload_id, row["lease_owner"])
            continue
        time.sleep(0.1)


def _record(app: App, name: str, staged: Staged, mode: str, priority: int,
            owner: str) -> int | SubmitResult:
    """A new UPLOADING row for the staged content, or the result naming the live upload
    that already holds it (the database's unique index decides between racing submits)."""
    settings = app.settings
    while True:
        existing = queries.find_by_sha256(app.db, staged.sha256)
        if existing is not None:
            row = _settled(app, existing["id"]) if existing["status"] == lifecycle.UPLOADING \
                else existing
            if row["status"] == lifecycle.FAILED and not row["storage_key"]:
                continue  # the other submission failed: this one may go ahead
            return SubmitResult(row["id"], name, row["status"], duplicate_of=row["id"])
        refused = queries.find_refused(app.db, staged.sha256)
        if refused is not None:
            raise InputError(f"{name}: already refused as upload {refused['id']}: "
                             f"{refused['error_message']} (delete upload {refused['id']} to "
                             "submit it again)", upload_id=refused["id"])
        try:  # the copy is made: a lock held by another writer is waited out
            return when_unlocked(lambda: lifecycle.create_upload(
                app.db, original_name=name, sha256=staged.sha256, size=staged.size, mode=mode,
                owner=owner, priority=priority,
                lease_seconds=max(settings.lease_seconds, 600)), what=f"the record of {name}")
        except DatabaseConstraintError:
            continue  # another submit of this content got in first: report it


def submit_file(app: App, path: Path, *, mode: str = lifecycle.MODE_NOW, priority: int = 0,
                on_progress: ProgressCallback | None = None) -> SubmitResult:
    """Validate ``path`` and record it as an upload; raise InputError for unusable files.

    The file is read once: copied into a staging file in the store while it is hashed and
    held to the size cap; the staged copy is probed, then renamed into place. Files
    failing the cheap checks or the copy are refused before any record exists; content
    refused before is refused again without a new record. Once a record exists, any later
    failure leaves it FAILED with a category, and nothing half-stored. Content already
    submitted (same SHA-256) is reported as a duplicate, not stored twice.
    """
    path = Path(path)
    name = display_name(path)
    source, _ = open_source(path, app.settings.max_video_bytes)
    stages_locally = hasattr(app.store, "put_staged")
    with source:
        staged = stage(app, source, name, on_progress if stages_locally else None)
    try:
        probing = media.start_probe(staged.path, name=name)  # while the record is made
        owner = process_owner("submit")
        try:
            recorded = _record(app, name, staged, mode, priority, owner)
        except BaseException:
            probing.cancel()
            raise
        if isinstance(recorded, SubmitResult):
            probing.cancel()
            return recorded
        upload_id = recorded
        key = video_key(staged.sha256)
        stored = False
        try:
            wait_at_submit(app.settings.hold_file, upload_id)
            facts = probing.result(upload_id=upload_id)
            _durable(staged, name)
            _store_staged(app, key, staged, None if stages_locally else on_progress)
            stored = True
            status = when_unlocked(lambda: lifecycle.mark_stored(
                app.db, upload_id, storage_key=key, probe=facts.as_dict()),
                what=f"the record of {name}")
        except PeakOpsError as exc:
            exc.upload_id = upload_id
            lifecycle.fail(app.db, upload_id, exc, owner=owner, status=lifecycle.FAILED)
            if stored:  # cancelled meanwhile: the copy belongs to no upload
                _drop_unreferenced(app, key)
            raise
        except BaseException as exc:  # interrupted: never leave the record in UPLOADING
            probing.cancel()
            lifecycle.fail(app.db, upload_id,
                      InternalError(f"{name}: submission interrupted ({exc!r})"),
                      owner=owner, status=lifecycle.FAILED)
            raise
    finally:
        shutil.rmtree(staged.path.parent, ignore_errors=True)
    logger.info("upload %s: %s stored as %s, %s", upload_id, name, key, status)
    return SubmitResult(upload_id, name, status)
