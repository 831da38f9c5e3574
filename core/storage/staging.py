"""The submit's one copy of a video: cloned where the filesystem can, else copied and
hashed in one pass; made durable (fsync) while the probe reads it.

A reflink (``FICLONE``: Btrfs, XFS, bcachefs, ZFS 2.2+) shares the source's blocks
copy-on-write, so the staged file costs no write and stays the content submitted even if
the user edits the original afterwards; its hash is read from the clone. Hard links are
never used: a link *is* the user's file, and an in-place edit of it (``cp new.mp4
clip.mp4``, an editor saving in place) would change the stored video under its recorded
hash. Elsewhere (ext4, tmpfs) one pass reads, hashes and writes: hashing on a second
thread beside the copy, or beside a kernel ``copy_file_range``, measured no faster on
this 2-core machine (bench.intake_copy), so it is not done.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)

Progress = Callable[[int], None] | None


class TooBigError(Exception):
    """The source grew past the cap while it was being copied."""


def clone(source: BinaryIO, dest: BinaryIO) -> bool:
    """Make ``dest`` a copy-on-write clone of ``source``; False where not supported."""
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    try:
        fcntl.ioctl(dest.fileno(), FICLONE, source.fileno())
    except OSError:  # EOPNOTSUPP, EXDEV, EINVAL (ext4, tmpfs, another filesystem)
        return False
    return True


def copy_hashing(source: BinaryIO, dest: BinaryIO, *, max_bytes: int,
                 on_progress: Progress = None) -> tuple[str, int, str]:
    """Copy ``source`` into ``dest`` (both open, ``dest`` empty and readable); return
    (sha256, size, how), ``how`` being ``"reflink"`` or ``"copy"``.

    Raises :class:`TooBigError` past ``max_bytes`` and ``OSError`` for the files;
    nothing is fsynced here (see :class:`Sync`).
    """
    if clone(source, dest):
        return (*_hash(dest, max_bytes, on_progress), "reflink")
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise TooBigError(size)
        digest.update(chunk)
        dest.write(chunk)
        if on_progress:
            on_progress(len(chunk))
    dest.flush()
    return digest.hexdigest(), size, "copy"


def _hash(handle: BinaryIO, max_bytes: int, on_progress: Progress) -> tuple[str, int]:
    handle.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise TooBigError(size)
        digest.update(chunk)
        if on_progress:
            on_progress(len(chunk))
    return digest.hexdigest(), size


class Sync:
    """``fsync`` of a staged file on a thread, started now and awaited with :meth:`wait`
    before the file is recorded as stored: the disk writes back while the probe child
    reads the header and the record is made."""

    def __init__(self, path: Path) -> None:
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True,
                                        name="peakops-fsync")
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.error = exc

    def wait(self) -> None:
        """Return once the data is on disk; raise the fsync's ``OSError`` if it failed."""
        self._thread.join()
        if self.error is not None:
            raise self.error
