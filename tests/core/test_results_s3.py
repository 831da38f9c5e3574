"""Export, contact sheet and report read frames through the store: here S3 (moto over HTTP)."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime

import boto3
import pytest
from PIL import Image

from core.app import open_app, process_owner
from core.intake import submit_file
from core.jobs import pipeline
from core.results import export, report
from core.results.sheet import make_sheet
from core.store import lifecycle
from tests.helpers import make_settings
from tests.s3server import aws_env, moto_endpoint  # noqa: F401


@pytest.fixture
def s3_app(tmp_path, monkeypatch, moto_endpoint):  # noqa: F811
    for name, value in aws_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    bucket = f"peakops-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", region_name="us-east-1",
                                            endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=bucket)
    settings = make_settings(tmp_path / "home", storage="s3", s3_bucket=bucket,
                             s3_endpoint_url=moto_endpoint, aws_region="us-east-1",
                             max_frames_per_video=4)
    app = open_app(settings)
    yield app, client, bucket
    app.close()


def test_export_sheet_and_report_from_an_s3_store(s3_app, clip_h264, tmp_path):
    app, client, bucket = s3_app
    upload_id = submit_file(app, clip_h264).upload_id
    assert pipeline.process_now(app, upload_id, process_owner("test")) == lifecycle.DONE
    assert not (app.settings.home / "objects").exists()  # nothing local: all in the bucket

    result = export.export(app, "csv", export.Selection(), dest=tmp_path / "r.csv")
    rows = list(csv.DictReader((tmp_path / "r.csv").open(encoding="utf-8")))
    assert result.frames == len(rows) == 4
    assert rows[0]["image"] == f"s3://{bucket}/peakops/frames/{upload_id}/0000.jpg"

    frames_dir = tmp_path / "frames"
    result = export.export(app, "jsonl", export.Selection(), dest=tmp_path / "r.jsonl",
                           frames_dir=frames_dir)
    assert result.images_copied == 4
    for n, image in enumerate(sorted((frames_dir / "clip").iterdir())):
        stored = client.get_object(Bucket=bucket, Key=f"peakops/frames/{upload_id}/{n:04d}.jpg")
        assert image.read_bytes() == stored["Body"].read()

    sheet = make_sheet(app, upload_id, tmp_path / "sheet.jpg")
    with Image.open(sheet.path) as image:
        assert image.size == (sheet.width, sheet.height) and len(sheet.cells) == 4

    # process_now records its events at the time it runs: a window around any such time.
    data = report.write_report(app, start=datetime(2000, 1, 1, tzinfo=UTC),
                               end=datetime(2100, 1, 1, tzinfo=UTC),
                               now=datetime(2100, 1, 1, tzinfo=UTC))
    assert [line.id for line in data.processed] == [upload_id]
    assert len(data.processed[0].thumbs) == 4
    assert data.path.read_text("utf-8").count('src="data:image/jpeg;base64,') == 4
