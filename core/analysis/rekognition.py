"""RekognitionAnalyzer: AWS Rekognition labels on top of the local quality metrics.

Imported lazily by :func:`core.app.make_analyzer`, so ``import core`` never loads boto3.
Every call costs money, so frames that look like one already analysed are not sent, the
calls per upload and per budget period are capped, and calls are spaced by a client-side
rate limit.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from PIL import Image

from core.analysis.local import (
    CountingBudget,
    FrameAnalysis,
    Label,
    PeriodBudget,
    calls_key,
    measure,
    nearest_duplicate,
    quality_labels,
)
from core.config import Settings
from core.errors import AnalysisError, ConfigError
from core.redact import safe_endpoint

logger = logging.getLogger(__name__)

SOURCE_REKOGNITION = "rekognition"
MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""DetectLabels refuses image bytes above 5 MB."""
MIN_SIDE = 80  # Rekognition's smallest accepted image side, in pixels
BUDGET_LABEL = "rekognition-budget-reached"
"""Label on frames not sent because the upload's or the period's call budget was spent."""
PERIOD_STARTS_AT = timedelta(hours=12)
"""Budget periods run noon to noon (local), so a nightly window like 22:00-06:00 is one."""
DEFAULT_CALLS_PER_SECOND = 5.0  # DetectLabels' smallest regional default quota (TPS)

_PERMANENT = {"AccessDeniedException", "UnrecognizedClientException",
              "InvalidSignatureException", "InvalidClientTokenId", "ExpiredTokenException",
              "IncompleteSignature", "MissingAuthenticationToken", "InvalidImageFormatException",
              "ImageTooLargeException", "InvalidParameterException", "ValidationException"}
_TRANSIENT = {"ThrottlingException", "ProvisionedThroughputExceededException",
              "LimitExceededException", "InternalServerError", "ServiceUnavailableException",
              "RequestTimeout"}
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
                ConnectionClosedError)


def encode_for_api(path: Path, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """Image bytes DetectLabels accepts: the file itself when it is a JPEG or PNG under
    ``max_bytes``, otherwise a JPEG re-encoded and downscaled until it fits."""
    with path.open("rb") as handle:
        head = handle.read(8)
        size = handle.seek(0, io.SEEK_END)
        if size <= max_bytes and (head[:3] == b"\xff\xd8\xff" or head == b"\x89PNG\r\n\x1a\n"):
            handle.seek(0)
            return handle.read()
    try:
        with Image.open(path) as image:
            image.draft("RGB", (4096, 4096))  # JPEG: decode no larger than needed
            rgb = image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"frame {path.name} cannot be read as an image: {exc}") from None
    quality = 90
    for _ in range(12):
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=quality)
        data = buffer.getvalue()
        if len(data) <= max_bytes:
            return data
        # Bytes scale roughly with the pixel count: shrink both sides by the root.
        scale = max(0.5, min(0.95, math.sqrt(max_bytes / len(data)) * 0.95))
        width, height = int(rgb.width * scale), int(rgb.height * scale)
        if min(width, height) < MIN_SIDE:
            break
        rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
        quality = max(70, quality - 5)
    raise AnalysisError(f"frame {path.name} cannot be made smaller than {max_bytes} bytes "
                        f"without going below {MIN_SIDE} px", transient=False)


def budget_period(moment: datetime, timezone: str = "UTC") -> str:
    """The call-budget period holding ``moment`` (timezone-aware), named by its first day.

    A period is the 24 h from noon to noon on the wall clock of ``timezone`` (DST moves
    the boundary with the clock), so ``2024-05-06`` runs from 6 May 12:00 to 7 May 12:00.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment!r}")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"timezone: unknown time zone {timezone!r}; expected an IANA name "
                          "like 'Europe/Berlin' or 'UTC'", key="timezone") from None
    wall = moment.astimezone(zone).replace(tzinfo=None)
    return (wall - PERIOD_STARTS_AT).date().isoformat()


def period_calls_key(period: str) -> str:
    """The ``core.store.state`` key counting the DetectLabels calls made in ``period``."""
    return calls_key(SOURCE_REKOGNITION, period)


class RateLimit:
    """At most ``per_second`` calls per second: each call waits for its slot.

    ``clock`` and ``sleep`` are passed in so tests can run it on a fake clock.
    """

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until a call may go out; return how long we waited."""
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            self.sleep(delay)
        return delay


def make_client(settings: Settings, *, max_attempts: int = 6):
    """A Rekognition client with adaptive retries (it slows itself down when throttled)."""
    config = Config(retries={"mode": "adaptive", "max_attempts": max_attempts},
                    connect_timeout=10, read_timeout=30)
    return boto3.session.Session().client(
        "rekognition", region_name=settings.aws_region,
        endpoint_url=settings.rekognition_endpoint_url, config=config)


class RekognitionAnalyzer:
    """Local metrics and quality labels, plus DetectLabels labels (source ``rekognition``).

    ``client_factory`` returns a boto3 Rekognition client; it is called on first use, so
    a missing region or credentials surface as :class:`AnalysisError` on the first frame
    (and in doctor), not when the app is opened.

    Call budget: ``max_calls_per_upload`` DetectLabels calls per upload. The pipeline
    calls :meth:`begin_upload` with the calls the upload already made (stored in
    ``uploads.rekognition_calls``) and stores :attr:`calls_made` after each frame.
    Frames past the budget get the local labels and ``BUDGET_LABEL``.

    Period budget: ``max_calls_per_window`` calls (0 = no limit) per :func:`budget_period`
    across all uploads and workers. Each call is reserved from the budget given to
    :meth:`use_budget` before it is made (the pipeline's ``SharedBudget``: one atomic
    counter in the state database, key :func:`period_calls_key`, so a fleet never goes
    over) and given back if it fails unbilled. On its own the analyzer counts in-process.
    ``clock`` returns the current aware datetime; tests pass a fixed one.
    """

    name = SOURCE_REKOGNITION

    def __init__(self, client_factory: Callable[[], Any], *, max_labels: int = 10,
                 min_confidence: float = 70.0, max_calls_per_upload: int = 20,
                 max_calls_per_window: int = 0, timezone: str = "UTC",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 rate_limit: RateLimit | None = None,
                 max_image_bytes: int = MAX_IMAGE_BYTES) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self.max_labels = max_labels
        self.min_confidence = min_confidence
        self.max_calls_per_upload = max_calls_per_upload
        self.rate_limit = rate_limit or RateLimit(DEFAULT_CALLS_PER_SECOND)
        self.max_image_bytes = max_image_bytes
        self.upload_id: int | None = None
        self.calls_made = 0
        """DetectLabels calls that returned labels for the current upload."""
        self.max_calls_per_window = max_calls_per_window
        self.timezone = timezone
        self.clock = clock
        self.budget: PeriodBudget = CountingBudget()

    @classmethod
    def from_settings(cls, settings: Settings) -> RekognitionAnalyzer:
        return cls(lambda: make_client(settings),
                   max_labels=settings.rekognition_max_labels,
                   min_confidence=settings.rekognition_min_confidence,
                   max_calls_per_upload=settings.rekognition_max_calls_per_upload,
                   max_calls_per_window=settings.rekognition_max_calls_per_window,
                   timezone=settings.timezone)

    def begin_upload(self, upload_id: int, calls_made: int = 0) -> None:
        """Start counting for ``upload_id``, which has already made ``calls_made`` calls."""
        self.upload_id = upload_id
        self.calls_made = calls_made

    def current_period(self) -> str:
        """The budget period now (see :func:`budget_period`)."""
        return budget_period(self.clock(), self.timezone)

    def use_budget(self, budget: PeriodBudget) -> None:
        """Take each call of a budget period from ``budget`` (see the class notes)."""
        self.budget = budget

    def analyze(self, image: Path, previous_hashes: Sequence[int] = ()) -> FrameAnalysis:
        metrics = measure(image)
        duplicate = nearest_duplicate(metrics.dhash, previous_hashes)
        labels = quality_labels(metrics, duplicate is not None)
        if duplicate is not None:  # adds nothing new: not worth a paid call
            return FrameAnalysis(metrics, labels, duplicate)
        if self.calls_made >= self.max_calls_per_upload:
            logger.info("upload %s: %s skipped, Rekognition budget of %s calls spent",
                        self.upload_id, image.name, self.max_calls_per_upload)
            return FrameAnalysis(metrics, [*labels, Label(BUDGET_LABEL, 100.0)])
        data = encode_for_api(image, self.max_image_bytes)
        period = self.current_period() if self.max_calls_per_window else None
        if period is not None and not self.budget.reserve(period, self.max_calls_per_window):
            logger.info("upload %s: %s skipped, Rekognition budget of %s calls for period %s "
                        "spent", self.upload_id, image.name, self.max_calls_per_window, period)
            return FrameAnalysis(metrics, [*labels, Label(BUDGET_LABEL, 100.0)])
        try:
            response = self._detect(data, self.max_labels, f"frame {image.name}")
        except AnalysisError:
            if period is not None:  # refused or unreachable: not billed
                self.budget.give_back(period)
            raise
        self.calls_made += 1
        labels += [Label(item["Name"], round(float(item["Confidence"]), 2), SOURCE_REKOGNITION)
                   for item in response.get("Labels", [])]
        return FrameAnalysis(metrics, labels)

    def check(self) -> None:
        """One small DetectLabels call (a grey 96x96 JPEG); raises AnalysisError."""
        buffer = io.BytesIO()
        Image.new("RGB", (96, 96), (128, 128, 128)).save(buffer, "JPEG")
        self._detect(buffer.getvalue(), 1, "check image")

    def describe(self) -> str:
        client = self._client
        where = safe_endpoint(client.meta.endpoint_url) if client is not None \
            else "not connected yet"
        return f"AWS Rekognition ({where})"

    def _detect(self, data: bytes, max_labels: int, what: str) -> dict:
        try:
            if self._client is None:
                self._client = self._client_factory()
            self.rate_limit.wait()
            return self._client.detect_labels(Image={"Bytes": data}, MaxLabels=max_labels,
                                              MinConfidence=self.min_confidence)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            transient = code in _TRANSIENT or (code not in _PERMANENT and status >= 500)
            hint = "retries were exhausted" if transient else "retrying will not help"
            raise AnalysisError(f"Rekognition refused {what}: {code}: "
                                f"{err.get('Message') or code} ({hint})",
                                upload_id=self.upload_id, transient=transient,
                                code=code) from None
        except NoRegionError:
            raise AnalysisError("Rekognition: no AWS region configured (set AWS_REGION)",
                                upload_id=self.upload_id, transient=False) from None
        except (NoCredentialsError, PartialCredentialsError):
            raise AnalysisError("Rekognition: no usable AWS credentials (environment, "
                                "~/.aws or an instance role)", upload_id=self.upload_id,
                                transient=False) from None
        except _UNREACHABLE as exc:
            raise AnalysisError(f"Rekognition endpoint unreachable for {what}: {exc}",
                                upload_id=self.upload_id, transient=True) from None
        except BotoCoreError as exc:
            raise AnalysisError(f"Rekognition failed for {what}: {exc}",
                                upload_id=self.upload_id, transient=False) from None
