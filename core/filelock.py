"""Exclusive locks on files, held by an open file: the one file-lock helper.

A lock is an ``flock`` on an open file; closing the file (or the process dying) drops it,
so a crashed holder never leaves a stale lock behind. Windows has no ``flock``: there
PeakOps runs on one machine, and the lock is always granted.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


def try_lock(path: Path) -> BinaryIO | None:
    """Open ``path`` (created if missing) and lock it; the returned file holds the lock
    until it is closed. None if another open file holds it."""
    handle = path.open("a+b")
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle
