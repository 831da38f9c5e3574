"""No credential reaches anything PeakOps writes, at debug level, through a real S3 and
Rekognition endpoint (moto over HTTP): CLI output, doctor, the worker and its job child,
``logs/service.log``, the database (error messages, events)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest

from core.config import load_settings
from core.media import samples
from tests.helpers import cli_env, cli_json, run_cli, wait_for
from tests.s3server import moto_endpoint  # noqa: F401

KEY_ID = "AKIA" + uuid.uuid4().hex[:16].upper()
SECRET = "fakeSecret/" + uuid.uuid4().hex + "+X"
TOKEN = "FwoGZXIvYXdzEFAKE" + uuid.uuid4().hex + "//TOKEN+END=="
PASSWORD = "PW" + uuid.uuid4().hex[:12]
SECRETS = (KEY_ID, SECRET, TOKEN, PASSWORD)


def with_password(url: str) -> str:
    return url.replace("http://", f"http://operator:{PASSWORD}@", 1)


@pytest.fixture
def aws_debug_env(tmp_path, moto_endpoint):  # noqa: F811
    bucket = "peakops-" + uuid.uuid4().hex[:8]
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                 aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                 aws_session_token=TOKEN).create_bucket(Bucket=bucket)
    return {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_SESSION_TOKEN": TOKEN, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
            "PEAKOPS_STORAGE": "s3", "PEAKOPS_S3_BUCKET": bucket,
            "PEAKOPS_S3_ENDPOINT_URL": with_password(moto_endpoint),
            "PEAKOPS_ENABLE_AWS_REKOGNITION": "true",
            "PEAKOPS_REKOGNITION_ENDPOINT_URL": with_password(moto_endpoint),
            "PEAKOPS_LOG_LEVEL": "debug", "PEAKOPS_MAX_FRAMES_PER_VIDEO": "2",
            "PEAKOPS_RETRY_BACKOFF": "0"}


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [s for s in SECRETS if s.encode() in data]


def test_debug_logs_doctor_service_log_and_database_hold_no_credentials(
        tmp_path, aws_debug_env, monkeypatch):
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=1, width=160, height=120)
    written: dict[str, str] = {}

    doctor = run_cli(home, "-vv", "doctor", **aws_debug_env)
    written["doctor"] = doctor.stdout + doctor.stderr
    assert doctor.returncode == 0, written["doctor"][-3000:]
    assert "storage" in doctor.stdout and "AWS Rekognition (http://127.0.0.1:" in doctor.stdout

    submit = run_cli(home, "-vv", "submit", str(clip), **aws_debug_env)
    written["submit"] = submit.stdout + submit.stderr
    assert submit.returncode == 0, written["submit"][-3000:]

    # The console's way to run the service: logs/service.log, PEAKOPS_LOG_LEVEL=debug.
    from desktop.service import log_path, start_service

    for name in list(os.environ):
        if name.startswith(("PEAKOPS_", "MAX_", "CELERY_", "AWS_")):
            monkeypatch.delenv(name)
    for name, value in cli_env(home, **aws_debug_env).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    service = start_service(settings)
    try:
        wait_for(lambda: cli_json(home, "list", **aws_debug_env)[0]["status"] in (
            "DONE", "FAILED"), timeout=120, what="the service to process the upload")
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
    [row] = cli_json(home, "list", **aws_debug_env)
    assert row["status"] == "DONE", row

    service_log = log_path(settings).read_text(errors="replace")
    # The leaking paths ran: botocore's request dumps, from worker and job child alike.
    assert "X-Amz-Security-Token" in service_log and "Authorization" in service_log
    assert "DetectLabels" in service_log and "PutObject" in service_log
    assert "***" in service_log

    for name, text in written.items():
        assert leaks(text) == [], (name, leaks(text))
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        if path.suffix in (".mp4", ".jpg"):
            continue
        assert leaks(path.read_bytes()) == [], (str(path), leaks(path.read_bytes()))


def test_rekognition_endpoint_password_stays_out_of_errors_events_and_doctor(
        tmp_path, aws_debug_env):
    home = tmp_path / "home"
    unreachable = with_password("http://127.0.0.1:9/")  # the discard port: refused
    env = {**aws_debug_env, "PEAKOPS_REKOGNITION_ENDPOINT_URL": unreachable,
           "PEAKOPS_STORAGE": "local", "PEAKOPS_MAX_ATTEMPTS": "1"}
    doctor = run_cli(home, "doctor", **env)
    assert doctor.returncode == 1 and "Rekognition endpoint unreachable" in doctor.stdout
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=1, width=160, height=120)
    run_cli(home, "submit", str(clip), check=True, **env)
    worker = run_cli(home, "worker", "--burst", timeout=240, **env)
    [row] = cli_json(home, "list", **env)
    assert row["status"] == "FAILED" and "unreachable" in row["error_message"]
    assert "operator:***@127.0.0.1:9" in row["error_message"] or \
        "http://127.0.0.1:9" in row["error_message"]
    conn = sqlite3.connect(home / "peakops.db")
    events = " ".join(m for (m,) in conn.execute("SELECT message FROM events"))
    conn.close()
    assert "unreachable" in events
    for text in (doctor.stdout, doctor.stderr, worker.stdout, worker.stderr, row["error_message"],
                 events, Path(home / "peakops.db").read_bytes()):
        assert leaks(text) == []
