"""One contract for every Analyzer, run against the offline one and against Rekognition
(moto's server over HTTP), as StoreContract does for stores."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from PIL import Image

from core.analysis.local import Analyzer, CountingBudget, FrameAnalysis, LocalAnalyzer, calls_key
from core.analysis.rekognition import RateLimit, RekognitionAnalyzer, period_calls_key
from core.errors import AnalysisError
from tests.s3server import aws_env, moto_endpoint  # noqa: F401


@pytest.fixture
def frame(tmp_path) -> Path:
    image = Image.new("L", (64, 64))
    image.putdata([(x * 4 + y * 2) % 256 for y in range(64) for x in range(64)])
    path = tmp_path / "frame.jpg"
    image.convert("RGB").resize((320, 240)).save(path, quality=90)
    return path


class AnalyzerContract:
    """Behaviour every Analyzer must have."""

    def test_is_an_analyzer(self, analyzer):
        assert isinstance(analyzer, Analyzer)
        assert analyzer.name and isinstance(analyzer.name, str)

    def test_analyze_gives_metrics_and_labels(self, analyzer, frame):
        analyzer.begin_upload(1, 0)
        result = analyzer.analyze(frame)
        assert isinstance(result, FrameAnalysis)
        assert result.metrics.width == 320 and result.metrics.height == 240
        assert result.labels and all(0 <= lb.confidence <= 100 for lb in result.labels)
        assert result.near_duplicate_of is None

    def test_a_repeated_frame_is_a_near_duplicate_and_costs_nothing(self, analyzer, frame):
        analyzer.begin_upload(2, 0)
        first = analyzer.analyze(frame)
        calls = analyzer.calls_made
        again = analyzer.analyze(frame, [first.metrics.dhash])
        assert again.near_duplicate_of == 0
        assert "near-duplicate" in {lb.name for lb in again.labels}
        assert analyzer.calls_made == calls

    def test_an_unreadable_frame_is_an_analysis_error(self, analyzer, tmp_path):
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"not an image")
        analyzer.begin_upload(3, 0)
        with pytest.raises(AnalysisError):
            analyzer.analyze(bad)

    def test_check_and_describe(self, analyzer):
        analyzer.check()
        line = analyzer.describe()
        assert line and "\n" not in line

    def test_budget_hooks_count_from_what_was_made(self, analyzer, frame):
        analyzer.begin_upload(4, 0)
        analyzer.analyze(frame)
        made = analyzer.calls_made
        assert made >= 0
        analyzer.begin_upload(5, 7)  # a resumed upload: earlier calls still count
        assert analyzer.calls_made in (0, 7)  # a free analyzer counts nothing
        budget = CountingBudget()
        analyzer.use_budget(budget)
        analyzer.begin_upload(6, 0)
        analyzer.analyze(frame)
        period = analyzer.current_period()
        if period is None:  # free: nothing counted, nothing taken from a budget
            assert analyzer.calls_made == 0 and budget.counts == {}
        else:  # each paid call was taken from the period's budget first
            assert budget.counts == {period: analyzer.calls_made} and analyzer.calls_made == 1
            assert calls_key(analyzer.name, period).endswith(period)


class TestLocalAnalyzer(AnalyzerContract):
    @pytest.fixture
    def analyzer(self):
        return LocalAnalyzer()


class TestRekognitionAnalyzer(AnalyzerContract):
    @pytest.fixture
    def analyzer(self, tmp_path, monkeypatch, moto_endpoint):  # noqa: F811
        for name, value in aws_env(tmp_path).items():
            monkeypatch.setenv(name, value)

        def client():
            return boto3.session.Session().client(
                "rekognition", region_name="us-east-1", endpoint_url=moto_endpoint,
                config=Config(retries={"mode": "standard", "max_attempts": 2}))
        return RekognitionAnalyzer(client, rate_limit=RateLimit(0), max_calls_per_window=100)

    def test_paid_calls_are_counted(self, analyzer, frame):
        analyzer.begin_upload(9, 2)
        analyzer.analyze(frame)
        assert analyzer.calls_made == 3
        assert period_calls_key("2024-05-06") == calls_key("rekognition", "2024-05-06")
