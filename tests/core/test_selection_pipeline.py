"""Frame selection through a real job: each plan on generated clips, the per-frame facts
in the state database, ``show --json``, the exports and the report, and a reprocess that
changes the plan for one upload (real ffmpeg, SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlite_utils

from core import operations
from core.app import open_app
from core.intake import submit_file
from core.jobs import pipeline
from core.media.samples import make_scene
from core.results import export
from core.results.report import frame_note
from core.storage.local import LocalStore
from core.store import lifecycle, queries
from tests.databases import state_settings
from tests.helpers import cli_json, make_settings


@pytest.fixture(scope="module")
def handheld(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("clips") / "handheld.mp4", "handheld-blur",
                      seconds=8.0)


@pytest.fixture(scope="module")
def still_then_pan(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("clips") / "still-then-pan.mp4",
                      "still-then-pan", seconds=8.0)


def open_home(tmp_path, database_url=None, **overrides):
    home = tmp_path / "home"
    return open_app(state_settings(home, database_url, max_frames_per_video=10, **overrides),
                    store=LocalStore(home / "objects"))


def run(app, video):
    upload_id = submit_file(app, video).upload_id
    assert pipeline.process_now(app, upload_id, "test") == lifecycle.DONE
    return upload_id, queries.detail(app.db, upload_id).frames


def test_sharpest_takes_sharper_frames_than_even_and_records_why(tmp_path, database_url,
                                                                 handheld):
    app = open_home(tmp_path, database_url, frame_selection="even")
    try:
        upload_id, even = run(app, handheld)
        operations.reprocess(app, [upload_id], "sharpest")
        assert queries.get_upload(app.db, upload_id)["frame_selection"] == "sharpest"
        assert pipeline.process_now(app, upload_id, "test") == lifecycle.DONE
        sharp = queries.detail(app.db, upload_id).frames
        upload = queries.get_upload(app.db, upload_id)
    finally:
        app.close()
    assert len(even) == len(sharp) == 10
    assert all(f["reason"] == "middle of the slice" for f in even)
    assert all(f["reason"].startswith("sharpest of ") for f in sharp)
    # Three frames of five are blurred: the middles mostly land on them, sharpest never.
    mean = lambda frames: sum(f["focus"] for f in frames) / len(frames)  # noqa: E731
    assert mean(sharp) > 3 * mean(even)
    assert min(f["focus"] for f in sharp) > max(f["focus"] for f in even if f["stream_frame"] % 5 < 3)
    for f in sharp:  # the facts of each frame
        assert f["stream_frame"] % 5 >= 3  # never one of the blurred frames
        assert f["source_time"] == pytest.approx(f["stream_frame"] / 25, abs=1e-3)
        assert f["timestamp"] == pytest.approx(f["source_time"], abs=1e-3)
        assert f["keyframe"] is (f["stream_frame"] % 12 == 0)  # the clip's GOP is 12
    numbers = [f["stream_frame"] for f in sharp]
    assert numbers == sorted(set(numbers))
    assert upload["vfr"] == 0  # a constant 25 fps


def test_coverage_spends_the_frames_on_the_pan(tmp_path, still_then_pan):
    app = open_home(tmp_path, frame_selection="coverage")
    try:
        upload_id, frames = run(app, still_then_pan)
    finally:
        app.close()
    still = [f for f in frames if f["timestamp"] < 4.0]
    assert len(frames) == 10 and len(still) <= 2
    assert all(f["reason"] == "placed by picture change" for f in frames)


def test_facts_go_out_through_show_exports_and_report(tmp_path, handheld):
    settings = make_settings(tmp_path / "home", max_frames_per_video=4, frame_selection="sharpest")
    app = open_app(settings)
    try:
        upload_id, frames = run(app, handheld)
        shown = cli_json(settings.home, "show", str(upload_id))
        stream = io.StringIO()
        export.export(app, "csv", export.Selection(), stream=stream)
        jsonl = io.StringIO()
        export.export(app, "jsonl", export.Selection(), stream=jsonl)
        db_path = tmp_path / "out.db"
        export.export(app, "sqlite", export.Selection(), dest=db_path)
    finally:
        app.close()
    facts = ("stream_frame", "source_time", "keyframe", "focus", "reason")
    for frame, shown_frame in zip(frames, shown["frames"], strict=True):
        assert {k: shown_frame[k] for k in facts} == {k: frame[k] for k in facts}
    assert shown["vfr"] is False
    rows = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert [int(r["stream_frame"]) for r in rows] == [f["stream_frame"] for f in frames]
    assert all(r["reason"].startswith("sharpest of ") and r["vfr"] == "False" for r in rows)
    lines = [json.loads(line) for line in jsonl.getvalue().splitlines()]
    assert [line["focus"] for line in lines] == [f["focus"] for f in frames]
    assert all(isinstance(line["keyframe"], bool) for line in lines)
    exported = list(sqlite_utils.Database(db_path).query(
        "SELECT stream_frame, source_time, focus, reason FROM frames ORDER BY idx"))
    assert [r["stream_frame"] for r in exported] == [f["stream_frame"] for f in frames]
    note = frame_note(frames[0])
    assert note.startswith(f"#{frames[0]['stream_frame']}") and "focus" in note
    assert frames[0]["reason"] in note


def test_reprocess_refuses_an_unknown_plan(tmp_path):
    app = open_home(tmp_path)
    try:
        with pytest.raises(Exception, match="even, sharpest, coverage"):
            operations.reprocess(app, [1], "best")
    finally:
        app.close()


def test_a_held_view_names_the_frame_it_duplicates(tmp_path):
    video = make_scene(tmp_path / "static.mp4", "static", seconds=3.0)
    app = open_home(tmp_path)
    try:
        upload_id, frames = run(app, video)
    finally:
        app.close()
    assert frames[0]["duplicate_of"] is None
    assert [f["duplicate_of"] for f in frames[1:]] == [f["idx"] for f in frames[:-1]]


def test_the_report_captions_each_thumbnail_with_its_facts(tmp_path, handheld):
    from datetime import UTC, datetime, timedelta
    from html import escape

    from core.results import report

    start = datetime(2025, 3, 4, 22, tzinfo=UTC)
    app = open_home(tmp_path, frame_selection="sharpest")
    try:
        upload_id = submit_file(app, handheld).upload_id
        operations.reprocess(app, [upload_id], "coverage")  # QUEUED: only the plan changes
        owner = "worker@test:1"
        assert lifecycle.claim(app.db, upload_id, owner, lease_seconds=600,
                               now=(start + timedelta(hours=1)).timestamp())
        pipeline.run(app, upload_id, owner)
        lifecycle.complete(app.db, upload_id, owner, now=(start + timedelta(hours=2)).timestamp())
        frames = {f["idx"]: f for f in queries.detail(app.db, upload_id).frames}
        data = report.write_report(app, start=start, end=start + timedelta(hours=8),
                                   now=start + timedelta(hours=8))
    finally:
        app.close()
    text = data.path.read_text("utf-8")
    [line] = data.processed
    assert line.selection == "coverage" and "frames: coverage" in text
    assert line.thumbs and all(t.facts == frame_note(frames[t.frame_index]) for t in line.thumbs)
    for thumb in line.thumbs:
        assert escape(thumb.facts, quote=True) in text
        assert "placed by picture change" in thumb.facts and "focus" in thumb.facts
