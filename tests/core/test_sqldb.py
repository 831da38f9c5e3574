"""The state-database contract, run against SQLite and a real PostgreSQL server.

Implementations join by subclassing ``SqlDatabaseContract`` and providing ``connect``: a
callable that opens a new connection to one fresh, empty database.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from core.errors import DatabaseUnreachableError
from core.store import db as dbmod
from core.store import schema, state
from core.store.postgres import PostgresDatabase
from core.store.sqldb import (
    SqlDatabase,
    lock_key,
    to_pyformat,
)
from tests.helpers import REPO, wait_for

TABLES = {"uploads", "frames", "labels", "events", "workers", "restarts", "state",
          "memory_peaks"}
CLAIM = ("UPDATE uploads SET status = 'PROCESSING', lease_owner = ?, attempts = attempts + 1 "
         "WHERE id = ? AND status = 'QUEUED'")


def new_upload(db: SqlDatabase, status: str = "QUEUED", name: str = "site-1.mp4") -> int:
    return db.insert("INSERT INTO uploads (original_name, status, mode, created_at, updated_at) "
                     "VALUES (?, ?, 'now', ?, ?)", [name, status, 1000.0, 1000.0])


def columns(db: SqlDatabase, table: str) -> list[str]:
    return [c[0] for c in db.execute(f'SELECT * FROM "{table}" LIMIT 0').description]


def in_threads(count: int, work) -> list:
    """Run ``work(i)`` in ``count`` threads released together; results by index."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


class SqlDatabaseContract:
    """Behaviour the lifecycle relies on, identical on every database."""

    @pytest.fixture
    def db(self, connect):
        db = connect()
        schema.migrate(db)
        yield db
        db.close()

    @pytest.fixture
    def opened(self, connect):
        """Open more connections to the test's database; all closed at the end."""
        conns: list[SqlDatabase] = []

        def open_one() -> SqlDatabase:
            conns.append(connect())
            return conns[-1]
        yield open_one
        for conn in conns:
            conn.close()

    def test_placeholders_rows_and_rowcount(self, db):
        first, second = new_upload(db, name="what?.mp4"), new_upload(db, name="100%.mp4")
        assert second > first
        rows = list(db.query("SELECT id, original_name FROM uploads WHERE original_name "
                             "LIKE '%?%' OR original_name = ? ORDER BY id", ["100%.mp4"]))
        assert rows == [{"id": first, "original_name": "what?.mp4"},
                        {"id": second, "original_name": "100%.mp4"}]
        assert db.execute("SELECT COUNT(*) FROM uploads WHERE id IN (?, ?)",
                          [first, second]).fetchone()[0] == 2
        assert db.execute("UPDATE uploads SET priority = ? WHERE status = 'QUEUED'",
                          [5]).rowcount == 2
        assert db.execute("UPDATE uploads SET priority = 1 WHERE id = ?", [-1]).rowcount == 0

    def test_values_keep_their_type(self, db):
        upload_id = new_upload(db)
        db.execute("UPDATE uploads SET size = ?, duration = ?, error_message = ? WHERE id = ?",
                   [5_000_000_000, 1764412345.123456, "quote ' and \"double\" ünïcode",
                    upload_id])
        row = next(db.query("SELECT size, duration, error_message, attempts FROM uploads "
                            "WHERE id = ?", [upload_id]))
        assert row == {"size": 5_000_000_000, "duration": 1764412345.123456,
                       "error_message": "quote ' and \"double\" ünïcode", "attempts": 0}

    def test_values_cross_as_with_sqlite3(self, db):
        """bool in an INTEGER column; sums and averages as numbers; GREATEST/LEAST."""
        first, second = new_upload(db), new_upload(db)
        db.execute("UPDATE uploads SET has_audio = ?, size = ? WHERE id = ?",
                   [True, 3, first])
        db.execute("UPDATE uploads SET has_audio = ?, size = ? WHERE id = ?",
                   [False, 4, second])
        assert db.execute("SELECT has_audio FROM uploads ORDER BY id").fetchall() == [(1,), (0,)]
        assert db.execute("SELECT SUM(size), AVG(size), SUM(duration) FROM uploads"
                          ).fetchone() == (7, 3.5, None)
        assert db.execute("SELECT GREATEST(size - 4, 0), LEAST(size, 3.5), GREATEST(NULL, 2) "
                          "FROM uploads ORDER BY id").fetchall() == [(0, 3, 2), (0, 3.5, 2)]

    def test_transaction_commits_or_rolls_back_whole(self, db):
        with db.transaction():
            kept = new_upload(db)
        with pytest.raises(RuntimeError), dbmod.transaction(db):
            new_upload(db, name="inner-1.mp4")
            with db.transaction():  # nested: joins the outer one
                new_upload(db, name="inner-2.mp4")
            raise RuntimeError("undo both")
        assert not db.in_transaction
        assert [r["id"] for r in db.query("SELECT id FROM uploads")] == [kept]

    def test_claim_waits_for_a_write_transaction_and_loses(self, db, opened):
        upload_id = new_upload(db)
        other = opened()
        result: dict[str, int] = {}
        worker = threading.Thread(
            target=lambda: result.update(b=other.execute(CLAIM, ["b", upload_id]).rowcount))
        with db.transaction():
            assert db.execute(CLAIM, ["a", upload_id]).rowcount == 1
            worker.start()
            worker.join(timeout=0.5)
            assert worker.is_alive()  # it cannot finish while the write lock is held
        worker.join(timeout=60)
        assert result == {"b": 0}
        assert next(db.query("SELECT lease_owner, attempts FROM uploads WHERE id = ?",
                             [upload_id])) == {"lease_owner": "a", "attempts": 1}

    def test_concurrent_claims_only_one_wins(self, db, opened):
        upload_id = new_upload(db)
        conns = [opened() for _ in range(6)]
        won = in_threads(6, lambda i: conns[i].execute(CLAIM, [f"w{i}", upload_id]).rowcount)
        assert sorted(won) == [0, 0, 0, 0, 0, 1]
        owner = db.execute("SELECT lease_owner FROM uploads WHERE id = ?", [upload_id]).fetchone()
        assert owner[0] == f"w{won.index(1)}"

    def test_atomic_counter_across_connections(self, db, opened):
        """The shared Rekognition budget: core.store.state.increment, unchanged, on each database."""
        conns = [opened() for _ in range(4)]
        seen = in_threads(4, lambda i: [state.increment(conns[i], "calls.2026-11-29")
                                        for _ in range(15)])
        values = sorted(v for per_thread in seen for v in per_thread)
        assert values == list(range(1, 61))  # every call got its own number
        assert state.get(db, "calls.2026-11-29") == 60

    def test_shared_budget_is_never_overdrawn(self, db, opened):
        """Reserve-before-spend across connections: exactly ``limit`` reservations."""
        conns = [opened() for _ in range(5)]

        def spend(i: int) -> int:
            granted = 0
            while state.reserve(conns[i], "budget.2026-11-29", 23):
                granted += 1
            return granted
        assert sum(in_threads(5, spend)) == 23
        assert state.get(db, "budget.2026-11-29") == 23
        assert not state.reserve(db, "budget.2026-11-29", 23)
        assert state.increment(db, "budget.2026-11-29", -1) == 22  # a refund
        assert state.reserve(db, "budget.2026-11-29", 23)
        assert not state.reserve(db, "budget.other", 0)

    def test_now_is_the_database_clock(self, db):
        upload_id = new_upload(db)
        before = db.now()
        db.execute(f"UPDATE uploads SET lease_expires_at = {db.now_sql} + ? WHERE id = ?",
                   [60, upload_id])
        after = db.now()
        expires = db.execute("SELECT lease_expires_at FROM uploads WHERE id = ?",
                             [upload_id]).fetchone()[0]
        assert before <= expires - 60 <= after
        with db.transaction():  # not frozen at the transaction's start
            start = db.now()
            time.sleep(0.05)
            assert db.now() > start
        # Epoch seconds: the test's machine runs the server, so the clocks are one.
        assert abs(db.now() - time.time()) < 60

    def test_migrations_twice_are_a_no_op(self, connect):
        db = connect()
        try:
            assert db.schema_version() == 0
            assert schema.migrate(db) == schema.SCHEMA_VERSION
            shape = {t: columns(db, t) for t in TABLES}
            upload_id = new_upload(db)
            assert schema.migrate(db) == schema.SCHEMA_VERSION
            assert {t: columns(db, t) for t in TABLES} == shape
            assert db.execute("SELECT rekognition_calls FROM uploads WHERE id = ?",
                              [upload_id]).fetchone() == (0,)
        finally:
            db.close()

    def test_concurrent_openers_migrate_once(self, opened):
        conns = [opened() for _ in range(3)]
        assert in_threads(3, lambda i: schema.migrate(conns[i])) == [schema.SCHEMA_VERSION] * 3
        assert set(columns(conns[0], "uploads")) >= {"id", "status", "rekognition_calls"}

    def test_named_lock_held_by_one_connection(self, db, opened):
        other = opened()
        assert db.try_lock("peakops.leader")
        assert db.try_lock("peakops.leader")  # re-taking one's own lock
        assert not other.try_lock("peakops.leader")
        assert other.try_lock("peakops.reaper")  # names are independent
        db.unlock("peakops.leader")
        assert other.try_lock("peakops.leader")
        other.close()
        assert db.try_lock("peakops.leader")  # a closed connection lets go
        with pytest.raises(ValueError):
            db.try_lock("../etc/passwd")

    def test_named_lock_goes_with_a_killed_process(self, db, target):
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, *target], cwd=REPO, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            assert not db.try_lock("peakops.leader")
        finally:
            holder.kill()
            holder.wait()
        # The server notices the closed socket.
        wait_for(lambda: db.try_lock("peakops.leader"), timeout=30,
                 what="the lock to go with its process")


LOCK_HOLDER = """
import sys
from core.store.postgres import PostgresDatabase
from core.store.sqldb import SqliteDatabase
from core.store.db import open_sqlite
from pathlib import Path
kind, where = sys.argv[1:3]
db = (PostgresDatabase.connect(where) if kind == "postgresql"
      else open_sqlite(Path(where)))
print("locked" if db.try_lock("peakops.leader") else "busy", flush=True)
sys.stdin.read()
"""


class TestSqlite(SqlDatabaseContract):
    @pytest.fixture
    def connect(self, tmp_path):
        path = tmp_path / "state.db"
        return lambda: dbmod.open_sqlite(path, check_same_thread=False)

    @pytest.fixture
    def target(self, tmp_path):
        return ["sqlite", str(tmp_path / "state.db")]

    def test_schema_is_the_one_sqlite_utils_made(self, tmp_path, db):
        """A database made by an earlier release (sqlite-utils, version 3), once upgraded,
        has exactly the shape of a new one."""
        old = dbmod.open_sqlite(tmp_path / "old.db")
        for sql in OLD_SCHEMA:
            old.execute(sql)
        old.set_schema_version(3)
        assert dbmod.migrate(old) == schema.SCHEMA_VERSION
        for table in TABLES:
            for pragma in ("table_info", "index_list", "foreign_key_list"):
                assert (old.execute(f'PRAGMA {pragma}("{table}")').fetchall()
                        == db.execute(f'PRAGMA {pragma}("{table}")').fetchall()), (table, pragma)
        old.close()

    def test_open_database_follows_the_settings(self, tmp_path):
        from tests.helpers import make_settings
        default = dbmod.open_database(make_settings(tmp_path / "home"))
        elsewhere = dbmod.open_database(make_settings(
            tmp_path / "home", database_url=f"sqlite:///{tmp_path}/shared/state.db"))
        try:
            assert default.path == tmp_path / "home" / "peakops.db"
            assert elsewhere.path == tmp_path / "shared" / "state.db"
            assert elsewhere.schema_version() == schema.SCHEMA_VERSION
            assert elsewhere.describe().startswith("SQLite 3.")
        finally:
            default.close()
            elsewhere.close()

    def test_core_db_connect_uses_the_same_migrations(self, tmp_path):
        db = dbmod.connect(tmp_path / "peakops.db")
        assert db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        # sqlite_sequence: SQLite's own record of AUTOINCREMENT (upload ids never reused)
        assert {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")} == TABLES | {"sqlite_sequence"}
        db.conn.close()


class TestPostgres(SqlDatabaseContract):
    @pytest.fixture
    def connect(self, postgres_url):
        return lambda: PostgresDatabase.connect(postgres_url)

    @pytest.fixture
    def target(self, postgres_url):
        return ["postgresql", postgres_url]

    def test_same_tables_and_columns_as_sqlite(self, tmp_path, db):
        lite = dbmod.open_sqlite(tmp_path / "ref.db")
        schema.migrate(lite)
        assert {t: columns(db, t) for t in TABLES} == {t: columns(lite, t) for t in TABLES}
        lite.close()

    def test_unreachable_or_refused_is_one_line_without_password(self, postgres_instance):
        from tests.servers import HOST, free_port
        wrong = postgres_instance.url().replace(postgres_instance.password, "not-the-pw-42")
        nobody = f"postgresql://peakops:pw-nobody-7@{HOST}:{free_port()}/peakops"
        reasons = {wrong: "password authentication failed", nobody: "Connection refused"}
        for url, secret in ((wrong, "not-the-pw-42"), (nobody, "pw-nobody-7")):
            with pytest.raises(DatabaseUnreachableError) as info:
                PostgresDatabase.connect(url)
            message = str(info.value)
            assert message.startswith("database postgresql://peakops:***@127.0.0.1:")
            assert secret not in message and "\n" not in message
            assert reasons[url] in message  # the cause, not libpq's hint line
            assert info.value.transient


    def test_dropped_connection_reconnects_once_and_never_replays_a_write(self, db, opened,
                                                                          postgres_instance):
        admin = opened()

        def drop() -> None:  # the server ends the session, as a restart or a cut would
            admin.execute("SELECT pg_terminate_backend(?, 10000)",
                          [db.execute("SELECT pg_backend_pid()").fetchone()[0]])
        drop()
        # A read runs again on a new connection.
        assert db.execute("SELECT COUNT(*) FROM uploads").fetchone() == (0,)
        drop()
        # A write on a connection that went while idle: its BEGIN finds it gone before the
        # write was sent, so it runs once, on a new connection.
        assert state.increment(db, "k") == 1
        # A write transaction that loses its connection midway is never resumed or
        # replayed on a new one: one transient error, and nothing of it committed.
        with pytest.raises(DatabaseUnreachableError) as info, db.transaction():
            state.increment(db, "k")
            drop()
            state.increment(db, "k")
        assert info.value.transient and "unreachable" in str(info.value)
        assert postgres_instance.password not in str(info.value)
        assert state.get(db, "k") == 1  # the next statement has a new connection


def test_placeholder_translation():
    assert to_pyformat("SELECT ? WHERE a LIKE 'x%?' AND b = ?") == \
        "SELECT %s WHERE a LIKE 'x%%?' AND b = %s"
    assert to_pyformat("SELECT \"we?ird\", 'it''s ?', ? -- what?\n/* ? */") == \
        "SELECT \"we?ird\", 'it''s ?', %s -- what?\n/* ? */"
    assert to_pyformat("SELECT 5 % 2") == "SELECT 5 %% 2"


def test_lock_keys_are_stable_signed_64_bit():
    assert lock_key("peakops.leader") == lock_key("peakops.leader") != lock_key("peakops.x")
    assert -(2 ** 63) <= lock_key("peakops.leader") < 2 ** 63


# The schema earlier releases created with sqlite-utils (sqlite_master, as they wrote it).
OLD_SCHEMA = [
    'CREATE TABLE "uploads" (\n   "id" INTEGER PRIMARY KEY,\n   "original_name" TEXT NOT NULL,\n   "sha256" TEXT,\n   "size" INTEGER,\n   "status" TEXT NOT NULL,\n   "mode" TEXT NOT NULL,\n   "priority" INTEGER DEFAULT 0,\n   "error_category" TEXT,\n   "error_message" TEXT,\n   "attempts" INTEGER DEFAULT 0,\n   "degrade_level" INTEGER DEFAULT 0,\n   "not_before" REAL,\n   "storage_key" TEXT,\n   "duration" REAL,\n   "width" INTEGER,\n   "height" INTEGER,\n   "codec" TEXT,\n   "fps" REAL,\n   "rotation" INTEGER,\n   "has_audio" INTEGER,\n   "stage" TEXT,\n   "progress_done" INTEGER,\n   "progress_total" INTEGER,\n   "created_at" REAL NOT NULL,\n   "updated_at" REAL NOT NULL,\n   "started_at" REAL,\n   "finished_at" REAL,\n   "lease_owner" TEXT,\n   "lease_expires_at" REAL,\n   "peak_rss_kib" INTEGER,\n   "frames_planned" INTEGER\n, "rekognition_calls" INTEGER NOT NULL DEFAULT 0)',
    'CREATE INDEX "idx_uploads_status_priority_id"\n    ON "uploads" ("status", "priority", "id")',
    'CREATE INDEX "idx_uploads_sha256"\n    ON "uploads" ("sha256")',
    'CREATE INDEX "idx_uploads_updated_at"\n    ON "uploads" ("updated_at")',
    'CREATE TABLE "frames" (\n   "id" INTEGER PRIMARY KEY,\n   "upload_id" INTEGER REFERENCES "uploads"("id"),\n   "idx" INTEGER,\n   "timestamp" REAL,\n   "storage_key" TEXT,\n   "width" INTEGER,\n   "height" INTEGER,\n   "sharpness" REAL,\n   "brightness" REAL,\n   "overexposed" REAL,\n   "dhash" TEXT,\n   "created_at" REAL,\n   "analyzed_at" REAL\n)',
    'CREATE UNIQUE INDEX "idx_frames_upload_id_idx"\n    ON "frames" ("upload_id", "idx")',
    'CREATE TABLE "labels" (\n   "id" INTEGER PRIMARY KEY,\n   "frame_id" INTEGER REFERENCES "frames"("id"),\n   "name" TEXT,\n   "confidence" REAL,\n   "source" TEXT\n)',
    'CREATE INDEX "idx_labels_frame_id"\n    ON "labels" ("frame_id")',
    'CREATE TABLE "events" (\n   "id" INTEGER PRIMARY KEY,\n   "at" REAL,\n   "upload_id" INTEGER,\n   "kind" TEXT,\n   "message" TEXT\n)',
    'CREATE INDEX "idx_events_upload_id_id"\n    ON "events" ("upload_id", "id")',
    'CREATE TABLE "workers" (\n   "name" TEXT PRIMARY KEY,\n   "pid" INTEGER,\n   "host" TEXT,\n   "state" TEXT,\n   "upload_id" INTEGER,\n   "stage" TEXT,\n   "progress_done" INTEGER,\n   "progress_total" INTEGER,\n   "rss_kib" INTEGER,\n   "peak_kib" INTEGER,\n   "soft_limit_kib" INTEGER,\n   "hard_limit_kib" INTEGER,\n   "jobs_done" INTEGER,\n   "child_pid" INTEGER,\n   "child_starts" INTEGER,\n   "started_at" REAL,\n   "last_seen" REAL\n)',
    'CREATE TABLE "restarts" (\n   "id" INTEGER PRIMARY KEY,\n   "at" REAL,\n   "worker" TEXT,\n   "cause" TEXT,\n   "upload_id" INTEGER,\n   "rss_kib" INTEGER,\n   "message" TEXT\n)',
    'CREATE INDEX "idx_restarts_worker_id"\n    ON "restarts" ("worker", "id")',
    'CREATE TABLE "state" (\n   "key" TEXT PRIMARY KEY,\n   "value" TEXT,\n   "updated_at" REAL\n)',
]
