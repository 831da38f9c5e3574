"""One connection shape for the state database on SQLite (sqlite3) and PostgreSQL (psycopg 3).

The lifecycle code was written against sqlite-utils' ``Database``: ``db.execute(sql,
params)`` returning a DB-API cursor (tuples, ``fetchone``, ``rowcount``), ``db.query``
yielding dicts, ``db.conn`` and ``transaction(db)``. :class:`SqlDatabase` keeps those call
shapes on both databases, so porting a module is mechanical:

- SQL is written once with ``?`` placeholders; psycopg gets them as ``%s``.
- ``INSERT ... RETURNING id`` through :meth:`SqlDatabase.insert` (psycopg has no
  ``lastrowid``).
- :meth:`SqlDatabase.transaction` has SQLite's ``BEGIN IMMEDIATE`` semantics on both: one
  write transaction at a time. On PostgreSQL every write transaction (and every write
  outside one) first takes one transaction-scoped advisory lock, so a read-check-write
  that is correct on SQLite stays correct with many workers on many machines.
- :meth:`SqlDatabase.now` reads the database server's clock: the one clock every worker
  of a fleet shares, for leases and the reaper.
- :meth:`SqlDatabase.try_lock` is a named lock held for the connection's life (leader
  election): ``pg_try_advisory_lock`` on PostgreSQL, a file lock beside SQLite's file.

Driver errors become the project's own here and nowhere else (:func:`driver_error`):
a broken constraint :class:`~core.errors.DatabaseConstraintError`, a lock held too long
:class:`~core.errors.DatabaseBusyError`, a lost server
:class:`~core.errors.DatabaseUnreachableError` (with the reason), a full disk
:class:`~core.errors.DatabaseFullError`, anything else :class:`~core.errors.DatabaseError`.

PostgreSQL's connection is :class:`core.store.postgres.PostgresDatabase`; psycopg is
imported only when a PostgreSQL database is opened.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import logging
import re
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from core.errors import (
    DatabaseBusyError,
    DatabaseConstraintError,
    DatabaseError,
    DatabaseFullError,
)
from core.filelock import try_lock

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
_LOCK_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_WRITE_LOCK = "peakops.write"


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL advisory locks take a bigint).

    hashlib (OpenSSL's libcrypto, about 3.5 MB) is imported here: on SQLite no process
    needs it, and a job child never hashes a file."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s``; a literal ``%`` becomes ``%%``.

    Question marks inside quoted strings, quoted identifiers and comments are left alone.
    """
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = i + 1
            while end < n:  # a doubled quote inside is an escaped quote
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1].replace("%", "%%"))
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        else:
            out.append("%s" if ch == "?" else "%%" if ch == "%" else ch)
            i += 1
    return "".join(out)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _sqlite_busy(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        or "database is locked" in str(exc) or "database is busy" in str(exc))


def driver_error(exc: BaseException) -> BaseException:
    """The project's error for a driver's (sqlite3 or psycopg) error; others unchanged."""
    reason = _first_line(exc)
    evidence = {"driver": type(exc).__name__}
    if isinstance(exc, sqlite3.Error):
        if isinstance(exc, sqlite3.IntegrityError):
            return DatabaseConstraintError(reason, **evidence)
        if _sqlite_busy(exc):
            return DatabaseBusyError(reason, **evidence)
        if "database or disk is full" in str(exc):
            return DatabaseFullError(reason, **evidence)
        return DatabaseError(reason, **evidence)
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return exc
    if isinstance(exc, psycopg.errors.IntegrityError):
        return DatabaseConstraintError(reason, **evidence)
    if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.DeadlockDetected
                  | psycopg.errors.SerializationFailure):
        return DatabaseBusyError(reason, **evidence)
    if isinstance(exc, psycopg.errors.DiskFull):
        return DatabaseFullError(reason, **evidence)
    return DatabaseError(reason, **evidence)


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Raise the project's error in place of a driver's (:func:`driver_error`)."""
    try:
        yield
    except Exception as exc:
        mapped = driver_error(exc)
        if mapped is exc:
            raise
        raise mapped from None


def _greatest(*values):
    """PostgreSQL's GREATEST: the largest argument, NULLs ignored."""
    return max((v for v in values if v is not None), default=None)


def _least(*values):
    return min((v for v in values if v is not None), default=None)


def read_only_row(path: Path, sql: str, params: Sequence[Any] = ()) -> tuple | None:
    """The first row of ``sql`` on another SQLite file (huey's queue), opened read-only;
    None when there is none or the file cannot be read (not created yet)."""
    try:
        conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True,
                               timeout=5)
        try:
            return conn.execute(sql, list(params)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None


class SqlDatabase(abc.ABC):
    """The state database behind one DB-API connection: :class:`SqliteDatabase` or
    :class:`core.store.postgres.PostgresDatabase`."""

    dialect: str = ""
    now_sql: str = ""
    """An SQL expression for the server's clock in epoch seconds, for use in statements."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._locks: dict[str, Any] = {}

    # -- statements --------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run one statement with ``?`` placeholders; returns the DB-API cursor (tuples)."""
        return self.conn.execute(sql, list(params or ()))

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]:
        """Rows of a SELECT as dicts, column name -> value."""
        cursor = self.execute(sql, params)
        columns = [c[0] for c in cursor.description]
        for row in cursor.fetchall():
            yield dict(zip(columns, row, strict=True))

    def insert(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run an ``INSERT`` and return the new row's ``id`` (via ``RETURNING id``)."""
        return self.execute(f"{sql} RETURNING id", params).fetchone()[0]

    def now(self) -> float:
        """The database server's clock, epoch seconds (not frozen inside a transaction)."""
        return float(self.execute(f"SELECT {self.now_sql}").fetchone()[0])

    # -- transactions ------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def in_transaction(self) -> bool: ...

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[SqlDatabase]:
        """One write transaction; nested use joins the outer one. Rolls back on error."""

    # -- schema version and named locks -------------------------------------------------

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The number of migrations applied (0 for an empty database)."""

    @abc.abstractmethod
    def set_schema_version(self, version: int) -> None: ...

    def try_lock(self, name: str) -> bool:
        """Take the named lock for this connection's life; False if another holds it.

        Taking a lock this connection already holds returns True. The lock goes when
        :meth:`unlock` is called, the connection closes or the process dies.
        """
        if not _LOCK_NAME.fullmatch(name):
            raise ValueError(f"lock name must match {_LOCK_NAME.pattern}, not {name!r}")
        if name in self._locks:
            return True
        handle = self._acquire(name)
        if handle is None:
            return False
        self._locks[name] = handle
        return True

    def unlock(self, name: str) -> None:
        handle = self._locks.pop(name, None)
        if handle is not None:
            self._release(name, handle)

    @abc.abstractmethod
    def _acquire(self, name: str) -> Any:
        """A handle for the named lock, or None if another connection holds it."""

    @abc.abstractmethod
    def _release(self, name: str, handle: Any) -> None: ...

    def close(self) -> None:
        for name in list(self._locks):
            with contextlib.suppress(Exception):  # a lock dies with its connection anyway
                self.unlock(name)
        self.conn.close()

    @abc.abstractmethod
    def describe(self) -> str:
        """What and where, for doctor: never a password."""


class SqliteDatabase(SqlDatabase):
    """SQLite through sqlite3 in autocommit mode (``isolation_level=None``), as core.store.db opens it."""

    dialect = "sqlite"
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"

    @classmethod
    def open(cls, path: Path, *, check_same_thread: bool = True,
             busy_timeout_s: float = 30.0) -> SqliteDatabase:
        """The SQLite file at ``path`` (autocommit, WAL), schema untouched."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with mapped_errors():
            conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None,
                                   check_same_thread=check_same_thread)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
            except BaseException:
                conn.close()
                raise
        # PostgreSQL's spelling of the two-argument MAX/MIN, so that SQL is written once.
        conn.create_function("greatest", -1, _greatest, deterministic=True)
        conn.create_function("least", -1, _least, deterministic=True)
        return cls(conn)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        with mapped_errors():
            return self.conn.execute(sql, list(params or ()))

    @property
    def path(self) -> Path | None:
        row = self.conn.execute("PRAGMA database_list").fetchone()
        return Path(row[2]) if row and row[2] else None

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SqliteDatabase]:
        if self.conn.in_transaction:
            yield self
            return
        # Take the write lock up front: a deferred transaction's lock upgrade fails with
        # "database is locked" instead of waiting for the busy timeout.
        self.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if self.conn.in_transaction:
                self.execute("ROLLBACK")
            raise
        else:
            self.execute("COMMIT")

    def schema_version(self) -> int:
        return self.execute("PRAGMA user_version").fetchone()[0]

    def set_schema_version(self, version: int) -> None:
        self.execute(f"PRAGMA user_version = {int(version)}")

    def _acquire(self, name: str) -> Any:
        if self.path is None:  # an in-memory database is one connection
            return True
        return try_lock(Path(f"{self.path}.{name}.lock"))

    def _release(self, name: str, handle: Any) -> None:
        if handle is not True:
            handle.close()  # closing the file drops the flock

    def describe(self) -> str:
        return f"SQLite {sqlite3.sqlite_version} at {self.path or ':memory:'}"


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a state database failure: :class:`~core.errors.DatabaseError`
    (what the driver's errors become here), or a driver's own error."""
    if isinstance(exc, DatabaseError | sqlite3.Error):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)
