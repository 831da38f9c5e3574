"""S3Store: objects in an S3 bucket, on AWS or any S3-compatible server (MinIO, Ceph, Wasabi).

Imported lazily by :func:`core.app.make_store`, so ``import core`` never loads boto3.
Credentials come from boto3's standard chain only (environment, shared files, instance
role); PeakOps never reads, stores or prints them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from s3transfer.subscribers import BaseSubscriber

from core.config import Settings
from core.errors import InputError, StorageError
from core.storage.local import MissingObjectError, ProgressCallback, check_key
from core.urls import redacted_url

logger = logging.getLogger(__name__)

MB = 1024 * 1024
MULTIPART_THRESHOLD = 8 * MB
PART_SIZE = 8 * MB
MAX_CONCURRENCY = 4
"""Parts in flight at once; with PART_SIZE this bounds what an upload can hold in memory."""
MAX_IO_QUEUE = 16  # download chunks (256 KiB each) waiting for the disk

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}
_DENIED = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "ExpiredToken", "InvalidToken", "AllAccessDisabled", "AccountProblem"}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
              "TooManyRequests", "RequestTimeout", "ServiceUnavailable", "InternalError",
              "503", "500"}
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
                ConnectionClosedError)


def client_config(*, max_attempts: int = 5, retry_mode: str = "standard",
                  connect_timeout: float = 10, read_timeout: float = 60,
                  path_style: bool = False) -> Config:
    """botocore settings for the S3 client: bounded retries and timeouts, checksums on."""
    return Config(retries={"mode": retry_mode, "max_attempts": max_attempts},
                  connect_timeout=connect_timeout, read_timeout=read_timeout,
                  max_pool_connections=MAX_CONCURRENCY * 2 + 2,
                  request_checksum_calculation="when_supported",
                  response_checksum_validation="when_supported",
                  s3={"addressing_style": "path"} if path_style else None)


def make_client(settings: Settings, **config: Any):
    """An S3 client for ``settings``; S3-compatible endpoints get path-style addressing."""
    session = boto3.session.Session()
    return session.client("s3", region_name=settings.aws_region,
                          endpoint_url=settings.s3_endpoint_url,
                          config=client_config(path_style=bool(settings.s3_endpoint_url),
                                               **config))


def safe_endpoint(url: str | None) -> str:
    """The endpoint URL without any user:password part, for messages."""
    return redacted_url(url, keep_user=False) if url else "AWS"


class ClampedProgress(BaseSubscriber):
    """Turns s3transfer's progress into deltas that only ever move forward.

    s3transfer reports bytes as parts are read and reports a negative amount when a
    retry rewinds a part. Callers get positive deltas whose sum never exceeds ``total``
    and reaches exactly ``total`` once :meth:`finish` runs after a successful transfer.
    Called from several transfer threads at once.
    """

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.callback = callback
        self._moved = 0       # net bytes s3transfer says moved; falls on a rewind
        self._reported = 0    # high-water mark already passed to the callback
        self._lock = threading.Lock()

    def on_progress(self, future=None, bytes_transferred: int = 0, **kwargs: Any) -> None:
        with self._lock:
            self._moved += bytes_transferred
            delta = min(self._moved, self.total) - self._reported
            if delta <= 0:
                return
            self._reported += delta
        if self.callback:
            self.callback(delta)

    def finish(self) -> None:
        with self._lock:
            delta = self.total - self._reported
            self._reported = self.total
        if delta > 0 and self.callback:
            self.callback(delta)


class S3Store:
    """Objects in one bucket under one key prefix (``peakops/`` by default).

    ``client`` is a boto3 S3 client; :meth:`from_settings` builds one with the retry and
    timeout policy of :func:`client_config`. Multipart uploads this store starts and does
    not finish are aborted when the upload fails; if the endpoint is unreachable at that
    moment, the abort is retried at the start of the store's next operation.
    """

    def __init__(self, client, bucket: str, prefix: str = "", *,
                 transfer_config: TransferConfig | None = None) -> None:
        self.client = client
        self.bucket = bucket
        prefix = prefix.strip().lstrip("/")
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.transfer_config = transfer_config or TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE,
            max_concurrency=MAX_CONCURRENCY, max_io_queue=MAX_IO_QUEUE, use_threads=True,
            preferred_transfer_client="classic")
        self.endpoint = client.meta.endpoint_url
        self.region = client.meta.region_name
        self._open_uploads: dict[str, str] = {}    # UploadId -> full key, in progress
        self._pending_aborts: dict[str, str] = {}  # UploadId -> full key, failed, not aborted
        self._lock = threading.Lock()
        events = client.meta.events
        events.register("after-call.s3.CreateMultipartUpload", self._on_created,
                        unique_id=f"peakops-open-{id(self)}")
        for op in ("CompleteMultipartUpload", "AbortMultipartUpload"):
            events.register(f"before-parameter-build.s3.{op}", self._remember_upload_id,
                            unique_id=f"peakops-params-{op}-{id(self)}")
            events.register(f"after-call.s3.{op}", self._on_finished,
                            unique_id=f"peakops-{op}-{id(self)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        if not settings.s3_bucket:
            raise StorageError("PEAKOPS_S3_BUCKET is not set; it is required for S3 storage")
        return cls(make_client(settings), settings.s3_bucket, settings.s3_prefix)

    # ------------------------------------------------------------------ protocol

    def put_file(self, key: str, source: Path, on_progress: ProgressCallback | None = None) -> int:
        full = self._full(key)
        self._retry_aborts()
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            raise InputError(f"{source.name}: the file vanished while it was being stored",
                             key=key) from None
        progress = ClampedProgress(size, on_progress)
        try:
            with create_transfer_manager(self.client, self.transfer_config) as manager:
                manager.upload(str(source), self.bucket, full,
                               extra_args={"ChecksumAlgorithm": "CRC32"},
                               subscribers=[progress]).result()
        except BaseException as exc:
            left = self._abort_open(full)
            error = self._translate(exc, "write", key)
            if error is None:
                raise
            if left:
                error.message += ("; the incomplete multipart upload could not be aborted yet "
                                  "and will be on the store's next operation")
                error.args = (error.message,)
            raise error from None
        progress.finish()
        return size

    def get_file(self, key: str, dest: Path, on_progress: ProgressCallback | None = None) -> int:
        full = self._full(key)
        self._retry_aborts()
        try:
            size = self.client.head_object(Bucket=self.bucket, Key=full)["ContentLength"]
            progress = ClampedProgress(size, on_progress)
            # s3transfer streams into a temporary name beside dest and renames on success.
            with create_transfer_manager(self.client, self.transfer_config) as manager:
                manager.download(self.bucket, full, str(dest), subscribers=[progress]).result()
        except BaseException as exc:
            with contextlib.suppress(OSError):
                dest.unlink()
            error = self._translate(exc, "read", key)
            if error is None:
                raise
            raise error from None
        progress.finish()
        return size

    def open_range(self, key: str):
        """The object as a seekable file read by ranged GETs (:mod:`core.storage.ranged`):
        libav reads the header and the GOPs it decodes, nothing is copied to disk."""
        from core.storage.ranged import S3RangeReader

        self._retry_aborts()
        return S3RangeReader(self, key)

    def delete(self, key: str) -> None:
        full = self._full(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "delete", key) from None

    def exists(self, key: str) -> bool:
        full = self._full(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
        except (ClientError, BotoCoreError) as exc:
            error = self._translate(exc, "look up", key)
            if isinstance(error, MissingObjectError):
                return False
            raise error from None
        return True

    def describe(self) -> str:
        return (f"S3 bucket {self.bucket}, prefix {self.prefix or '(none)'}, region "
                f"{self.region or 'default'}, endpoint {safe_endpoint(self.endpoint)}")

    def location(self, key: str) -> str:
        return self._where(check_key(key))

    def sweep_partials(self) -> int:
        """Abort the multipart uploads this store could not abort when they failed (S3
        never shows a partial object under a key); return how many were aborted now."""
        with self._lock:
            pending = len(self._pending_aborts)
        return pending - self._retry_aborts()

    def check(self) -> None:
        """head_bucket, then write and delete a small probe object under the prefix."""
        probe = f"{self.prefix}.peakops-check-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._retry_aborts()
        try:
            self.client.head_bucket(Bucket=self.bucket)
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"peakops doctor probe")
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "write", probe, full=True) from None

    # ------------------------------------------------------------------ helpers

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _where(self, key: str, full: bool = False) -> str:
        return f"s3://{self.bucket}/{key if full else self.prefix + key}"

    def _no_bucket(self, action: str, key: str, full: bool = False) -> StorageError:
        return StorageError(f"S3 bucket {self.bucket!r} does not exist at "
                            f"{safe_endpoint(self.endpoint)}: cannot {action} "
                            f"{self._where(key, full)}",
                            bucket=self.bucket, key=key, transient=False)

    def _translate(self, exc: BaseException, action: str, key: str,
                   full: bool = False) -> StorageError | None:
        """Our error for a boto failure, or None for anything that is not one."""
        where = self._where(key, full)
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            detail = err.get("Message") or code
            if code in _NO_BUCKET:
                return self._no_bucket(action, key, full)
            if code in _NOT_FOUND:
                if not self._bucket_exists():
                    return self._no_bucket(action, key, full)
                return MissingObjectError(f"the stored copy {key} is missing from {where}; "
                                          "submit the video again", key=key)
            if code in _DENIED:
                return StorageError(f"S3 access denied: cannot {action} {where} ({detail}); "
                                    "check the credentials and the bucket policy",
                                    bucket=self.bucket, key=key, code=code, transient=False)
            if code in _THROTTLED or status >= 500:
                return StorageError(f"S3 is throttling or failing: cannot {action} {where} "
                                    f"({code}: {detail}); retries were exhausted",
                                    bucket=self.bucket, key=key, code=code, transient=True)
            return StorageError(f"S3 refused to {action} {where}: {code}: {detail}",
                                bucket=self.bucket, key=key, code=code, transient=False)
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return StorageError(f"no usable AWS credentials to {action} {where}: set them in "
                                "the environment, ~/.aws or an instance role",
                                bucket=self.bucket, key=key, transient=False)
        if isinstance(exc, _UNREACHABLE):
            return StorageError(f"S3 endpoint {safe_endpoint(self.endpoint)} unreachable: "
                                f"cannot {action} {where} ({type(exc).__name__})",
                                bucket=self.bucket, key=key, transient=True)
        if isinstance(exc, BotoCoreError):
            return StorageError(f"S3 failed to {action} {where}: {exc}",
                                bucket=self.bucket, key=key, transient=True)
        return None

    def _bucket_exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            return code not in _NOT_FOUND | _NO_BUCKET
        except BotoCoreError:
            return True  # cannot tell; do not claim the bucket is gone
        return True

    # Multipart bookkeeping: s3transfer aborts a failed multipart upload itself, but that
    # abort fails when the endpoint is down, so we track what we opened until it closes.

    def _on_created(self, http_response=None, parsed=None, **kwargs: Any) -> None:
        if http_response is not None and http_response.status_code < 300 and parsed:
            with self._lock:
                self._open_uploads[parsed["UploadId"]] = parsed["Key"]

    @staticmethod
    def _remember_upload_id(params=None, context=None, **kwargs: Any) -> None:
        if params and context is not None and "UploadId" in params:
            context["peakops_upload_id"] = params["UploadId"]

    def _on_finished(self, http_response=None, context=None, **kwargs: Any) -> None:
        upload_id = (context or {}).get("peakops_upload_id")
        ok = http_response is not None and (http_response.status_code < 300 or
                                            http_response.status_code == 404)
        if ok and upload_id:
            with self._lock:
                self._open_uploads.pop(upload_id, None)
                self._pending_aborts.pop(upload_id, None)

    def _abort_open(self, full: str) -> int:
        """Abort the multipart uploads this store opened for ``full`` and did not finish;
        those the endpoint cannot be told about now are kept for a later try. Returns
        how many are left."""
        with self._lock:
            targets = [u for u, k in self._open_uploads.items() if k == full]
            for upload_id in targets:
                self._pending_aborts[upload_id] = self._open_uploads.pop(upload_id)
        return self._retry_aborts()

    def _retry_aborts(self) -> int:
        with self._lock:
            targets = list(self._pending_aborts.items())
        left = 0
        for upload_id, key in targets:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                   UploadId=upload_id)
            except BotoCoreError as exc:
                left += 1
                logger.warning("s3://%s/%s: multipart upload %s not aborted yet: %s",
                               self.bucket, key, upload_id, exc)
                continue
            except ClientError:
                pass  # NoSuchUpload and the like: nothing left to abort
            with self._lock:
                self._pending_aborts.pop(upload_id, None)
        return left

    @property
    def pending_aborts(self) -> dict[str, str]:
        """UploadId -> key of failed multipart uploads whose abort is still owed."""
        with self._lock:
            return dict(self._pending_aborts)
