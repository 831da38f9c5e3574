"""The state database on PostgreSQL (psycopg 3): the :class:`~core.store.sqldb.SqlDatabase`
shape with SQLite's semantics kept (one advisory write lock, ``?`` placeholders, values
typed as sqlite3 gives them). Part of the dialect layer with :mod:`core.store.sqldb`:
psycopg's errors become the project's own here too, and nowhere else."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from core.errors import DatabaseUnreachableError
from core.store.sqldb import (
    _WRITE,
    _WRITE_LOCK,
    CONNECT_TIMEOUT_S,
    SqlDatabase,
    driver_error,
    lock_key,
    to_pyformat,
)
from core.urls import redacted_url

logger = logging.getLogger(__name__)


class PostgresDatabase(SqlDatabase):
    """PostgreSQL through psycopg 3 in autocommit mode; transactions are explicit."""

    dialect = "postgresql"
    now_sql = "extract(epoch FROM clock_timestamp())::float8"

    def __init__(self, conn: Any, url: str) -> None:
        super().__init__(conn)
        self.url = url
        self._open_transactions = 0  # our transaction() blocks; a lost one is never resumed

    @classmethod
    def connect(cls, url: str, *, application_name: str = "peakops") -> PostgresDatabase:
        return cls(_connect(url, application_name), url)

    def _unreachable(self, exc: Exception) -> DatabaseUnreachableError:
        return DatabaseUnreachableError(
            f"database {redacted_url(self.url)} unreachable: {_reason(exc)}")

    def _reconnect_if_dropped(self) -> None:
        """A connection the server or the network dropped is replaced, once per call; if
        the server is still away that is one clear DatabaseUnreachableError. Session locks
        (leadership) died with the old connection and are forgotten."""
        if not (self.conn.closed or self.conn.broken):
            return
        if self._open_transactions:
            raise DatabaseUnreachableError(
                f"database {redacted_url(self.url)}: connection lost inside a transaction")
        with contextlib.suppress(Exception):
            self.conn.close()
        self._locks.clear()
        self.conn = _connect(self.url, "peakops")
        logger.warning("database %s: connection lost; reconnected", redacted_url(self.url))

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        import psycopg
        self._reconnect_if_dropped()
        write = bool(_WRITE.match(sql))
        outer = self._open_transactions > 0 or self.in_transaction
        try:
            return self._execute(sql, params, write and not outer)
        except psycopg.OperationalError as exc:
            if not self.conn.broken:
                raise
            if outer or write:
                # A write whose connection died may or may not have committed: never
                # replayed here; the caller sees one transient error.
                raise self._unreachable(exc) from None
        try:  # a read outside a transaction is safe to run again on a new connection
            self._reconnect_if_dropped()
            return self._execute(sql, params, False)
        except psycopg.OperationalError as exc:
            raise self._unreachable(exc) from None

    def _execute(self, sql: str, params: Sequence[Any] | None, lone_write: bool) -> Any:
        if lone_write:
            # A lone write waits for the write lock too, as it would on SQLite.
            with self.transaction():
                return self._run(sql, params)
        return self._run(sql, params)

    def _run(self, sql: str, params: Sequence[Any] | None) -> Any:
        import psycopg
        try:
            return self.conn.execute(to_pyformat(sql), list(params or ()))
        except psycopg.OperationalError:
            if self.conn.broken:
                raise  # execute() says unreachable, or runs a read again
            raise driver_error(sys.exc_info()[1]) from None
        except psycopg.Error as exc:
            raise driver_error(exc) from None

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus
        # A broken connection's status is UNKNOWN: no transaction to join there.
        return self.conn.info.transaction_status in (
            TransactionStatus.ACTIVE, TransactionStatus.INTRANS, TransactionStatus.INERROR)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresDatabase]:
        if self.in_transaction:
            yield self
            return
        import psycopg
        self._reconnect_if_dropped()
        try:
            with contextlib.ExitStack() as stack:
                self._begin(stack)
                self._open_transactions += 1
                try:
                    yield self
                finally:
                    self._open_transactions -= 1
        except psycopg.Error as exc:  # BEGIN or COMMIT; statements inside are mapped already
            if isinstance(exc, psycopg.OperationalError) and self.conn.broken:
                raise self._unreachable(exc) from None
            raise driver_error(exc) from None

    def _begin(self, stack: contextlib.ExitStack) -> None:
        """BEGIN and take the write lock. A connection found dropped here (it went while
        idle; nothing of this transaction ran yet) is replaced once."""
        import psycopg
        for last in (False, True):
            try:
                stack.enter_context(self.conn.transaction())
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(_WRITE_LOCK)])
                return
            except psycopg.OperationalError:
                if last or not self.conn.broken:
                    raise
                with contextlib.suppress(Exception):
                    stack.close()
                self._reconnect_if_dropped()

    def schema_version(self) -> int:
        # pg_class read by a query (this statement's snapshot), not to_regclass: a name
        # lookup goes through the backend's catalog cache, which waiting on an advisory
        # lock does not refresh, so a second opener would still see no table after the
        # first one committed the schema and migrate it again ("relation ... already
        # exists").
        exists = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.relname = 'schema_version'"
            " AND n.nspname = current_schema())").fetchone()[0]
        if not exists:
            return 0
        row = self.conn.execute("SELECT version FROM schema_version").fetchone()
        return row[0] if row else 0

    def set_schema_version(self, version: int) -> None:
        self.conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        self.conn.execute("DELETE FROM schema_version")
        self.conn.execute("INSERT INTO schema_version (version) VALUES (%s)", [int(version)])

    def _acquire(self, name: str) -> Any:
        got = self.conn.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(name)]).fetchone()
        return True if got[0] else None

    def _release(self, name: str, handle: Any) -> None:
        if not self.conn.closed:
            self.conn.execute("SELECT pg_advisory_unlock(%s)", [lock_key(name)])

    def describe(self) -> str:
        version = self.conn.info.server_version
        return (f"PostgreSQL {version // 10000}.{version % 10000} at {redacted_url(self.url)}")


def _reason(exc: Exception) -> str:
    """libpq's first line: the server's or the network's reason, e.g. ``connection to
    server at "db", port 5432 failed: Connection refused`` (never a password; the hint
    lines after it, "Is the server running …?", say nothing of the cause)."""
    first = (str(exc).strip().splitlines() or [""])[0].strip()
    return first.removeprefix("connection failed: ") or type(exc).__name__


def _connect(url: str, application_name: str) -> Any:
    import psycopg
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                               application_name=application_name)
    except psycopg.OperationalError as exc:
        raise DatabaseUnreachableError(
            f"database {redacted_url(url)} unreachable: {_reason(exc)}") from None
    _sqlite_like_types(conn)
    return conn


def _sqlite_like_types(conn: Any) -> None:
    """Values cross the connection as they do with sqlite3, so code written for it holds.

    A Python bool is stored as 1/0 in an INTEGER column (PostgreSQL has no implicit cast
    from boolean to integer), and ``numeric`` results (``SUM`` of integers, ``AVG``) come
    back as int or float, never Decimal.
    """
    from psycopg.adapt import Dumper, Loader
    from psycopg.pq import Format

    int2 = conn.adapters.types["int2"].oid

    class BoolAsInt(Dumper):
        oid = int2

        def dump(self, obj: bool) -> bytes:
            return b"1" if obj else b"0"

    class BoolAsIntBinary(Dumper):
        oid = int2
        format = Format.BINARY

        def dump(self, obj: bool) -> bytes:
            return b"\x00\x01" if obj else b"\x00\x00"

    class NumberLoader(Loader):
        def load(self, data: Any) -> int | float:
            text = bytes(data).decode()
            return float(text) if any(c in text for c in ".eEN") else int(text)

    conn.adapters.register_dumper(bool, BoolAsInt)
    conn.adapters.register_dumper(bool, BoolAsIntBinary)
    conn.adapters.register_loader("numeric", NumberLoader)
