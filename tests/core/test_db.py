"""Schema migrations: a version-3 database with data upgrades in place to the cascade."""

from __future__ import annotations

import sqlite3

from core.store import db as dbmod
from core.store import lifecycle, queries, schema


def make_v3(path):
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for number in range(1, 4):
        for sql in schema.statements(number, "sqlite"):
            conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute("INSERT INTO uploads (id, original_name, status, mode, created_at, updated_at) "
                 "VALUES (1, 'a.mp4', 'DONE', 'now', 0, 0), (2, 'b.mp4', 'DONE', 'now', 0, 0)")
    for frame_id, upload_id in ((10, 1), (11, 1), (20, 2)):
        conn.execute("INSERT INTO frames (id, upload_id, idx, timestamp, storage_key) "
                     "VALUES (?, ?, ?, 1.5, 'frames/x.jpg')", [frame_id, upload_id, frame_id % 10])
        conn.execute("INSERT INTO labels (frame_id, name, confidence, source) "
                     "VALUES (?, 'crack', 90, 'local')", [frame_id])
    conn.close()


def test_version_3_database_upgrades_keeping_rows_and_cascades(tmp_path):
    path = tmp_path / "peakops.db"
    make_v3(path)
    db = dbmod.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == dbmod.SCHEMA_VERSION >= 4
    assert db.execute("SELECT id, upload_id, idx, timestamp FROM frames ORDER BY id").fetchall() \
        == [(10, 1, 0, 1.5), (11, 1, 1, 1.5), (20, 2, 0, 1.5)]
    assert db.execute("SELECT frame_id, name FROM labels ORDER BY frame_id").fetchall() == [
        (10, "crack"), (11, "crack"), (20, "crack")]
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    lifecycle.remove(db, 1, kind="deleted", message="upload 1 deleted")
    assert db.execute("SELECT id FROM frames").fetchall() == [(20,)]
    assert db.execute("SELECT frame_id FROM labels").fetchall() == [(20,)]
    assert [u["id"] for u in queries.list_uploads(db)] == [2]
    # The unique frame index survives the rebuild.
    indexes = {r[1] for r in db.execute("PRAGMA index_list(frames)")}
    assert "idx_frames_upload_id_idx" in indexes
