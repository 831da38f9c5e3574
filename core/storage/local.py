"""Object stores: where videos and frame images live.

Keys are built by PeakOps from ids and hashes (:func:`video_key`, :func:`frame_key`),
never from a user's file name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from core.errors import InputError, StorageError
from core.liveness import pid_running

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes moved since the previous call (a delta)."""

_KEY = re.compile(r"[a-z0-9][a-z0-9/._-]*")
CHUNK = 1024 * 1024


def disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def video_key(sha256: str) -> str:
    return f"videos/{sha256[:2]}/{sha256}"


def frame_key(upload_id: int, index: int) -> str:
    return f"frames/{upload_id}/{index:04d}.jpg"


def check_key(key: str) -> str:
    """Refuse anything that is not a key PeakOps made (no '..', no absolute paths)."""
    if not _KEY.fullmatch(key) or ".." in key.split("/") or "//" in key:
        raise ValueError(f"invalid object key {key!r}")
    return key


class MissingObjectError(InputError):
    """The stored copy of a video is gone; the upload must be submitted again."""


@runtime_checkable
class ObjectStore(Protocol):
    """Contract every store (local folder, S3) fulfils.

    All methods raise :class:`StorageError` (category storage; ``transient`` when a retry
    may help) for failures of the store itself and :class:`MissingObjectError` when a key
    that should exist does not. Nothing half-written is ever visible under a key: a
    failed put leaves no object behind.
    """

    def put_file(self, key: str, source: Path, on_progress: ProgressCallback | None = None) -> int:
        """Store the file at ``source`` under ``key``; return the bytes stored."""

    def get_file(self, key: str, dest: Path, on_progress: ProgressCallback | None = None) -> int:
        """Copy the object to ``dest`` (streamed, never held in memory); return bytes."""

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing key is not an error."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    def describe(self) -> str:
        """One line naming where objects go, safe to print (no secrets)."""

    def location(self, key: str) -> str:
        """Where a person finds the object under ``key`` (a file path or a URL)."""

    def check(self) -> None:
        """Raise StorageError if the store cannot be written to now (for doctor)."""

    def sweep_partials(self) -> int:
        """Remove what writers that died mid-put left behind (never a finished object);
        return how many leftovers were removed. The reaper calls it."""


class LocalStore:
    """Objects as files under one folder (the default, under the home folder).

    A put writes to ``.partial/<pid>-<random>`` and renames into place, so a writer killed
    mid-copy leaves its partial file there (never beside the objects), where
    :meth:`sweep_partials` finds it by its dead pid. Keys cannot start with a dot.
    """

    PARTIAL_DIR = ".partial"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_file(self, key: str, source: Path, on_progress: ProgressCallback | None = None) -> int:
        target = self._path(key)
        part = self.root / self.PARTIAL_DIR / f"{os.getpid()}-{uuid.uuid4().hex}"
        copied = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            part.parent.mkdir(exist_ok=True)
            with source.open("rb") as src, part.open("wb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    copied += len(chunk)
                    if on_progress:
                        on_progress(len(chunk))
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(part, target)
        except FileNotFoundError as exc:
            with contextlib.suppress(OSError):
                part.unlink()
            if exc.filename == str(source):
                raise InputError(f"{source.name}: the file vanished while it was being stored",
                                 key=key) from None
            raise StorageError(f"local store {self.root}: cannot write {key}: {exc.strerror}",
                               key=key) from None
        except OSError as exc:
            with contextlib.suppress(OSError):
                part.unlink()
            if disk_full(exc):  # space may come back (a cleanup, a job ending): retry later
                raise StorageError(f"local store {self.root}: disk full, cannot write {key} "
                                   f"({exc.strerror})", key=key, errno=exc.errno,
                                   transient=True) from None
            raise StorageError(f"local store {self.root}: cannot write {key}: {exc.strerror}",
                               key=key, errno=exc.errno) from None
        return copied

    def get_file(self, key: str, dest: Path, on_progress: ProgressCallback | None = None) -> int:
        """Copy the object to ``dest``; a hard link when both are on one filesystem.

        Objects are never written in place (a put renames a new file over the key), so a
        link is as good as a copy for a reader, and saves reading and writing the whole
        video (1.4 s of a 9 s job for a 10-minute 1080p video).
        """
        source = self._path(key)
        with contextlib.suppress(OSError):  # another filesystem, no links, dest exists
            os.link(source, dest)
            size = dest.stat().st_size
            if on_progress:
                on_progress(size)
            return size
        try:
            with source.open("rb") as src, dest.open("wb") as dst:
                copied = 0
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    copied += len(chunk)
                    if on_progress:
                        on_progress(len(chunk))
            return copied
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                dest.unlink()
            raise MissingObjectError(f"the stored copy {key} is missing from {self.root}; "
                                     "submit the video again", key=key) from None
        except OSError as exc:
            with contextlib.suppress(OSError):
                dest.unlink()
            if disk_full(exc):
                raise StorageError(f"{dest.parent}: disk full, cannot copy {key} there "
                                   f"({exc.strerror})", key=key, errno=exc.errno,
                                   transient=True) from None
            raise StorageError(f"local store {self.root}: cannot read {key}: {exc.strerror}",
                               key=key, errno=exc.errno) from None

    def staging_folder(self) -> Path:
        """A new private folder beside the objects for a submission's single copy, so
        that storing it is a rename; swept by :meth:`sweep_partials` if its writer dies."""
        folder = self.root / self.PARTIAL_DIR / f"{os.getpid()}-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        return folder

    def put_staged(self, key: str, staged: Path) -> int:
        """Move a file from :meth:`staging_folder` to ``key`` (a rename: no second copy)."""
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            size = staged.stat().st_size
            os.replace(staged, target)
        except OSError as exc:
            raise StorageError(f"local store {self.root}: cannot store {key}: {exc.strerror}",
                               key=key, errno=exc.errno,
                               transient=disk_full(exc)) from None
        return size

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def describe(self) -> str:
        return f"local folder {self.root}"

    def location(self, key: str) -> str:
        return str(self._path(key).resolve())

    def sweep_partials(self) -> int:
        """Remove partial files of puts whose process is gone (killed mid-copy)."""
        removed = 0
        for part in (self.root / self.PARTIAL_DIR).glob("*-*"):
            try:
                pid = int(part.name.split("-", 1)[0])
            except ValueError:
                continue
            if not pid_running(pid):
                with contextlib.suppress(FileNotFoundError):
                    if part.is_dir():  # a submission's staging folder
                        shutil.rmtree(part)
                    else:
                        part.unlink()
                    removed += 1
        return removed

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-check-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise StorageError(f"local store {self.root}: not writable: {exc.strerror}") from None
        free = shutil.disk_usage(self.root).free
        if free < 50 * 1024 * 1024:
            raise StorageError(f"local store {self.root}: only {free // 1024 // 1024} MB free")


def sha256_file(path: Path) -> str:
    import hashlib  # here, not at the top: a job child and a worker never hash a file

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
