"""Submit and process real clips end to end: real ffmpeg, a local store, and each state
database (SQLite and a real PostgreSQL, the ``database_url`` fixture)."""

from __future__ import annotations

import shutil

import pytest

from core.app import open_app
from core.errors import InputError
from core.intake import display_name, submit_file
from core.jobs import pipeline
from core.storage.local import LocalStore, frame_key
from core.store import lifecycle, queries
from tests.databases import state_settings
from tests.helpers import MEDIA_DEV, make_settings


@pytest.fixture
def app(tmp_path, database_url):
    home = tmp_path / "home"
    application = open_app(state_settings(home, database_url, max_frames_per_video=6),
                           store=LocalStore(home / "objects"))
    yield application
    application.close()


def leftovers(app):
    return list(app.settings.tmp_dir.iterdir())


def frame_rows(app, upload_id):
    return list(app.db.query("SELECT * FROM frames WHERE upload_id = ? ORDER BY idx",
                             [upload_id]))


@pytest.mark.parametrize("clip", ["clip_h264", "clip_vp9", "clip_rotated", "clip_noaudio",
                                  "clip_no_duration"])
def test_clip_ends_done_with_frames_and_labels(app, clip, request):
    path = request.getfixturevalue(clip)
    result = submit_file(app, path)
    assert result.status == lifecycle.QUEUED and not result.duplicate
    assert pipeline.process_now(app, result.upload_id, "test") == lifecycle.DONE
    detail = queries.detail(app.db, result.upload_id)
    assert len(detail.frames) == 6
    assert all(f["labels"] for f in detail.frames)
    assert all(app.store.exists(f["storage_key"]) for f in detail.frames)
    timestamps = [f["timestamp"] for f in detail.frames]
    assert timestamps == sorted(timestamps) and len(set(timestamps)) == 6
    if clip == "clip_rotated":
        assert all(f["height"] > f["width"] for f in detail.frames)
    assert [e["kind"] for e in detail.events][-1] == "done"
    assert leftovers(app) == []


def test_duplicate_content_is_reported_not_stored_twice(app, clip_h264, tmp_path):
    first = submit_file(app, clip_h264)
    copy = tmp_path / "same content.mp4"
    shutil.copy(clip_h264, copy)
    second = submit_file(app, copy)
    assert second.duplicate_of == first.upload_id
    assert app.db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0] == 1


def test_rerun_resumes_from_checkpointed_frames(app, clip_10s):
    upload_id = submit_file(app, clip_10s).upload_id
    lifecycle.claim(app.db, upload_id, "w1", lease_seconds=60)
    calls = []
    real_extractor = app.extractor

    class ThreeThenDie:
        """A FrameExtractor whose sources die after three frames."""

        def open(self, video, facts, options, *, name=None):
            source = real_extractor.open(video, facts, options, name=name)
            real_take = source.take

            def take(slots, dest_for, **kwargs):
                for result in real_take(slots, dest_for, **kwargs):
                    calls.append(result.slot)
                    if len(calls) > 3:
                        raise KeyboardInterrupt  # stands in for the process dying mid-job
                    yield result

            source.take = take
            return source

    app.extractor = ThreeThenDie()
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(app, upload_id, "w1")
    assert len(frame_rows(app, upload_id)) == 3
    app.extractor = real_extractor
    lifecycle.release(app.db, upload_id, "w1", reason="test")
    lifecycle.claim(app.db, upload_id, "w2", lease_seconds=60)
    result = pipeline.run(app, upload_id, "w2")
    assert (result.frames_total, result.frames_extracted) == (6, 3)
    rows = frame_rows(app, upload_id)
    assert [r["idx"] for r in rows] == list(range(6))
    assert all(r["analyzed_at"] for r in rows)


def test_degraded_level_takes_a_subset_of_the_same_plan(app, clip_10s):
    upload_id = submit_file(app, clip_10s).upload_id
    app.db.execute("UPDATE uploads SET degrade_level = 2 WHERE id = ?", [upload_id])
    assert pipeline.process_now(app, upload_id, "w") == lifecycle.DONE
    rows = frame_rows(app, upload_id)
    assert [r["idx"] for r in rows] == [0, 4]
    assert all(r["width"] <= 640 for r in rows)


def test_a_level_whose_frames_all_exist_records_its_own_plan(app, clip_10s):
    """Level 1 (frames 0, 2, 4 of 6) stores its frames and dies analysing; level 2 plans
    0 and 4, both stored: no extraction, and the upload records level 2's plan."""
    upload_id = submit_file(app, clip_10s).upload_id
    app.db.execute("UPDATE uploads SET degrade_level = 1 WHERE id = ?", [upload_id])
    lifecycle.claim(app.db, upload_id, "w1", lease_seconds=60)
    real_analyze = app.analyzer.analyze

    def die(*args):
        raise KeyboardInterrupt  # stands in for the tree killed at the hard limit

    app.analyzer.analyze = die
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(app, upload_id, "w1")
    assert queries.get_upload(app.db, upload_id)["frames_planned"] == 3
    app.analyzer.analyze = real_analyze
    lifecycle.release(app.db, upload_id, "w1", reason="test")
    app.db.execute("UPDATE uploads SET degrade_level = 2 WHERE id = ?", [upload_id])
    lifecycle.claim(app.db, upload_id, "w2", lease_seconds=60)
    result = pipeline.run(app, upload_id, "w2")
    assert (result.frames_extracted, result.frames_analysed) == (0, 3)
    assert [r["idx"] for r in frame_rows(app, upload_id)] == [0, 2, 4]
    assert queries.get_upload(app.db, upload_id)["frames_planned"] == 2


def test_cancel_during_processing_stops_the_job(app, clip_10s):
    upload_id = submit_file(app, clip_10s).upload_id
    lifecycle.claim(app.db, upload_id, "w", lease_seconds=60)
    seen = []

    def cancel_after_first(stage, done, total):
        seen.append((stage, done))
        if stage == "extracting" and done == 1:
            lifecycle.cancel(app.db, upload_id)

    from core.errors import CancelledError
    with pytest.raises(CancelledError):
        pipeline.run(app, upload_id, "w", on_progress=cancel_after_first)
    assert queries.get_upload(app.db, upload_id)["status"] == lifecycle.CANCELLED
    assert leftovers(app) == []


def test_reanalyse_replaces_labels_without_extracting(app, clip_h264):
    upload_id = submit_file(app, clip_h264).upload_id
    pipeline.process_now(app, upload_id, "w")
    lifecycle.request_reanalysis(app.db, upload_id)  # labels dropped, frames kept
    lifecycle.claim(app.db, upload_id, "w", lease_seconds=60)
    result = pipeline.run(app, upload_id, "w")
    assert (result.frames_extracted, result.frames_analysed) == (0, 6)
    labels = app.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
    assert labels == result.labels


@pytest.mark.parametrize("maker, reason", [
    ("empty", "empty"),
    ("text_as_mp4", "notes.mp4"),
    ("truncated", "truncated.mp4"),
    ("audio_only", "no video stream"),
    ("png_as_mp4", "photo.mp4"),
    ("oversize", "over the 1 MB limit"),
    ("folder", "is a folder"),
    ("missing", "no such file"),
])
def test_bad_input_is_refused_with_a_clear_message(tmp_path, maker, reason, request):
    app = open_app(make_settings(tmp_path / "home", max_video_size_mb=1))
    path = {
        "empty": lambda: _write(tmp_path / "empty.mp4", b""),
        "truncated": lambda: _truncate(request.getfixturevalue("clip_10s"), tmp_path),
        "oversize": lambda: _write(tmp_path / "big.mp4", b"\0" * (1024 * 1024 + 1)),
        "folder": lambda: _mkdir(tmp_path / "videos.mp4"),
        "missing": lambda: tmp_path / "nowhere.mp4",
    }.get(maker, lambda: request.getfixturevalue(maker))()
    with pytest.raises(InputError) as info:
        submit_file(app, path)
    message = str(info.value)
    assert reason in message and "Traceback" not in message and "\n" not in message
    for row in queries.list_uploads(app.db):
        assert (row["status"], row["error_category"]) == (lifecycle.FAILED, "input")
    assert app.db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 0
    assert leftovers(app) == []
    assert not [p for p in (app.settings.home / "objects").rglob("*") if p.is_file()]


def test_stored_copy_vanished_before_processing(app, clip_h264):
    upload_id = submit_file(app, clip_h264).upload_id
    app.store.delete(queries.get_upload(app.db, upload_id)["storage_key"])
    assert pipeline.process_now(app, upload_id, "w") == lifecycle.FAILED
    row = queries.get_upload(app.db, upload_id)
    assert row["error_category"] == "input" and "missing" in row["error_message"]
    assert not app.store.exists(frame_key(upload_id, 0))
    assert leftovers(app) == []


def test_names_from_users_are_only_text(app, clip_h264, tmp_path):
    odd = tmp_path / "../weird name ünïcode \x07.mp4"
    shutil.copy(clip_h264, odd)
    result = submit_file(app, odd)
    row = queries.get_upload(app.db, result.upload_id)
    assert row["original_name"] == "weird name ünïcode ?.mp4"
    assert "weird" not in row["storage_key"] and row["storage_key"].startswith("videos/")
    assert display_name("../../etc/passwd") == "passwd"


def _write(path, data):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path


def _truncate(clip, tmp_path):
    data = clip.read_bytes()
    out = tmp_path / "truncated.mp4"
    out.write_bytes(data[: len(data) // 2])
    return out


@pytest.mark.parametrize("size", [(2, 2), (1280, 4), (4, 1280)])
def test_tiny_and_extreme_aspect_videos_end_done(app, tmp_path, size):
    from core.media.samples import make_clip

    clip = make_clip(tmp_path / f"thin-{size[0]}x{size[1]}.mp4", seconds=1,
                     width=size[0], height=size[1])
    result = submit_file(app, clip)
    assert pipeline.process_now(app, result.upload_id, "test") == lifecycle.DONE, \
        queries.get_upload(app.db, result.upload_id)["error_message"]
    detail = queries.detail(app.db, result.upload_id)
    assert detail.frames and all(f["labels"] for f in detail.frames)


DEV = MEDIA_DEV


@pytest.fixture
def dev():
    if not (DEV / "MANIFEST.md").is_file():
        pytest.fail(f"real media missing: {DEV} (part of the repository)")
    return DEV


@pytest.mark.parametrize("name, frames, size", [
    ("sample_h264.ts", 6, (854, 480)),
    ("sample_h262_mpeg_audio.ps", 3, (640, 426)),
    ("webm.webm", 1, (8, 8)),
    ("internal_emulator_transformer_output_270_rotated.mp4", 6, (720, 1280)),
])
def test_real_files_end_done_with_their_own_frames(app, dev, name, frames, size):
    result = submit_file(app, dev / name)
    row = queries.get_upload(app.db, result.upload_id)
    assert row["container"] and row["frame_count"] and row["probe"]
    assert pipeline.process_now(app, result.upload_id, "test") == lifecycle.DONE
    detail = queries.detail(app.db, result.upload_id)
    assert len(detail.frames) == frames
    assert all((f["width"], f["height"]) == size for f in detail.frames)
    stamps = [f["timestamp"] for f in detail.frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == frames
    assert leftovers(app) == []


@pytest.mark.parametrize("name, reason", [
    ("bitmap.mp4", "bitmap.mp4: picture too small: 1x1"),
    ("sample_still_photo.heic", "sample_still_photo.heic: is a still image, not a video"),
])
def test_real_files_refused_at_submit(app, dev, name, reason):
    with pytest.raises(InputError) as caught:
        submit_file(app, dev / name)
    assert str(caught.value) == reason
    [row] = queries.list_uploads(app.db)
    assert (row["status"], row["error_category"], row["error_message"]) == (
        lifecycle.FAILED, "input", reason)


def test_hls_playlist_is_refused_at_submit(app, dev, tmp_path):
    playlist = tmp_path / "walkthrough.mp4"
    playlist.write_text(f"#EXTM3U\n#EXTINF:1.0,\nfile://{(dev / 'sample_h264.ts').resolve()}\n"
                        "#EXTINF:1.0,\n../../x.ts\n#EXT-X-ENDLIST\n")
    with pytest.raises(InputError, match=r"^walkthrough\.mp4: is a playlist, not a video$"):
        submit_file(app, playlist)
    assert app.db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 0


def test_frames_the_index_promises_but_do_not_decode_are_said_in_the_events(app, tmp_path):
    """Five indexed frames, two decode: two recorded, the plan says two, the events why."""
    import av

    from core.media import samples

    video = samples.make_clip(tmp_path / "five.mp4", seconds=0.2, width=160, height=120,
                              fps=25, keyint=1)
    with av.open(str(video)) as container:
        entries = [(e.pos, e.size) for e in container.streams.video[0].index_entries]
    data = bytearray(video.read_bytes())
    for pos, size in entries[2:]:
        data[pos:pos + size] = bytes(size)
    video.write_bytes(bytes(data))
    upload_id = submit_file(app, video).upload_id
    assert pipeline.process_now(app, upload_id, "w") == lifecycle.DONE
    detail = queries.detail(app.db, upload_id)
    assert [f["timestamp"] for f in detail.frames] == [0.0, 0.04]
    assert queries.get_upload(app.db, upload_id)["frames_planned"] == 2
    notes = [e["message"] for e in detail.events if e["kind"] == "frames"]
    assert notes == [f"slot {i}: no frame (the frame at {0.04 * i:.3f} s did not decode and "
                     "no frame near it was left)" for i in (2, 3, 4)]


def test_a_degraded_attempt_is_never_blamed_on_the_video(app, clip_10s):
    """At the keyframes-only level a decode failure is the level's (memory), not input."""
    upload_id = submit_file(app, clip_10s).upload_id
    app.db.execute("UPDATE uploads SET degrade_level = 2 WHERE id = ?", [upload_id])
    real_extractor = app.extractor

    class FailsAtTheSecondFrame:
        def open(self, video, facts, options, *, name=None):
            source = real_extractor.open(video, facts, options, name=name)
            real_take = source.take

            def take(slots, dest_for, **kwargs):
                for k, result in enumerate(real_take(slots, dest_for, **kwargs)):
                    if k == 1:
                        raise InputError(f"{name}: libav could not decode the video (EOF)")
                    yield result

            source.take = take
            return source

    app.extractor = FailsAtTheSecondFrame()
    assert pipeline.process_now(app, upload_id, "w") == lifecycle.FAILED
    row = queries.get_upload(app.db, upload_id)
    assert row["error_category"] == "memory"
    assert "at degrade level 2" in row["error_message"]
