"""RekognitionAnalyzer: our logic (dedupe, budget, downscale, rate limit) with unit tests,
our wiring and error handling against moto's Rekognition over HTTP (canned labels)."""

from __future__ import annotations

import io
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from core.analysis.local import CountingBudget, SharedBudget, measure
from core.analysis.rekognition import (
    BUDGET_LABEL,
    MAX_IMAGE_BYTES,
    RateLimit,
    RekognitionAnalyzer,
    budget_period,
    encode_for_api,
    period_calls_key,
)
from core.app import open_app
from core.errors import AnalysisError, ConfigError
from core.intake import submit_file
from core.jobs.pipeline import process_now
from core.store import lifecycle, queries, state
from tests.conftest import four_scenes
from tests.helpers import make_settings
from tests.s3server import REKOGNITION_THROTTLED, FaultProxy, aws_env, moto_endpoint  # noqa: F401

CANNED = {"Labels": [{"Name": "Crack", "Confidence": 91.234}, {"Name": "Pipe", "Confidence": 80.0}]}


class FakeRekognition:
    """Counts calls and records parameters; for unit tests of our own logic."""

    def __init__(self):
        self.calls: list[dict] = []

    def detect_labels(self, **params):
        self.calls.append(params)
        return CANNED


def no_wait() -> RateLimit:
    return RateLimit(0)


@pytest.fixture
def frames(tmp_path) -> list[Path]:
    """Three visibly different frames, then a copy of the first."""
    paths = []
    for i, (w, h) in enumerate([(1, 1), (8, 1), (1, 8)]):
        image = Image.new("L", (64, 64))
        image.putdata([((x * w + y * h) * 4 + 40 * i) % 256 for y in range(64) for x in range(64)])
        path = tmp_path / f"{i}.jpg"
        image.convert("RGB").resize((320, 240)).save(path, quality=90)
        paths.append(path)
    dup = tmp_path / "3.jpg"
    dup.write_bytes(paths[0].read_bytes())
    return [*paths, dup]


# --------------------------------------------------------------------------- unit: logic


def test_near_duplicate_frames_are_not_sent(frames):
    fake = FakeRekognition()
    analyzer = RekognitionAnalyzer(lambda: fake, rate_limit=no_wait())
    hashes = []
    results = []
    for frame in frames:
        result = analyzer.analyze(frame, hashes)
        hashes.append(result.metrics.dhash)
        results.append(result)
    assert len(fake.calls) == 3  # the copy of frame 0 cost nothing
    last = results[-1]
    assert last.near_duplicate_of == 0
    names = {(label.name, label.source) for label in last.labels}
    assert ("near-duplicate", "local") in names
    assert {"sharp", "blurry"} & {n for n, _ in names}  # local quality labels still there
    assert not any(label.source == "rekognition" for label in last.labels)
    first = {(label.name, label.source) for label in results[0].labels}
    assert ("Crack", "rekognition") in first and ("Pipe", "rekognition") in first
    assert any(source == "local" for _, source in first)


def test_call_budget_per_upload(frames):
    fake = FakeRekognition()
    analyzer = RekognitionAnalyzer(lambda: fake, max_calls_per_upload=2, rate_limit=no_wait())
    analyzer.begin_upload(1)
    results = [analyzer.analyze(frame) for frame in frames[:3]]
    assert len(fake.calls) == 2 and analyzer.calls_made == 2
    assert [label.name for label in results[2].labels if label.name == BUDGET_LABEL]
    assert not any(label.source == "rekognition" for label in results[2].labels)
    analyzer.begin_upload(2)  # a new upload starts with a fresh budget
    analyzer.analyze(frames[0])
    assert len(fake.calls) == 3 and analyzer.calls_made == 1
    analyzer.begin_upload(3, calls_made=2)  # resumed: earlier calls still count
    analyzer.analyze(frames[1])
    assert len(fake.calls) == 3


MAY_6 = datetime(2024, 5, 6, 20, 0, tzinfo=UTC)   # in period 2024-05-06 (UTC)
MAY_7 = datetime(2024, 5, 7, 20, 0, tzinfo=UTC)


def test_call_budget_per_period(frames):
    fake = FakeRekognition()
    budget = CountingBudget({"2024-05-06": 1})  # another upload already made one
    analyzer = RekognitionAnalyzer(lambda: fake, max_calls_per_window=3, rate_limit=no_wait(),
                                   clock=lambda: MAY_6)
    analyzer.use_budget(budget)
    analyzer.begin_upload(1)
    results = [analyzer.analyze(frame) for frame in frames[:3]]
    assert len(fake.calls) == 2 and budget.counts == {"2024-05-06": 3}
    assert analyzer.calls_made == 2
    over = results[2].labels
    assert BUDGET_LABEL in {label.name for label in over}
    assert not any(label.source == "rekognition" for label in over)
    analyzer.begin_upload(2)  # a new upload does not refill the period's budget
    assert BUDGET_LABEL in {label.name for label in analyzer.analyze(frames[0]).labels}
    assert len(fake.calls) == 2
    analyzer.clock = lambda: MAY_7  # the next period does
    analyzer.analyze(frames[0])
    assert len(fake.calls) == 3 and budget.counts["2024-05-07"] == 1


def test_period_budget_zero_means_no_limit(frames):
    fake = FakeRekognition()
    budget = CountingBudget()
    analyzer = RekognitionAnalyzer(lambda: fake, rate_limit=no_wait())
    analyzer.use_budget(budget)
    assert analyzer.max_calls_per_window == 0
    analyzer.analyze(frames[0])
    assert len(fake.calls) == 1 and budget.counts == {}


def test_per_upload_budget_still_applies_under_the_period_budget(frames):
    fake = FakeRekognition()
    budget = CountingBudget()
    analyzer = RekognitionAnalyzer(lambda: fake, max_calls_per_upload=1,
                                   max_calls_per_window=10, rate_limit=no_wait(),
                                   clock=lambda: MAY_6)
    analyzer.use_budget(budget)
    analyzer.begin_upload(1)
    results = [analyzer.analyze(frame) for frame in frames[:2]]
    assert len(fake.calls) == 1 and budget.counts == {"2024-05-06": 1}
    assert BUDGET_LABEL in {label.name for label in results[1].labels}


class ThrottledRekognition(FakeRekognition):
    def detect_labels(self, **params):
        self.calls.append(params)
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "DetectLabels")


def test_a_refused_call_gives_its_reservation_back(frames):
    budget = CountingBudget()
    analyzer = RekognitionAnalyzer(ThrottledRekognition, max_calls_per_window=5,
                                   rate_limit=no_wait(), clock=lambda: MAY_6)
    analyzer.use_budget(budget)
    analyzer.begin_upload(1)
    with pytest.raises(AnalysisError, match="ThrottlingException"):
        analyzer.analyze(frames[0])
    assert budget.counts == {"2024-05-06": 0} and analyzer.calls_made == 0


def test_workers_share_one_period_budget(frames, db):
    """Two workers' analyzers on one state database (each test runs on SQLite and
    PostgreSQL): between them exactly the budget's calls, never one more."""
    fakes = [FakeRekognition(), FakeRekognition()]
    analyzers = []
    for n, fake in enumerate(fakes):
        analyzer = RekognitionAnalyzer(lambda fake=fake: fake, max_calls_per_window=3,
                                       rate_limit=no_wait(), clock=lambda: MAY_6)
        analyzer.use_budget(SharedBudget(db, analyzer.name))
        analyzer.begin_upload(n + 1)
        analyzers.append(analyzer)
    for frame in frames[:3]:
        for analyzer in analyzers:
            analyzer.analyze(frame)
    assert sum(len(fake.calls) for fake in fakes) == 3
    assert state.get(db, period_calls_key("2024-05-06")) == 3


@pytest.mark.parametrize(("moment", "zone", "period"), [
    ("2024-05-06T12:00:00+00:00", "UTC", "2024-05-06"),   # a period starts at noon
    ("2024-05-06T11:59:59+00:00", "UTC", "2024-05-05"),
    ("2024-05-06T23:30:00+00:00", "UTC", "2024-05-06"),   # 22:00-06:00 is one period
    ("2024-05-07T05:59:00+00:00", "UTC", "2024-05-06"),
    ("2024-05-06T10:30:00+00:00", "Europe/Berlin", "2024-05-06"),  # 12:30 local (CEST)
    ("2024-05-06T09:30:00+00:00", "Europe/Berlin", "2024-05-05"),  # 11:30 local
    ("2024-05-06T09:30:00-07:00", "Europe/Berlin", "2024-05-06"),  # any offset in, same instant
    ("2024-03-31T10:30:00+00:00", "Europe/Berlin", "2024-03-31"),  # DST day: noon local is 10:00Z
    ("2024-03-31T10:59:00+00:00", "America/New_York", "2024-03-30"),
])
def test_budget_period_runs_noon_to_noon_local(moment, zone, period):
    assert budget_period(datetime.fromisoformat(moment), zone) == period


def test_budget_period_refuses_naive_times_and_unknown_zones():
    with pytest.raises(ValueError, match="naive"):
        budget_period(datetime(2024, 5, 6, 12), "UTC")
    with pytest.raises(ConfigError, match="Mars/Olympus") as caught:
        budget_period(datetime(2024, 5, 6, 12, tzinfo=UTC), "Mars/Olympus")
    assert caught.value.evidence["key"] == "timezone"


def test_current_period_uses_the_clock_and_settings(tmp_path):
    settings = make_settings(tmp_path / "h", rekognition_max_calls_per_window=7,
                             timezone="Asia/Tokyo")
    analyzer = RekognitionAnalyzer.from_settings(settings)
    assert (analyzer.max_calls_per_window, analyzer.timezone) == (7, "Asia/Tokyo")
    analyzer.clock = lambda: datetime(2024, 5, 6, 2, 59, tzinfo=UTC)  # 11:59 in Tokyo
    assert analyzer.current_period() == "2024-05-05"
    analyzer.clock = lambda: datetime(2024, 5, 6, 3, 0, tzinfo=UTC)   # 12:00 in Tokyo
    assert analyzer.current_period() == "2024-05-06"
    assert period_calls_key("2024-05-06") == "rekognition.calls.2024-05-06"


def test_state_increment_counts_from_zero(tmp_path):
    app = open_app(make_settings(tmp_path / "h"))
    key = period_calls_key("2024-05-06")
    assert state.increment(app.db, key) == 1
    assert state.increment(app.db, key, 4) == 5
    assert state.get(app.db, key) == 5 and state.get(app.db, period_calls_key("x"), 0) == 0
    app.close()


def test_labels_and_confidence_settings_are_sent(frames, tmp_path):
    fake = FakeRekognition()
    settings = make_settings(tmp_path / "h", rekognition_max_labels=7,
                             rekognition_min_confidence=55, rekognition_max_calls_per_upload=3)
    analyzer = RekognitionAnalyzer.from_settings(settings)
    analyzer._client_factory = lambda: fake
    analyzer.analyze(frames[0])
    assert fake.calls[0]["MaxLabels"] == 7 and fake.calls[0]["MinConfidence"] == 55
    assert fake.calls[0]["Image"]["Bytes"] == frames[0].read_bytes()
    assert analyzer.max_calls_per_upload == 3


def test_small_jpeg_is_sent_as_is(frames):
    assert encode_for_api(frames[0]) == frames[0].read_bytes()


def _noise_png(path: Path, side: int) -> Path:
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path)
    return path


def test_large_image_is_downscaled_under_the_api_limit(tmp_path):
    big = _noise_png(tmp_path / "big.png", 1800)  # ~9.7 MB of incompressible pixels
    assert big.stat().st_size > MAX_IMAGE_BYTES
    data = encode_for_api(big)
    assert len(data) <= MAX_IMAGE_BYTES
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.width <= 1800


def test_downscale_shrinks_until_it_fits(tmp_path):
    png = _noise_png(tmp_path / "n.png", 600)
    data = encode_for_api(png, max_bytes=60_000)
    assert len(data) <= 60_000
    with Image.open(io.BytesIO(data)) as image:
        assert image.width < 600
    with pytest.raises(AnalysisError, match="cannot be made smaller") as caught:
        encode_for_api(png, max_bytes=500)
    assert not caught.value.transient


def test_unsupported_format_is_reencoded(tmp_path):
    bmp = tmp_path / "f.bmp"
    Image.new("RGB", (200, 100), (10, 200, 30)).save(bmp)
    data = encode_for_api(bmp)
    assert data[:3] == b"\xff\xd8\xff"


def test_rate_limit_spaces_calls():
    now = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        now[0] += seconds

    limit = RateLimit(5, clock=lambda: now[0], sleep=sleep)
    waits = [round(limit.wait(), 6) for _ in range(4)]
    assert waits == [0, 0.2, 0.2, 0.2] and slept == [0.2, 0.2, 0.2]
    now[0] += 10  # idle for a while: no debt carried over
    assert limit.wait() == 0


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
def aws(tmp_path, monkeypatch):
    env = aws_env(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def rekognition(endpoint: str, max_attempts: int = 4):
    return boto3.session.Session().client(
        "rekognition", region_name="us-east-1", endpoint_url=endpoint,
        config=Config(retries={"mode": "adaptive", "max_attempts": max_attempts}))


@pytest.fixture
def proxy(moto_endpoint):  # noqa: F811
    proxy = FaultProxy(moto_endpoint).start()
    yield proxy
    proxy.stop()


def test_labels_from_the_endpoint(aws, moto_endpoint, frames):  # noqa: F811
    analyzer = RekognitionAnalyzer(lambda: rekognition(moto_endpoint))
    result = analyzer.analyze(frames[0])
    remote = [label for label in result.labels if label.source == "rekognition"]
    assert remote and all(0 < label.confidence <= 100 for label in remote)
    assert any(label.source == "local" for label in result.labels)
    assert result.metrics == measure(frames[0])
    analyzer.check()


def test_throttling_is_recovered_by_retries(aws, proxy, frames):
    proxy.fail_next(2, REKOGNITION_THROTTLED)
    analyzer = RekognitionAnalyzer(lambda: rekognition(proxy.url))
    result = analyzer.analyze(frames[0])
    assert proxy.faults_sent == 2
    assert any(label.source == "rekognition" for label in result.labels)


def test_throttling_that_outlives_retries_is_transient(aws, proxy, frames):
    proxy.fail_next(1000, REKOGNITION_THROTTLED)
    analyzer = RekognitionAnalyzer(lambda: rekognition(proxy.url, max_attempts=2))
    with pytest.raises(AnalysisError, match="ThrottlingException") as caught:
        analyzer.analyze(frames[0])
    assert caught.value.transient and caught.value.category == "analysis"


@pytest.mark.parametrize("code", ["AccessDeniedException", "InvalidImageFormatException",
                                  "UnrecognizedClientException"])
def test_permanent_refusals(aws, proxy, frames, code):
    proxy.fail_next(1000, (400, {"Content-Type": "application/x-amz-json-1.1"},
                           f'{{"__type": "{code}", "message": "no"}}'.encode()))
    analyzer = RekognitionAnalyzer(lambda: rekognition(proxy.url))
    with pytest.raises(AnalysisError, match=code) as caught:
        analyzer.analyze(frames[0])
    assert not caught.value.transient
    assert proxy.faults_sent == 1  # not retried
    with pytest.raises(AnalysisError, match=code):
        analyzer.check()


def test_missing_credentials_and_region_are_permanent(tmp_path, monkeypatch, moto_endpoint,  # noqa: F811
                                                      frames):
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    no_creds = RekognitionAnalyzer(lambda: rekognition(moto_endpoint))
    with pytest.raises(AnalysisError, match="credentials") as caught:
        no_creds.analyze(frames[0])
    assert not caught.value.transient
    no_region = RekognitionAnalyzer.from_settings(make_settings(tmp_path / "h",
                                                                enable_aws_rekognition=True))
    with pytest.raises(AnalysisError, match="region") as caught:
        no_region.check()
    assert not caught.value.transient


def test_doctor_and_status_show_rekognition(aws, moto_endpoint, tmp_path):  # noqa: F811
    from cli.uploads import doctor_checks
    from cli.worker import status_report

    settings = make_settings(tmp_path / "home", enable_aws_rekognition=True,
                             rekognition_endpoint_url=moto_endpoint, aws_region="us-east-1",
                             rekognition_max_calls_per_window=50)
    ok, line = {n: (o, t) for n, o, t in doctor_checks(settings)}["analyzer"]
    assert ok and line == f"AWS Rekognition ({moto_endpoint})"
    before = status_report(settings)["rekognition"]
    assert before == {"period": before["period"], "calls": 0, "budget": 50}
    app = open_app(settings)
    state.increment(app.db, period_calls_key(before["period"]), 4)
    app.close()
    after = status_report(settings)["rekognition"]
    assert after["calls"] == (4 if after["period"] == before["period"] else 0)  # noon passed?
    assert "rekognition" not in status_report(make_settings(tmp_path / "offline"))


# --------------------------------------------------------------------------- pipeline


def _s3_settings(home: Path, endpoint: str, bucket: str, **extra):
    return make_settings(home, storage="s3", s3_bucket=bucket, s3_endpoint_url=endpoint,
                         enable_aws_rekognition=True, rekognition_endpoint_url=endpoint,
                         aws_region="us-east-1", max_frames_per_video=4, **extra)


@pytest.fixture
def bucket(aws, moto_endpoint):  # noqa: F811
    name = f"peakops-{uuid.uuid4().hex[:12]}"
    boto3.session.Session().client("s3", region_name="us-east-1",
                                   endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


def _frame_labels(app, upload_id):
    return list(app.db.query(
        "SELECT f.idx, f.storage_key, SUM(l.source = 'rekognition') AS remote, "
        "SUM(l.source = 'local') AS local, SUM(l.name = 'near-duplicate') AS duplicate, "
        "SUM(l.name = ?) AS over_budget FROM frames f JOIN labels l ON l.frame_id = f.id "
        "WHERE f.upload_id = ? GROUP BY f.id ORDER BY f.idx", [BUDGET_LABEL, upload_id]))


def _calls(app, upload_id) -> int:
    return app.db.execute("SELECT rekognition_calls FROM uploads WHERE id = ?",
                          [upload_id]).fetchone()[0]


def test_full_pipeline_with_s3_and_rekognition(aws, moto_endpoint, bucket, tmp_path,  # noqa: F811
                                               clip_h264):
    app = open_app(_s3_settings(tmp_path / "home", moto_endpoint, bucket))
    assert type(app.store).__name__ == "S3Store" and app.analyzer.name == "rekognition"
    submitted = submit_file(app, clip_h264)
    assert process_now(app, submitted.upload_id, "test") == lifecycle.DONE
    frames = _frame_labels(app, submitted.upload_id)
    # The 2 s test clip barely changes: frame 0 is sent, the rest are near-duplicates.
    assert len(frames) == 4 and all(f["local"] for f in frames)
    assert frames[0]["remote"] and not frames[0]["duplicate"]
    assert all(f["duplicate"] and not f["remote"] for f in frames[1:])
    assert _calls(app, submitted.upload_id) == 1
    assert all(app.store.exists(f["storage_key"]) for f in frames)
    s3 = boto3.session.Session().client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"peakops/frames/{submitted.upload_id}/0000.jpg" in keys
    assert any(k.startswith("peakops/videos/") for k in keys)


def test_pipeline_stops_calling_at_the_budget(aws, moto_endpoint, bucket, tmp_path,  # noqa: F811
                                              clip_four_scenes):
    app = open_app(_s3_settings(tmp_path / "home", moto_endpoint, bucket,
                                rekognition_max_calls_per_upload=2))
    submitted = submit_file(app, clip_four_scenes)
    assert process_now(app, submitted.upload_id, "test") == lifecycle.DONE
    frames = _frame_labels(app, submitted.upload_id)
    assert [bool(f["remote"]) for f in frames] == [True, True, False, False]
    assert [bool(f["over_budget"]) for f in frames] == [False, False, True, True]
    assert _calls(app, submitted.upload_id) == 2
    # Analysing again keeps counting against the same upload's budget.
    lifecycle.request_reanalysis(app.db, submitted.upload_id)
    assert process_now(app, submitted.upload_id, "test") == lifecycle.DONE
    assert _calls(app, submitted.upload_id) == 2
    assert not any(f["remote"] for f in _frame_labels(app, submitted.upload_id))


def test_permanent_rekognition_failure_keeps_frames(aws, moto_endpoint, proxy, bucket,  # noqa: F811
                                                    tmp_path, clip_h264):
    proxy.fail_next(1000, (400, {"Content-Type": "application/x-amz-json-1.1"},
                           b'{"__type": "AccessDeniedException", "message": "denied"}'))
    settings = make_settings(tmp_path / "home", storage="s3", s3_bucket=bucket,
                             s3_endpoint_url=moto_endpoint, enable_aws_rekognition=True,
                             rekognition_endpoint_url=proxy.url, aws_region="us-east-1",
                             max_frames_per_video=3)
    app = open_app(settings)
    submitted = submit_file(app, clip_h264)
    assert process_now(app, submitted.upload_id, "test") == lifecycle.FAILED
    row = queries.get_upload(app.db, submitted.upload_id)
    assert row["error_category"] == "analysis" and "AccessDeniedException" in row["error_message"]
    frames = list(app.db.query("SELECT storage_key FROM frames WHERE upload_id = ?",
                               [submitted.upload_id]))
    assert len(frames) == 3 and all(app.store.exists(f["storage_key"]) for f in frames)


def test_period_budget_stops_calls_across_uploads(aws, moto_endpoint, bucket, tmp_path,  # noqa: F811
                                                  clip_four_scenes):
    settings = _s3_settings(tmp_path / "home", moto_endpoint, bucket,
                            rekognition_max_calls_per_window=3)
    analyzer = RekognitionAnalyzer.from_settings(settings)
    now = [datetime(2024, 5, 6, 23, 0, tzinfo=UTC)]  # a fixed clock, passed in
    analyzer.clock = lambda: now[0]
    app = open_app(settings, analyzer=analyzer)
    # Same pictures (4 distinct frames), other bytes: not a duplicate upload.
    other = four_scenes(tmp_path / "other.mp4", audio=True)
    first, second = submit_file(app, clip_four_scenes), submit_file(app, other)
    assert process_now(app, first.upload_id, "test") == lifecycle.DONE
    assert [bool(f["remote"]) for f in _frame_labels(app, first.upload_id)] == \
        [True, True, True, False]
    now[0] = datetime(2024, 5, 7, 5, 0, tzinfo=UTC)  # later the same night: same period
    assert process_now(app, second.upload_id, "test") == lifecycle.DONE
    frames = _frame_labels(app, second.upload_id)
    assert len(frames) == 4 and not any(f["remote"] for f in frames)
    assert all(f["over_budget"] and f["local"] for f in frames)
    assert (_calls(app, first.upload_id), _calls(app, second.upload_id)) == (3, 0)
    assert state.get(app.db, "rekognition.calls.2024-05-06") == 3
    # The next night is a new period: analysing the second upload again makes calls.
    now[0] = datetime(2024, 5, 7, 22, 0, tzinfo=UTC)
    lifecycle.request_reanalysis(app.db, second.upload_id)
    assert process_now(app, second.upload_id, "test") == lifecycle.DONE
    frames = _frame_labels(app, second.upload_id)
    assert [bool(f["remote"]) for f in frames] == [True, True, True, False]
    assert state.get(app.db, "rekognition.calls.2024-05-07") == 3
    assert state.get(app.db, "rekognition.calls.2024-05-06") == 3
    app.close()
