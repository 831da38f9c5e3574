"""Lifecycle transitions on both state databases (the ``db`` fixture of
``tests/core/conftest.py``: SQLite and a real PostgreSQL), with explicit ``now``."""

from __future__ import annotations

import pytest

from core.errors import InputError, InternalError, NotFoundError, StateError, StorageError
from core.jobs import settle
from core.store import db as dbmod
from core.store import lifecycle, queries

T0 = 1_700_000_000.0


def queued(db, name="a.mp4", mode=lifecycle.MODE_NOW, sha="aa"):
    upload_id = lifecycle.create_upload(db, original_name=name, sha256=sha, size=10, mode=mode,
                                   owner="submit", lease_seconds=60, now=T0)
    lifecycle.mark_stored(db, upload_id, storage_key=f"videos/{sha}", probe={"duration": 2.0},
                     now=T0)
    return upload_id


def fail(db, upload_id, error, *, max_attempts, retry_backoff=0.0, degrade=False,
         degrade_levels=1, now=None):
    """Decide with settle (the one policy), write with lifecycle (which only writes)."""
    decision = settle.decide_failure(error, queries.get_upload(db, upload_id),
                                     max_attempts=max_attempts, retry_backoff=retry_backoff,
                                     degrade=degrade, degrade_levels=degrade_levels)
    return lifecycle.write_failure(db, upload_id, decision, owner="w", now=now)


def events(db, upload_id):
    return [e["kind"] for e in queries.detail(db, upload_id).events]


def test_schema_is_versioned_and_reopen_is_idempotent(tmp_path):
    path = tmp_path / "x.db"
    first = dbmod.connect(path)
    assert first.execute("PRAGMA user_version").fetchone()[0] == dbmod.SCHEMA_VERSION
    assert first.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first.conn.close()
    again = dbmod.connect(path)
    assert {r["name"] for r in again.query("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {"uploads", "frames", "labels", "events"}


def test_submit_mode_decides_queued_or_deferred(db):
    now_id = queued(db, sha="n1")
    later_id = queued(db, mode=lifecycle.MODE_OFFPEAK, sha="n2")
    assert queries.get_upload(db, now_id)["status"] == lifecycle.QUEUED
    assert queries.get_upload(db, later_id)["status"] == lifecycle.DEFERRED
    assert events(db, now_id) == ["submitted", "queued"]


def test_claim_is_exclusive_and_counts_attempts(db):
    upload_id = queued(db)
    row = lifecycle.claim(db, upload_id, "w1", lease_seconds=30, now=T0)
    assert row["status"] == lifecycle.PROCESSING and row["attempts"] == 1
    assert row["lease_expires_at"] == T0 + 30
    assert lifecycle.claim(db, upload_id, "w2", lease_seconds=30, now=T0) is None
    assert queries.get_upload(db, upload_id)["lease_owner"] == "w1"


def test_renew_lease_only_for_owner_and_records_progress(db):
    upload_id = queued(db)
    lifecycle.claim(db, upload_id, "w1", lease_seconds=30, now=T0)
    assert lifecycle.renew_lease(db, upload_id, "w1", lease_seconds=30, stage="extracting",
                            done=3, total=20, now=T0 + 10)
    assert not lifecycle.renew_lease(db, upload_id, "w2", lease_seconds=30, now=T0 + 10)
    row = queries.get_upload(db, upload_id)
    assert (row["stage"], row["progress_done"], row["progress_total"]) == ("extracting", 3, 20)
    assert row["lease_expires_at"] == T0 + 40


def test_complete_requires_the_lease(db):
    upload_id = queued(db)
    lifecycle.claim(db, upload_id, "w1", lease_seconds=30, now=T0)
    assert not lifecycle.complete(db, upload_id, "w2", now=T0)
    assert lifecycle.complete(db, upload_id, "w1", peak_rss_kib=1234, now=T0 + 5)
    row = queries.get_upload(db, upload_id)
    assert row["status"] == lifecycle.DONE and row["peak_rss_kib"] == 1234
    assert row["lease_owner"] is None and row["finished_at"] == T0 + 5


def test_transient_failure_requeues_with_backoff_then_fails(db):
    upload_id = queued(db)
    error = StorageError("store unreachable", transient=True)
    for attempt in (1, 2):
        lifecycle.claim(db, upload_id, "w", lease_seconds=30, now=T0 + 1000 * attempt)
        status = fail(db, upload_id, error, max_attempts=3, retry_backoff=10,
                      now=T0 + 1000 * attempt)
        assert status == lifecycle.QUEUED
        assert queries.get_upload(db, upload_id)["not_before"] == T0 + 1000 * attempt + 10 * attempt
    # not claimable before its backoff
    assert lifecycle.claim(db, upload_id, "w", lease_seconds=30, now=T0 + 2001) is None
    lifecycle.claim(db, upload_id, "w", lease_seconds=30, now=T0 + 3000)
    assert fail(db, upload_id, error, max_attempts=3, now=T0 + 3000) == "FAILED"
    row = queries.get_upload(db, upload_id)
    assert (row["error_category"], row["error_message"]) == ("storage", "store unreachable")


def test_permanent_failure_is_not_retried(db):
    upload_id = queued(db)
    lifecycle.claim(db, upload_id, "w", lease_seconds=30, now=T0)
    assert fail(db, upload_id, InputError("bad"), max_attempts=5) == lifecycle.FAILED
    assert queries.get_upload(db, upload_id)["error_category"] == "input"


def test_degrade_ladder_then_memory_failure(db):
    from core.errors import MemoryLimitError
    upload_id = queued(db)
    error = MemoryLimitError("over the limit")
    statuses = []
    for _ in range(3):
        lifecycle.claim(db, upload_id, "w", lease_seconds=30, now=T0)
        statuses.append(fail(db, upload_id, error, max_attempts=1, degrade=True,
                             degrade_levels=3, now=T0))
    assert statuses == [lifecycle.QUEUED, lifecycle.QUEUED, lifecycle.FAILED]
    row = queries.get_upload(db, upload_id)
    assert row["degrade_level"] == 2 and row["error_category"] == "memory"


def test_retry_resets_and_cancel_stops(db):
    upload_id = queued(db)
    lifecycle.claim(db, upload_id, "w", lease_seconds=30, now=T0)
    fail(db, upload_id, InputError("bad"), max_attempts=1)
    assert lifecycle.retry(db, upload_id) == lifecycle.QUEUED
    row = queries.get_upload(db, upload_id)
    assert row["attempts"] == 0 and row["error_category"] is None
    assert lifecycle.cancel(db, upload_id) == lifecycle.CANCELLED
    with pytest.raises(StateError, match="CANCELLED"):
        lifecycle.cancel(db, upload_id)
    with pytest.raises(NotFoundError):
        lifecycle.retry(db, 999)


def test_cancel_takes_the_job_away_from_its_worker(db):
    upload_id = queued(db)
    lifecycle.claim(db, upload_id, "w", lease_seconds=30, now=T0)
    lifecycle.cancel(db, upload_id)
    assert not lifecycle.renew_lease(db, upload_id, "w", lease_seconds=30)
    assert not lifecycle.complete(db, upload_id, "w")
    assert queries.get_upload(db, upload_id)["status"] == lifecycle.CANCELLED


def test_reset_stuck_requeues_expired_and_dead_owner(db):
    expired = queued(db, sha="e")
    dead = queued(db, sha="d")
    live = queued(db, sha="l")
    lifecycle.claim(db, expired, "w-old", lease_seconds=10, now=T0)
    lifecycle.claim(db, dead, "w-dead", lease_seconds=1000, now=T0)
    lifecycle.claim(db, live, "w-live", lease_seconds=1000, now=T0)
    changed = lifecycle.reset_stuck(db, max_attempts=3, owner_alive=lambda o: o != "w-dead",
                               now=T0 + 60)
    assert sorted(changed) == [(expired, lifecycle.QUEUED), (dead, lifecycle.QUEUED)]
    assert queries.get_upload(db, live)["status"] == lifecycle.PROCESSING
    assert "retry" in events(db, expired)


def test_reset_stuck_fails_after_last_attempt_and_interrupted_uploads(db):
    upload_id = queued(db)
    lifecycle.claim(db, upload_id, "w", lease_seconds=10, now=T0)
    interrupted = lifecycle.create_upload(db, original_name="b.mp4", sha256="bb", size=1,
                                     mode="now", owner="s", lease_seconds=10, now=T0)
    changed = dict(lifecycle.reset_stuck(db, max_attempts=1, now=T0 + 60))
    assert changed == {upload_id: lifecycle.FAILED, interrupted: lifecycle.FAILED}
    assert queries.get_upload(db, interrupted)["error_category"] == "storage"
    assert queries.get_upload(db, upload_id)["error_category"] == "internal"


def test_release_hands_back_without_spending_an_attempt(db):
    upload_id = queued(db)
    lifecycle.claim(db, upload_id, "w", lease_seconds=30, now=T0)
    assert lifecycle.release(db, upload_id, "w", reason="shutting down")
    row = queries.get_upload(db, upload_id)
    assert row["status"] == lifecycle.QUEUED and row["attempts"] == 0


def test_next_queued_respects_priority_then_order(db):
    first = queued(db, sha="1")
    second = queued(db, sha="2")
    assert queries.next_queued(db, now=T0) == first
    db.execute("UPDATE uploads SET priority = 5 WHERE id = ?", [second])
    assert queries.next_queued(db, now=T0) == second


def test_set_mode_moves_between_now_and_offpeak(db):
    upload_id = queued(db)
    assert lifecycle.set_mode(db, upload_id, lifecycle.MODE_OFFPEAK) == lifecycle.DEFERRED
    assert lifecycle.set_mode(db, upload_id, lifecycle.MODE_NOW) == lifecycle.QUEUED
    assert queries.get_upload(db, upload_id)["mode"] == lifecycle.MODE_NOW


def test_internal_error_is_a_category():
    assert InternalError("x").category == "internal"
