"""The state database: the single record of truth (SQLite through sqlite-utils, WAL).

Schema changes are the numbered migrations of :mod:`core.schema`, applied in place on
open; ``PRAGMA user_version`` holds the number applied. Multi-statement writes go through
:func:`transaction`, which takes the write lock up front (``BEGIN IMMEDIATE``) so
concurrent writers wait on the busy timeout instead of failing with "database is locked"
on a lock upgrade. :func:`open_database` opens the fleet's PostgreSQL database instead
when the settings name one (:mod:`core.sqldb`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from core import schema
from core.config import Settings
from core.sqldb import PostgresDatabase, SqlDatabase, SqliteDatabase

BUSY_TIMEOUT_S = 30.0

UPLOAD_STATUSES = ("UPLOADING", "QUEUED", "DEFERRED", "PROCESSING", "DONE", "FAILED", "CANCELLED")

SCHEMA_VERSION = schema.SCHEMA_VERSION


def connect(path: Path, *, check_same_thread: bool = True) -> sqlite_utils.Database:
    """Open the state database at ``path``, upgrading its schema in place."""
    db = sqlite_utils.Database(open_sqlite(path, check_same_thread=check_same_thread))
    migrate(db)
    return db


def open_sqlite(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to the SQLite file at ``path`` (autocommit, WAL), schema untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
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
    with _migrate_lock:
        return schema.migrate(_sql(db))


def open_database(settings: Settings, *, check_same_thread: bool = True) -> SqlDatabase:
    """The state database ``settings`` name (PostgreSQL or SQLite), schema upgraded."""
    if settings.database_dialect == "postgresql":
        db: SqlDatabase = PostgresDatabase.connect(settings.database_url)
        try:
            schema.migrate(db)
        except BaseException:
            db.close()
            raise
        return db
    return SqliteDatabase(connect(settings.db_path, check_same_thread=check_same_thread).conn)


def sql(db: sqlite_utils.Database | SqlDatabase) -> SqlDatabase:
    """``db`` as an :class:`~core.sqldb.SqlDatabase` (sqlite-utils' Database is wrapped), for
    what only the dialect layer offers: ``insert`` (RETURNING id), ``now``, named locks."""
    return db if isinstance(db, SqlDatabase) else SqliteDatabase(db.conn)


_sql = sql


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database | SqlDatabase) -> Iterator[sqlite_utils.Database]:
    """One write transaction holding the write lock from its first statement.

    Nested use joins the outer transaction. Works on sqlite-utils' Database and on
    either :class:`~core.sqldb.SqlDatabase`.
    """
    with _sql(db).transaction():
        yield db
