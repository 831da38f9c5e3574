"""Jobs read S3 videos by byte range (issue #22 item 5), against moto's server over HTTP.

The bytes are counted by the HTTP proxy in front of the server, not by the reader, and
the frames are compared with those of the whole-download path.
"""

from __future__ import annotations

import uuid

import pytest

from core import media
from core.app import open_app, temp_dir_for
from core.intake import submit_file
from core.jobs import pipeline
from core.media.decode import PyAVExtractor
from core.media.probing import probe
from core.media.samples import make_clip
from core.storage.s3 import S3Store
from core.store import lifecycle, queries
from tests.core.test_s3 import s3_client
from tests.helpers import MEDIA_DEV, make_settings
from tests.s3server import S3_SLOW_DOWN, FaultProxy, aws_env, moto_endpoint  # noqa: F401

OWNER = "test-owner"


@pytest.fixture
def aws(tmp_path, monkeypatch):
    for name, value in aws_env(tmp_path).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def proxy(moto_endpoint, aws):  # noqa: F811
    proxy = FaultProxy(moto_endpoint).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """Ten minutes, one keyframe a second: about 30 MB, 600 GOPs."""
    return make_clip(tmp_path_factory.mktemp("ranged") / "long.mp4", seconds=600, fps=10,
                     keyint=10)


def s3_app(proxy, tmp_path, name: str):
    bucket = f"peakops-{uuid.uuid4().hex[:12]}"
    s3_client(proxy.url).create_bucket(Bucket=bucket)
    store = S3Store(s3_client(proxy.url), bucket, "peakops/")
    return open_app(make_settings(tmp_path / name, max_frames_per_video=20), store=store)


def process(app, video):
    upload_id = submit_file(app, video).upload_id
    assert lifecycle.claim(app.db, upload_id, OWNER, lease_seconds=300) is not None
    return upload_id


def fetch_events(app, upload_id):
    return [e["message"] for e in queries.detail(app.db, upload_id).events
            if e["kind"] == "fetch"]


def timestamps(app, upload_id):
    return [f["timestamp"] for f in queries.detail(app.db, upload_id).frames]


def test_twenty_frames_of_a_long_clip_fetch_a_small_part_of_it(proxy, tmp_path, long_clip):
    size = long_clip.stat().st_size
    app = s3_app(proxy, tmp_path, "ranged")
    upload_id = process(app, long_clip)
    proxy.got_bytes = 0
    scratch = temp_dir_for(app.settings, upload_id) / "source" / pipeline.SCRATCH_NAME
    copies = []

    def on_progress(stage, done, total):
        if stage == "extracting":
            copies.append(scratch.exists())

    result = pipeline.run(app, upload_id, OWNER, on_progress=on_progress)

    assert result.frames_total == 20
    fetched = proxy.got_bytes
    assert 0 < fetched < size / 5, (fetched, size)
    assert len(copies) > 20 and not any(copies), "no scratch copy of the video"
    events = fetch_events(app, upload_id)
    assert len(events) == 1 and events[0].startswith("video read by range: ")
    assert f"of {size} bytes" in events[0]

    # The same frames as decoding a local copy gives.
    local = open_app(make_settings(tmp_path / "local", max_frames_per_video=20))
    local_id = process(local, long_clip)
    pipeline.run(local, local_id, OWNER)
    ranged = timestamps(app, upload_id)
    assert ranged == timestamps(local, local_id) and len(set(ranged)) == 20


def test_a_store_that_ignores_ranges_gets_the_whole_download(proxy, tmp_path):
    video = make_clip(tmp_path / "clip.mp4", seconds=60, fps=10, keyint=10)
    size = video.stat().st_size
    app = s3_app(proxy, tmp_path, "home")
    upload_id = process(app, video)
    proxy.ignore_range = True
    proxy.got_bytes = 0
    result = pipeline.run(app, upload_id, OWNER)

    assert result.frames_total == 20
    assert proxy.got_bytes >= size  # the whole object came over
    events = fetch_events(app, upload_id)
    assert len(events) == 1, events
    assert events[0].startswith("range reads failed (")
    assert "ignored the byte range" in events[0]
    assert events[0].endswith(f"downloaded the whole video ({size} bytes)")


# bitmap.mp4 (1x1 pixels) is refused at probe; the media tests check its refusal.
@pytest.mark.parametrize("name", sorted(
    p.name for p in MEDIA_DEV.iterdir() if p.suffix in (".mp4", ".mov", ".ts", ".webm", ".flv")
    and p.name != "bitmap.mp4"))
def test_frames_read_by_range_are_the_frames_of_the_file(proxy, tmp_path, name):
    """The same frame index (times, keyframes, notes) and the same frames, whatever the
    container; an MP4/MOV index read from its header alone fetches no packet bytes."""
    video = MEDIA_DEV / name
    facts = probe(video)
    bucket = f"peakops-{uuid.uuid4().hex[:12]}"
    s3_client(proxy.url).create_bucket(Bucket=bucket)
    store = S3Store(s3_client(proxy.url), bucket, "peakops/")
    store.put_file("videos/de/v", video)
    options = media.ExtractOptions()
    extractor = PyAVExtractor()
    with extractor.open(video, facts, options, name=name) as local, \
            store.open_range("videos/de/v") as reader, \
            extractor.open(reader, facts, options, name=name) as ranged:
        opened = reader.fetched
        assert (ranged.index.pts, ranged.index.keys, ranged.index.seekable,
                ranged.index.notes) == \
            (local.index.pts, local.index.keys, local.index.seekable, local.index.notes)
        if name.endswith((".mp4", ".mov")) and name != "sample_fragmented.mp4":
            assert reader.fetched == opened  # the index pass downloaded nothing
        slots = list(range(len(local.plan(5))))
        assert ranged.plan(5) == local.plan(5)
        mine = [r.frame.timestamp if r.frame else r.note
                for r in ranged.take(slots, lambda i: tmp_path / f"r{i}.jpg")]
        theirs = [r.frame.timestamp if r.frame else r.note
                  for r in local.take(slots, lambda i: tmp_path / f"l{i}.jpg")]
        assert mine == theirs
        for i in slots:
            if (tmp_path / f"l{i}.jpg").exists():
                assert (tmp_path / f"r{i}.jpg").read_bytes() == (tmp_path / f"l{i}.jpg").read_bytes()


def test_ranged_reads_failing_midway_finish_from_the_whole_download(proxy, tmp_path, long_clip):
    """S3 throttles every try of one ranged GET in the middle of the job: the frames already
    recorded stay, the rest come from the whole download, and the events say so."""
    bucket = f"peakops-{uuid.uuid4().hex[:12]}"
    s3_client(proxy.url).create_bucket(Bucket=bucket)
    store = S3Store(s3_client(proxy.url, max_attempts=2), bucket, "peakops/")
    tries = store.client.meta.config.retries["total_max_attempts"]
    app = open_app(make_settings(tmp_path / "home", max_frames_per_video=20), store=store)
    upload_id = process(app, long_clip)
    armed = []

    def on_progress(stage, done, total):
        if stage == "extracting" and done == 10 and not armed:
            armed.append(done)  # every try of the next ranged GET gets 503 SlowDown
            proxy.fail_next(tries, S3_SLOW_DOWN, lambda method, path: method == "GET")

    result = pipeline.run(app, upload_id, OWNER, on_progress=on_progress)

    assert armed and proxy.faults_sent == tries
    assert result.frames_total == 20
    events = fetch_events(app, upload_id)
    assert len(events) == 1, events
    assert events[0].startswith("range reads failed (ranged read of bytes ")
    assert "SlowDown" in events[0]
    assert events[0].endswith(f"downloaded the whole video ({long_clip.stat().st_size} bytes)")
    local = open_app(make_settings(tmp_path / "local", max_frames_per_video=20))
    local_id = process(local, long_clip)
    pipeline.run(local, local_id, OWNER)
    assert timestamps(app, upload_id) == timestamps(local, local_id)
