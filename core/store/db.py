"""The state database: the single record of truth (SQLite in WAL mode, or PostgreSQL).

Schema changes are the numbered migrations of :mod:`core.store.schema`, applied in place on
open; ``PRAGMA user_version`` holds the number applied. Multi-statement writes go through
:func:`transaction`, which takes the write lock up front (``BEGIN IMMEDIATE``) so
concurrent writers wait on the busy timeout instead of failing with "database is locked"
on a lock upgrade. :func:`open_database` opens the fleet's PostgreSQL database instead
when the settings name one (:mod:`core.store.sqldb`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from core.config import Settings
from core.errors import DatabaseBusyError, SchemaTooNewError
from core.store import schema
from core.store.postgres import PostgresDatabase
from core.store.sqldb import SqlDatabase, SqliteDatabase
from core.store.status import STATUSES

logger = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0

UPLOAD_STATUSES = STATUSES

SCHEMA_VERSION = schema.SCHEMA_VERSION


def connect(path: Path, *, check_same_thread: bool = True,
            busy_timeout_s: float = BUSY_TIMEOUT_S) -> SqliteDatabase:
    """Open the state database at ``path``, upgrading its schema in place.

    Opening takes no write lock unless the schema needs upgrading (or the file is new),
    so readers never queue behind a writer. A schema newer than this PeakOps is refused
    (:class:`~core.errors.SchemaTooNewError`).
    """
    db = open_sqlite(path, check_same_thread=check_same_thread, busy_timeout_s=busy_timeout_s)
    try:
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def open_sqlite(path: Path, *, check_same_thread: bool = True,
                busy_timeout_s: float = BUSY_TIMEOUT_S) -> SqliteDatabase:
    """The SQLite file at ``path`` (autocommit, WAL), schema untouched."""
    return SqliteDatabase.open(path, check_same_thread=check_same_thread,
                               busy_timeout_s=busy_timeout_s)


def schema_version(db: SqlDatabase) -> int:
    """The migration number the database is at."""
    return db.schema_version()


_migrate_lock = threading.Lock()


def migrate(db: SqlDatabase) -> int:
    """Apply pending migrations, each in its own transaction; return the new version.

    A database a newer PeakOps has upgraded is refused before anything reads or writes it:
    its tables may not be what this code expects."""
    version = db.schema_version()
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(f"database schema {version} is newer than this PeakOps "
                                f"({SCHEMA_VERSION}): upgrade PeakOps")
    if version == SCHEMA_VERSION:
        return version  # the common case: a read, no write lock
    with _migrate_lock:
        return schema.migrate(db)


def open_database(settings: Settings, *, check_same_thread: bool = True,
                  busy_timeout_s: float | None = None) -> SqlDatabase:
    """The state database ``settings`` name (PostgreSQL or SQLite), schema upgraded.

    ``busy_timeout_s`` overrides ``db_busy_timeout`` for SQLite (the heartbeat waits less)."""
    if settings.database_dialect == "postgresql":
        db: SqlDatabase = PostgresDatabase.connect(settings.database_url)
        try:
            migrate(db)
        except BaseException:
            db.close()
            raise
        return db
    return connect(settings.db_path, check_same_thread=check_same_thread,
                   busy_timeout_s=busy_timeout_s or settings.db_busy_timeout)


def when_unlocked(fn: Callable[[], T], *, patience_s: float = 300.0,
                  what: str = "write") -> T:
    """Run ``fn``, again while the database stays locked (each try waits the busy
    timeout), for up to ``patience_s``: for writes whose loss would cost more than the
    wait, such as a job's outcome."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return fn()
        except DatabaseBusyError:
            if time.monotonic() > deadline:
                raise
            logger.warning("state database locked; %s waits for it", what)
            time.sleep(1.0)


def transaction(db: SqlDatabase) -> contextlib.AbstractContextManager[SqlDatabase]:
    """One write transaction holding the write lock from its first statement
    (:meth:`SqlDatabase.transaction`); nested use joins the outer transaction."""
    return db.transaction()
