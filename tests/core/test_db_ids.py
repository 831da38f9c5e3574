"""Upload ids are never reused: the AUTOINCREMENT migration keeps rows, links and indexes."""

from __future__ import annotations

from core.store import db as dbmod
from core.store import lifecycle
from tests.core.test_db import make_v3


def test_upgraded_database_never_reuses_the_newest_id(tmp_path):
    path = tmp_path / "peakops.db"
    make_v3(path)  # uploads 1 and 2, frames and labels, before AUTOINCREMENT
    db = dbmod.connect(path)
    assert dbmod.schema_version(db) == dbmod.SCHEMA_VERSION
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'uploads'").fetchone()[0]
    assert "AUTOINCREMENT" in sql and "rekognition_calls" in sql
    assert db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 3
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert {r[1] for r in db.execute("PRAGMA index_list(uploads)")} >= {
        "idx_uploads_status_priority_id", "idx_uploads_sha256", "idx_uploads_updated_at"}
    lifecycle.remove(db, 2, kind="cleanup", message="upload 2 removed")
    assert db.execute("SELECT upload_id FROM frames").fetchall() == [(1,), (1,)]  # cascade
    upload_id = lifecycle.create_upload(db, original_name="c.mp4", sha256="c" * 64, size=1,
                                   mode=lifecycle.MODE_NOW, owner="test", lease_seconds=60)
    assert upload_id == 3


def test_new_database_never_reuses_the_newest_id(tmp_path):
    db = dbmod.connect(tmp_path / "peakops.db")

    def create(n: int) -> int:
        return lifecycle.create_upload(db, original_name=f"{n}.mp4", sha256=f"{n:064x}", size=1,
                                  mode=lifecycle.MODE_NOW, owner="test", lease_seconds=60)

    first, second = create(1), create(2)
    lifecycle.remove(db, second, kind="cleanup", message="removed")
    assert create(3) == second + 1 > first
