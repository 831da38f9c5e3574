"""The home folder: made ready before use, and its failures told in one line.

An unusable home (a file, a path under /sys, read-only, full) would otherwise surface as
a ``FileExistsError`` traceback or SQLite's "unable to open database file" with no path.
:func:`prepare` checks it when an entry point opens it; :func:`explain` turns an
OSError or SQLite error met later into one line naming the home and the cause.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

from core.config import Settings
from core.errors import DatabaseError, StorageError
from core.store.sqldb import read_only_row

FULL_BELOW_BYTES = 1024 * 1024
"""Free space under which SQLite's vague "disk I/O error" is reported as a full disk."""


class HomeError(StorageError):
    """The home folder cannot be used; the message names it and the cause."""


def free_bytes(path: Path) -> int | None:
    """Free space of the filesystem holding ``path`` (or its nearest existing parent)."""
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def _cause(exc: BaseException, home: Path) -> str:
    code = getattr(exc, "errno", None)
    text = str(exc).lower()
    free = free_bytes(home)
    if code in (errno.ENOSPC, errno.EDQUOT) or "database or disk is full" in text or (
            isinstance(exc, DatabaseError) and "disk i/o error" in text
            and free is not None and free < FULL_BELOW_BYTES):
        return "disk full" + (f" ({free // 1024} KiB free)" if free is not None else "")
    if "database is locked" in text:
        return ("the state database is locked by another writer (waited db_busy_timeout "
                "seconds); try again")
    name = getattr(exc, "filename", None)
    if isinstance(exc, FileExistsError | NotADirectoryError) or code == errno.ENOTDIR:
        blocker = next((p for p in (home, *home.parents) if p.exists() and not p.is_dir()),
                       name or home)
        return f"{blocker} is a file, not a folder"
    if code == errno.EROFS or "readonly database" in text:
        return "read-only (file system or permissions)"
    if isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM):
        return f"no permission to write to {name or home}"
    if isinstance(exc, OSError):
        return f"cannot be created or written ({exc.strerror or exc})"
    if "unable to open database file" in text:
        return f"cannot open the state database {home / 'peakops.db'}" + _probe(home)
    return f"state database: {exc}"


def _probe(home: Path) -> str:
    """Why the folder cannot take a file, if writing one shows it."""
    probe = home / f".write-check-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f" ({_cause(exc, home)})"
    return ""


def explain(home: Path, exc: BaseException) -> str:
    """One line naming the home folder and what is wrong with it."""
    return f"home folder {home}: {_cause(exc, home)}"


def prepare(settings: Settings) -> None:
    """Create the home and scratch folders; raise HomeError naming the home and cause."""
    try:
        if settings.home.exists() and not settings.home.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(settings.home))
        settings.home.mkdir(parents=True, exist_ok=True)
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HomeError(explain(settings.home, exc)) from None


def _stored_objects(home: Path, limit: int = 1000) -> int:
    """How many objects the local store holds (counted up to ``limit``)."""
    count = 0
    for kind in ("videos", "frames"):
        for path in (home / "objects" / kind).rglob("*"):
            if path.is_file():
                count += 1
                if count >= limit:
                    return count
    return count


def _queued_messages(home: Path) -> int:
    path = home / "queue.db"
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    return (read_only_row(path, "SELECT COUNT(*) FROM task") or (0,))[0]


def check_database(settings: Settings) -> None:
    """Refuse to start afresh on a missing or emptied database in a home that was used.

    A new database would orphan the stored objects and give the ids of lost uploads to
    new ones, which stale queue messages would then run.
    """
    db = settings.db_path
    try:
        size = db.stat().st_size
    except FileNotFoundError:
        size = None
    except OSError:
        return  # open_app reports it
    if size:
        return
    objects, messages = _stored_objects(settings.home), _queued_messages(settings.home)
    if not objects and not messages:
        return
    state = "missing" if size is None else "empty (0 bytes)"
    held = " and ".join(part for part in (
        f"{objects} stored object(s)" if objects else "",
        f"{messages} queued message(s)" if messages else "") if part)
    raise HomeError(
        f"home folder {settings.home}: the state database {db} is {state} but the home "
        f"holds {held}; starting afresh would lose their history. Restore {db.name} from "
        f"a backup, or move {settings.home / 'objects'} and {settings.home / 'queue.db'} "
        "away to start a new home")
