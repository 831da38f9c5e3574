"""The submit's one copy of a video: cloned where the filesystem can, else copied with
the hashing on another thread; made durable (fsync) while the probe reads it.

A reflink (``FICLONE``: Btrfs, XFS, bcachefs, ZFS 2.2+, APFS-like filesystems on Linux)
shares the source's blocks copy-on-write, so the staged file costs no write and stays the
content submitted even if the user edits the original afterwards. Hard links are never
used: a link *is* the user's file, and an in-place edit of it (``cp new.mp4 clip.mp4``,
an editor saving in place) would change the stored video under its recorded hash.
Elsewhere (ext4, tmpfs, across filesystems) the file is copied, and SHA-256, the slowest
part (about 0.45 s for 150 MB here), runs beside the copy: hashlib releases the GIL.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_QUEUED_CHUNKS = 8     # what the hashing thread may lag behind: 8 MiB


class TooBigError(Exception):
    """The source grew past the cap while it was being read."""


def clone(source: BinaryIO, dest: BinaryIO) -> bool:
    """Make ``dest`` a copy-on-write clone of ``source``; False where not supported."""
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    try:
        fcntl.ioctl(dest.fileno(), FICLONE, source.fileno())
    except OSError:  # EOPNOTSUPP, EXDEV, EINVAL (ext4, tmpfs, other filesystem)
        return False
    return True


def copy_hashing(source: BinaryIO, dest: BinaryIO, *, max_bytes: int,
                 on_progress: Callable[[int], None] | None = None) -> tuple[str, int, str]:
    """Copy ``source`` into ``dest`` (both open, ``dest`` empty); return (sha256, size, how).

    ``how`` is ``"reflink"`` or ``"copy"``. With a reflink the hash is read from the clone
    itself, so the hash is of exactly what is stored. Raises :class:`TooBigError` past
    ``max_bytes`` and ``OSError`` for the files; nothing is fsynced here (see :func:`sync`).
    """
    if clone(source, dest):
        dest.seek(0)
        digest, size = _hash(dest, max_bytes, on_progress)
        return digest, size, "reflink"
    digest = hashlib.sha256()
    chunks: queue.Queue[bytes | None] = queue.Queue(_QUEUED_CHUNKS)
    hasher = threading.Thread(target=_hash_chunks, args=(digest, chunks), daemon=True,
                              name="peakops-hash")
    hasher.start()
    size = 0
    try:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise TooBigError(size)
            chunks.put(chunk)
            dest.write(chunk)
            if on_progress:
                on_progress(len(chunk))
        dest.flush()
    finally:
        chunks.put(None)
        hasher.join()
    return digest.hexdigest(), size, "copy"


def _hash_chunks(digest, chunks: queue.Queue) -> None:
    while (chunk := chunks.get()) is not None:
        digest.update(chunk)


def _hash(handle: BinaryIO, max_bytes: int,
          on_progress: Callable[[int], None] | None) -> tuple[str, int]:
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
