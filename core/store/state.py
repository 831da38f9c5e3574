"""Small shared state in the state database: key -> JSON value (pause, run-now, ...)."""

from __future__ import annotations

import json
import time
from typing import Any

from core.store.sqldb import SqlDatabase


def get(db: SqlDatabase, key: str, default: Any = None) -> Any:
    row = db.execute("SELECT value FROM state WHERE key = ?", [key]).fetchone()
    return default if row is None else json.loads(row[0])


def put(db: SqlDatabase, key: str, value: Any) -> None:
    db.execute("INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) "
               "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
               "updated_at = excluded.updated_at", [key, json.dumps(value), time.time()])


def increment(db: SqlDatabase, key: str, by: int = 1) -> int:
    """Add ``by`` to the number at ``key`` (missing = 0) in one statement; return the sum."""
    row = db.execute(
        "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(state.value AS INTEGER) + "
        "CAST(excluded.value AS INTEGER) AS TEXT), updated_at = excluded.updated_at "
        "RETURNING value", [key, json.dumps(by), time.time()]).fetchone()
    return int(row[0])


def reserve(db: SqlDatabase, key: str, limit: int) -> bool:
    """Add 1 to the number at ``key`` if it is below ``limit``; whether it was.

    One conditional statement, so workers on any number of machines never take more than
    ``limit`` between them (a shared budget: reserve before spending, then
    ``increment(db, key, -1)`` to give back what was not spent).
    """
    if limit < 1:
        return False
    row = db.execute(
        "INSERT INTO state (key, value, updated_at) VALUES (?, '1', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(state.value AS INTEGER) + 1 AS TEXT), "
        "updated_at = excluded.updated_at WHERE CAST(state.value AS INTEGER) < ? "
        "RETURNING value", [key, time.time(), limit]).fetchone()
    return row is not None


def delete(db: SqlDatabase, key: str) -> None:
    db.execute("DELETE FROM state WHERE key = ?", [key])
