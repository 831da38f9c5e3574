"""Leader election between batch services sharing one state database: exactly one
scheduler dispatches, reaps and cleans up; another takes over when it goes."""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from batch.scheduler import Runtime
from core.store import lifecycle, queries
from tests.databases import state_settings

MONDAY_NIGHT = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # inside 'mon-fri 22:00-06:00'


def runtime(home, database_url) -> Runtime:
    settings = state_settings(home, database_url, offpeak_windows="mon-fri 22:00-06:00")
    return Runtime(settings, BackgroundScheduler(timezone="UTC"), lambda: MONDAY_NIGHT)


def deferred_upload(db) -> int:
    upload_id = lifecycle.create_upload(db, original_name="a.mp4", sha256="aa", size=10,
                                   mode=lifecycle.MODE_OFFPEAK, owner="submit", lease_seconds=60)
    lifecycle.mark_stored(db, upload_id, storage_key="videos/aa", probe={"duration": 2.0})
    return upload_id


def test_one_leader_dispatches_and_another_takes_over(tmp_path, database_url):
    # Two machines, each with its own home, on one database (SQLite: one file by URL).
    url = database_url or f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = runtime(tmp_path / "a", url), runtime(tmp_path / "b", url)
    try:
        upload_id = deferred_upload(first.app.db)
        assert first.lead() and not second.lead()
        assert second.leading_tick() is None
        assert queries.get_upload(second.app.db, upload_id)["status"] == lifecycle.DEFERRED
        plan = first.leading_tick()
        assert plan is not None and plan.open
        assert queries.get_upload(second.app.db, upload_id)["status"] == lifecycle.QUEUED
        first.close()  # the leader goes: its connection, and the lock with it
        assert second.lead()
        assert second.leading_tick() is not None
    finally:
        first.app.db.conn.close()
        second.close()


def test_leadership_is_lost_with_the_connection_and_won_back(tmp_path, postgres_url):
    first, second = runtime(tmp_path / "a", postgres_url), runtime(tmp_path / "b", postgres_url)
    try:
        assert first.lead()
        # The server ends the leader's session (a network cut, a failover); the call waits
        # until the backend has exited, its locks with it.
        (pid,) = first.app.db.execute("SELECT pg_backend_pid()").fetchone()
        second.app.db.execute("SELECT pg_terminate_backend(?, 10000)", [pid])
        assert second.lead()  # the lock went with the session
        assert not first.lead()  # reconnected, but the other one leads now
        second.close()
        assert first.lead()
    finally:
        first.close()
        second.app.db.conn.close()
