"""Worker heartbeats and child replacements, as the console and ``peakops status`` read them.

The worker writes one ``workers`` row (keyed by its name) every second or so, and one
``restarts`` row per job-child replacement with its cause. Readers decide staleness
from ``last_seen``: a heartbeat older than :data:`STALE_AFTER_S` is not "running".
"""

from __future__ import annotations

import time
from typing import Any

from core.store.sqldb import SqlDatabase

STALE_AFTER_S = 10.0
PRUNE_AFTER_S = 86400.0
"""``cleanup`` forgets workers whose heartbeat is older than a day."""
CAUSES = ("tasks", "memory-after-job", "hard-limit", "crash", "timeout", "stall")


def beat(db: SqlDatabase, name: str, **fields: Any) -> None:
    """Upsert the worker's row with ``fields`` and ``last_seen`` = now on the database's
    clock, which every console of a fleet reads staleness against."""
    fields = {"name": name, "last_seen": db.now(), **fields}
    columns = ", ".join(fields)
    updates = ", ".join(f"{k} = excluded.{k}" for k in fields if k != "name")
    db.execute(f"INSERT INTO workers ({columns}) VALUES ({', '.join('?' * len(fields))}) "
               f"ON CONFLICT(name) DO UPDATE SET {updates}", list(fields.values()))


def record_restart(db: SqlDatabase, worker: str, cause: str, *, message: str,
                   upload_id: int | None = None, rss_kib: int | None = None,
                   now: float | None = None) -> None:
    if cause not in CAUSES:
        raise ValueError(f"unknown restart cause {cause!r}")
    db.execute("INSERT INTO restarts (at, worker, cause, upload_id, rss_kib, message) "
               "VALUES (?, ?, ?, ?, ?, ?)",
               [time.time() if now is None else now, worker, cause, upload_id, rss_kib, message])


def workers(db: SqlDatabase, *, now: float | None = None,
            live_only: bool = False) -> list[dict[str, Any]]:
    """Known workers, newest first, each with ``age_s``, ``stale``, ``live`` and
    ``restarts``. ``live_only``: only those running now (fresh heartbeat, not stopped)."""
    now = db.now() if now is None else now
    rows = list(db.query("SELECT * FROM workers ORDER BY last_seen DESC"))
    for row in rows:
        row["age_s"] = round(now - row["last_seen"], 1)
        row["stale"] = row["age_s"] > STALE_AFTER_S
        row["live"] = not row["stale"] and row["state"] != "stopped"
        row["restarts"] = dict(db.execute(
            "SELECT cause, COUNT(*) FROM restarts WHERE worker = ? GROUP BY cause",
            [row["name"]]).fetchall())
    return [row for row in rows if row["live"]] if live_only else rows


def prune(db: SqlDatabase, *, older_than_s: float = PRUNE_AFTER_S,
          now: float | None = None) -> int:
    """Forget workers not seen for ``older_than_s`` (their restarts stay); return how many."""
    now = db.now() if now is None else now
    return db.execute("DELETE FROM workers WHERE last_seen < ?",
                      [now - older_than_s]).rowcount


def recent_restarts(db: SqlDatabase, limit: int = 50) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM restarts ORDER BY id DESC LIMIT ?", [limit]))
