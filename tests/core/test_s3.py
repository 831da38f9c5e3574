"""S3Store against a real S3 endpoint over HTTP (moto's server on loopback).

The code under test reaches the endpoint only through ``endpoint_url``, as it would reach
AWS or MinIO; faults come from a small HTTP proxy in front of it (tests/s3server.py).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from core.app import open_app
from core.errors import CancelledError, StorageError
from core.intake import submit_file
from core.storage.local import video_key
from core.storage.s3 import MAX_CONCURRENCY, ClampedProgress, S3Store, client_config, safe_endpoint
from core.store import queries
from tests.core.test_storage import StoreContract
from tests.helpers import make_settings
from tests.s3server import S3_SLOW_DOWN, FaultProxy, aws_env, moto_endpoint  # noqa: F401

MB = 1024 * 1024


@pytest.fixture
def aws(tmp_path, monkeypatch):
    env = aws_env(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


_session: list[boto3.session.Session] = []


def s3_client(endpoint: str, **config):
    if not _session:  # one session: its model cache makes new clients cheap
        _session.append(boto3.session.Session())
    return _session[0].client(
        "s3", region_name="us-east-1", endpoint_url=endpoint,
        config=client_config(path_style=True, **config))


@pytest.fixture
def client(aws, moto_endpoint):  # noqa: F811
    return s3_client(moto_endpoint)


@pytest.fixture
def bucket(client):
    name = f"peakops-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def proxy(moto_endpoint):  # noqa: F811
    proxy = FaultProxy(moto_endpoint).start()
    yield proxy
    proxy.stop()


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        left = size
        block = os.urandom(MB)  # repeated blocks: fast to make, still not compressible
        while left:
            handle.write(block[:min(MB, left)])
            left -= min(MB, left)
    return path


def multipart_leftovers(client, bucket) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def small_parts() -> TransferConfig:
    return TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB,
                          max_concurrency=2, preferred_transfer_client="classic")


class TestS3Store(StoreContract):
    @pytest.fixture
    def store(self, client, bucket):
        return S3Store(client, bucket, "peakops/")

    def test_prefix_is_applied_to_every_key(self, store, client, bucket, tmp_path):
        source = tmp_path / "s"
        source.write_bytes(b"frame")
        store.put_file("frames/7/0001.jpg", source)
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == ["peakops/frames/7/0001.jpg"]
        assert S3Store(client, bucket, "/other").prefix == "other/"

    def test_describe_names_bucket_and_endpoint_without_secrets(self, store, bucket, aws):
        line = store.describe()
        assert bucket in line and "peakops/" in line and "127.0.0.1" in line
        assert aws["AWS_SECRET_ACCESS_KEY"] not in line.replace("peakops", "")
        assert safe_endpoint("https://user:secret@minio.local:9000/") == "https://minio.local:9000"


def test_100_mb_in_bounded_parts_with_progress_reaching_exactly_100_percent(
        client, bucket, tmp_path):
    source = random_file(tmp_path / "big.bin", 100 * MB)
    in_flight, peak, parts = [0], [0], []
    lock = threading.Lock()

    def started(params, **kwargs):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            parts.append(params["PartNumber"])

    def finished(**kwargs):
        with lock:
            in_flight[0] -= 1

    client.meta.events.register("provide-client-params.s3.UploadPart", started)
    client.meta.events.register("after-call.s3.UploadPart", finished)
    store = S3Store(client, bucket, "peakops/")
    seen: list[int] = []
    assert store.put_file("videos/ab/big", source, seen.append) == 100 * MB
    assert sum(seen) == 100 * MB and min(seen) > 0
    assert sorted(parts) == list(range(1, 14))  # 8 MB parts
    assert 1 < peak[0] <= MAX_CONCURRENCY
    head = client.head_object(Bucket=bucket, Key="peakops/videos/ab/big", ChecksumMode="ENABLED")
    assert head["ContentLength"] == 100 * MB and head.get("ChecksumCRC32")
    assert multipart_leftovers(client, bucket) == []

    dest = tmp_path / "back.bin"
    seen.clear()
    assert store.get_file("videos/ab/big", dest, seen.append) == 100 * MB
    assert sum(seen) == 100 * MB and min(seen) > 0
    assert _sha(dest) == _sha(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.bin", "big.bin"]  # no temp


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


def test_progress_is_clamped_when_a_retry_rewinds():
    seen: list[int] = []
    progress = ClampedProgress(20, seen.append)
    for delta in (5, 5, -7, 3, 10, 100, -50):
        progress.on_progress(bytes_transferred=delta)
    assert seen == [5, 5, 6, 4] and sum(seen) == 20  # never backwards, never past 100 %
    progress.finish()
    assert sum(seen) == 20
    topped: list[int] = []
    short = ClampedProgress(10, topped.append)
    short.on_progress(bytes_transferred=4)
    short.finish()
    assert topped == [4, 6]


def test_throttled_parts_are_retried_and_progress_never_goes_back(proxy, bucket, aws, tmp_path):
    proxy.fail_next(3, S3_SLOW_DOWN, lambda method, path: method == "PUT" and "partNumber=" in path)
    store = S3Store(s3_client(proxy.url), bucket, "peakops/", transfer_config=small_parts())
    source = random_file(tmp_path / "v.bin", 12 * MB)
    seen: list[int] = []
    assert store.put_file("videos/ab/throttled", source, seen.append) == 12 * MB
    assert proxy.faults_sent == 3
    assert min(seen) > 0 and sum(seen) == 12 * MB
    dest = tmp_path / "d.bin"
    store.get_file("videos/ab/throttled", dest)
    assert _sha(dest) == _sha(source)


def test_throttling_beyond_retries_is_a_transient_storage_error(proxy, bucket, aws, tmp_path):
    proxy.fail_next(1000, S3_SLOW_DOWN)
    store = S3Store(s3_client(proxy.url, max_attempts=2), bucket, "peakops/")
    source = tmp_path / "s"
    source.write_bytes(b"x" * 100)
    with pytest.raises(StorageError, match="throttling") as caught:
        store.put_file("frames/1/0000.jpg", source)
    assert caught.value.transient and bucket in str(caught.value)
    assert "frames/1/0000.jpg" in str(caught.value)


def test_access_denied_is_a_permanent_storage_error(proxy, bucket, aws, tmp_path):
    proxy.fail_next(1000, (403, {"Content-Type": "application/xml"},
                           b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
                           b"</Error>"))
    store = S3Store(s3_client(proxy.url), bucket, "peakops/")
    source = tmp_path / "s"
    source.write_bytes(b"x")
    with pytest.raises(StorageError, match="access denied") as caught:
        store.put_file("frames/1/0000.jpg", source)
    assert not caught.value.transient
    assert f"s3://{bucket}/peakops/frames/1/0000.jpg" in str(caught.value)
    with pytest.raises(StorageError, match="access denied"):
        store.check()


def test_missing_bucket(client, aws, tmp_path):
    store = S3Store(client, "peakops-no-such-bucket", "peakops/")
    source = tmp_path / "s"
    source.write_bytes(b"x")
    for call in (lambda: store.put_file("videos/ab/x", source),
                 lambda: store.get_file("videos/ab/x", tmp_path / "d"),
                 lambda: store.exists("videos/ab/x"),
                 lambda: store.delete("videos/ab/x")):
        with pytest.raises(StorageError, match="bucket 'peakops-no-such-bucket' does not exist")\
                as caught:
            call()
        assert type(caught.value) is StorageError and not caught.value.transient
        assert "s3://peakops-no-such-bucket/peakops/videos/ab/x" in str(caught.value)
    with pytest.raises(StorageError, match="does not exist"):
        store.check()
    assert not (tmp_path / "d").exists()


def test_unreachable_endpoint_is_a_transient_storage_error(aws, tmp_path):
    with socket_port() as port:
        pass  # closed again: nothing listens there
    store = S3Store(s3_client(f"http://127.0.0.1:{port}", max_attempts=1), "bkt", "p/")
    source = tmp_path / "s"
    source.write_bytes(b"x")
    with pytest.raises(StorageError, match="unreachable") as caught:
        store.put_file("videos/ab/x", source)
    assert caught.value.transient and "s3://bkt/p/videos/ab/x" in str(caught.value)


def socket_port():
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))

    class _Port:
        def __enter__(self):
            return sock.getsockname()[1]

        def __exit__(self, *exc):
            sock.close()
    return _Port()


def test_cancelled_mid_upload_aborts_the_multipart_upload(client, bucket, tmp_path):
    store = S3Store(client, bucket, "peakops/", transfer_config=small_parts())
    source = random_file(tmp_path / "v.bin", 30 * MB)
    moved = [0]

    def on_progress(delta):
        moved[0] += delta
        if moved[0] > 6 * MB:
            raise CancelledError("upload cancelled by the operator")

    with pytest.raises(CancelledError):
        store.put_file("videos/ab/cancelled", source, on_progress)
    assert multipart_leftovers(client, bucket) == []
    assert store.pending_aborts == {}
    assert not store.exists("videos/ab/cancelled")


def test_endpoint_stopped_mid_upload(proxy, client, bucket, aws, tmp_path, clip_h264):
    """Clear failure, nothing half-recorded; the multipart upload left on the server while
    it was down is aborted by the store's next operation once it is back."""
    video = tmp_path / "long.mp4"
    video.write_bytes(clip_h264.read_bytes())
    random_file(tmp_path / "pad", 20 * MB)
    with video.open("ab") as out:  # trailing bytes: still a video, now big enough for parts
        out.write((tmp_path / "pad").read_bytes())
    store = S3Store(s3_client(proxy.url, max_attempts=2, connect_timeout=2, read_timeout=5),
                    bucket, "peakops/", transfer_config=small_parts())
    app = open_app(make_settings(tmp_path / "home"), store=store)
    moved = [0]

    def on_progress(delta):
        moved[0] += delta
        if moved[0] >= 6 * MB and not proxy.dead:
            proxy.kill()

    with pytest.raises(StorageError, match="unreachable") as caught:
        submit_file(app, video, on_progress=on_progress)
    key = video_key(_sha(video))
    assert f"s3://{bucket}/peakops/{key}" in str(caught.value)
    row = queries.get_upload(app.db, caught.value.upload_id)
    assert (row["status"], row["error_category"], row["storage_key"]) == \
        ("FAILED", "storage", None)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert multipart_leftovers(client, bucket) == [f"peakops/{key}"]  # the server was down
    assert list(store.pending_aborts.values()) == [f"peakops/{key}"]

    proxy.revive()
    store.check()
    assert multipart_leftovers(client, bucket) == []
    assert store.pending_aborts == {}


def test_objects_are_readable_with_the_aws_cli(client, bucket, aws, moto_endpoint, tmp_path):  # noqa: F811
    store = S3Store(client, bucket, "peakops/", transfer_config=small_parts())
    source = random_file(tmp_path / "v.bin", 11 * MB)  # multipart, with checksums
    store.put_file("videos/ab/cli", source)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **aws}
    base = [sys.executable, "-m", "awscli", "--endpoint-url", moto_endpoint,
            "--region", "us-east-1"]
    listing = subprocess.run([*base, "s3", "ls", f"s3://{bucket}/peakops/videos/ab/"],
                             env=env, capture_output=True, text=True, timeout=120, check=True)
    assert "cli" in listing.stdout and str(11 * MB) in listing.stdout
    copy = tmp_path / "copy.bin"
    subprocess.run([*base, "s3", "cp", f"s3://{bucket}/peakops/videos/ab/cli", str(copy)],
                   env=env, capture_output=True, text=True, timeout=120, check=True)
    assert _sha(copy) == _sha(source)


def test_doctor_reports_s3_in_one_line(bucket, aws, moto_endpoint, tmp_path):  # noqa: F811
    from cli.uploads import doctor_checks

    good = make_settings(tmp_path / "a", storage="s3", s3_bucket=bucket,
                         s3_endpoint_url=moto_endpoint, aws_region="us-east-1")
    checks = {name: (ok, line) for name, ok, line in doctor_checks(good)}
    assert checks["storage"][0] and bucket in checks["storage"][1]
    bad = make_settings(tmp_path / "b", storage="s3", s3_bucket="peakops-missing-bucket",
                        s3_endpoint_url=moto_endpoint, aws_region="us-east-1")
    ok, line = {n: (o, t) for n, o, t in doctor_checks(bad)}["storage"]
    assert not ok and "peakops-missing-bucket" in line and "does not exist" in line
    assert "\n" not in line
