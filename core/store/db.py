"""The state database: the single record of truth (SQLite through sqlite-utils, WAL).

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
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from core.config import Settings
from core.store import schema
from core.store.sqldb import PostgresDatabase, SqlDatabase, SqliteDatabase
from core.store.status import STATUSES

logger = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0

UPLOAD_STATUSES = STATUSES

SCHEMA_VERSION = schema.SCHEMA_VERSION


def connect(path: Path, *, check_same_thread: bool = True,
            busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite_utils.Database:
    """Open the state database at ``path``, upgrading its schema in place.

    Opening takes no write lock unless the schema needs upgrading (or the file is new),
    so readers never queue behind a writer.
    """
    db = sqlite_utils.Database(open_sqlite(path, check_same_thread=check_same_thread,
                                           busy_timeout_s=busy_timeout_s))
    migrate(db)
    return db


def open_sqlite(path: Path, *, check_same_thread: bool = True,
                busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection to the SQLite file at ``path`` (autocommit, WAL), schema untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None,
                           check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    # PostgreSQL's spelling of the two-argument MAX/MIN, so that SQL is written once.
    conn.create_function("greatest", -1, _greatest, deterministic=True)
    conn.create_function("least", -1, _least, deterministic=True)
    return conn


def _greatest(*values):
    """PostgreSQL's GREATEST: the largest argument, NULLs ignored."""
    return max((v for v in values if v is not None), default=None)


def _least(*values):
    return min((v for v in values if v is not None), default=None)


def schema_version(db: sqlite_utils.Database | SqlDatabase) -> int:
    """The migration number the database is at."""
    return _sql(db).schema_version()


_migrate_lock = threading.Lock()


def migrate(db: sqlite_utils.Database | SqlDatabase) -> int:
    """Apply pending migrations, each in its own transaction; return the new version."""
    version = _sql(db).schema_version()
    if version >= SCHEMA_VERSION:
        return version  # the common case: a read, no write lock
    with _migrate_lock:
        return schema.migrate(_sql(db))


def open_database(settings: Settings, *, check_same_thread: bool = True,
                  busy_timeout_s: float | None = None) -> SqlDatabase:
    """The state database ``settings`` name (PostgreSQL or SQLite), schema upgraded.

    ``busy_timeout_s`` overrides ``db_busy_timeout`` for SQLite (the heartbeat waits less)."""
    if settings.database_dialect == "postgresql":
        db: SqlDatabase = PostgresDatabase.connect(settings.database_url)
        try:
            schema.migrate(db)
        except BaseException:
            db.close()
            raise
        return db
    return SqliteDatabase(connect(settings.db_path, check_same_thread=check_same_thread,
                                  busy_timeout_s=busy_timeout_s or settings.db_busy_timeout).conn)


def sql(db: sqlite_utils.Database | SqlDatabase) -> SqlDatabase:
    """``db`` as an :class:`~core.store.sqldb.SqlDatabase` (sqlite-utils' Database is wrapped), for
    what only the dialect layer offers: ``insert`` (RETURNING id), ``now``, named locks."""
    return db if isinstance(db, SqlDatabase) else SqliteDatabase(db.conn)


_sql = sql


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite giving up on a lock another connection holds."""
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        or "database is locked" in str(exc) or "database is busy" in str(exc))


def when_unlocked(fn: Callable[[], T], *, patience_s: float = 300.0,
                  what: str = "write") -> T:
    """Run ``fn``, again while the database stays locked (each try waits the busy
    timeout), for up to ``patience_s``: for writes whose loss would cost more than the
    wait, such as a job's outcome."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_locked(exc) or time.monotonic() > deadline:
                raise
            logger.warning("state database locked; %s waits for it", what)
            time.sleep(1.0)


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database | SqlDatabase) -> Iterator[sqlite_utils.Database]:
    """One write transaction holding the write lock from its first statement.

    Nested use joins the outer transaction. Works on sqlite-utils' Database and on
    either :class:`~core.store.sqldb.SqlDatabase`.
    """
    with _sql(db).transaction():
        yield db
