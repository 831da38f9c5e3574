"""The learned start level on both real state databases (SQLite, and PostgreSQL on the
session's throwaway server): which level a kind starts at."""

from __future__ import annotations

import pytest

from core.jobs import learned
from core.media.facts import ProbeResult
from core.store.db import open_database
from tests.databases import database_url, state_settings  # noqa: F401  (fixture)

AV1_4K = ProbeResult(duration=10.0, width=3840, height=2160, codec="av1", fps=30.0, rotation=0,
                     has_audio=False, container="mp4", coded_width=3840, coded_height=2160,
                     pix_fmt="yuv420p")
HEVC10 = ProbeResult(duration=10.0, width=1920, height=1080, codec="hevc", fps=30.0,
                     rotation=0, has_audio=False, container="mp4", pix_fmt="yuv420p10le")


@pytest.fixture
def db(tmp_path, database_url):  # noqa: F811
    db = open_database(state_settings(tmp_path / "home", database_url))
    yield db
    db.close()


def test_kind_and_label() -> None:
    assert learned.kind_of(AV1_4K) == "av1 3840x2160 8-bit"
    assert learned.label(learned.kind_of(AV1_4K)) == "4K AV1"
    assert learned.label(learned.kind_of(HEVC10)) == "1080p HEVC 10-bit"


def test_start_level_follows_what_fit(db) -> None:
    assert learned.start_level(db, AV1_4K) is None  # nothing learned
    learned.record(db, 3, AV1_4K, level=0, peak_kib=120_000, over_limit=False, now=1.0)
    assert learned.start_level(db, AV1_4K) is None  # it fit at level 0
    learned.record(db, 12, AV1_4K, level=0, peak_kib=152_576, over_limit=True, now=2.0)
    start = learned.start_level(db, AV1_4K)  # went over since; no level below fit yet
    assert start == learned.StartLevel(
        1, "started at level 1: 4K AV1 peaked at 149 MB at level 0 on upload 12")
    learned.record(db, 12, AV1_4K, level=1, peak_kib=150_000, over_limit=True, now=3.0)
    learned.record(db, 12, AV1_4K, level=2, peak_kib=90_000, over_limit=False, now=4.0)
    assert learned.start_level(db, AV1_4K).level == 2
    assert learned.start_level(db, HEVC10) is None  # another kind learns on its own
    assert [(r["level"], r["jobs"], r["over_limit"]) for r in learned.learned(db)] == [
        (0, 2, True), (1, 1, True), (2, 1, False)]
    assert learned.clear(db, "hevc 1920x1080 10-bit") == 0
    assert learned.clear(db) == 4
    assert learned.start_level(db, AV1_4K) is None


def test_begin_moves_a_claimed_upload_and_says_why(db) -> None:
    learned.record(db, 12, AV1_4K, level=0, peak_kib=152_576, over_limit=True, now=2.0)
    db.execute("INSERT INTO uploads (id, original_name, status, mode, degrade_level, probe, "
               "created_at, updated_at) VALUES (13, 'a.mp4', 'PROCESSING', 'now', 0, ?, 1, 1)",
               [AV1_4K.to_json()])
    row = next(db.query("SELECT * FROM uploads WHERE id = 13"))
    moved = learned.begin(db, row)
    assert moved["degrade_level"] == 1
    assert next(db.query("SELECT degrade_level FROM uploads WHERE id = 13"))["degrade_level"] == 1
    [event] = db.query("SELECT kind, message FROM events WHERE upload_id = 13")
    assert event == {"kind": "start-level", "message":
                     "started at level 1: 4K AV1 peaked at 149 MB at level 0 on upload 12"}
    learned.note(db, moved, kind="result", ok=True, peak_kib=100_000)
    assert learned.start_level(db, AV1_4K).level == 1
