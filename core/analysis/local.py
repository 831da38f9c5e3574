"""Frame analysis: quality metrics and labels for one frame image.

:class:`LocalAnalyzer` runs offline with Pillow. Every analyzer also returns the local
metrics, including the 64-bit difference hash used to spot near-duplicate frames, so
that remote analyzers can skip frames that add nothing.

Pillow is imported where an image is opened, not with the module: the supervisor loads
this module (through core.app) and never looks at a frame; the job child loads Pillow at
its first frame, since the offline metrics (:func:`measure`) need it there.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from core.errors import AnalysisError
from core.store import state

if TYPE_CHECKING:
    from PIL import Image

SOURCE_LOCAL = "local"
NEAR_DUPLICATE_BITS = 4
"""A frame whose difference hash is within this many of 64 bits of the frame just before
it shows the same view, held. Calibrated on real and generated footage
(docs/near-duplicates.md): test cards and tripod shots differ by 0-1 bits, a pan or a
drone along a coast by 7 or more from one frame to the next."""
REVISIT_BITS = 1
"""An earlier (not the previous) frame counts only this close: the same view again, as a
camera back where it started. Further apart, a smooth view (sky, sea) seen from a camera
that keeps moving would read as a repeat of some earlier frame."""

_WORK_WIDTH = 320
BLUR_THRESHOLD = 8.0      # focus score below this: blurry
DARK_THRESHOLD = 50.0     # mean luminance below this (0-255): dark
BRIGHT_CLIP = 0.25        # share of pixels >= 250 above this: overexposed


@dataclass(frozen=True)
class Label:
    name: str
    confidence: float  # percent, 0-100, as Rekognition reports it
    source: str = SOURCE_LOCAL


@dataclass(frozen=True)
class Metrics:
    sharpness: float      # focus score: edge variance per unit of contrast, x100
    brightness: float     # mean luminance 0-255
    overexposed: float    # share of pixels at or above 250
    dhash: int            # 64-bit difference hash
    width: int
    height: int


@dataclass(frozen=True)
class FrameAnalysis:
    metrics: Metrics
    labels: list[Label] = field(default_factory=list)
    near_duplicate_of: int | None = None  # index into previous_hashes


@runtime_checkable
class Analyzer(Protocol):
    """Contract every analyzer (offline Pillow, AWS Rekognition) fulfils.

    ``analyze`` looks at one JPEG frame; ``previous_hashes`` are the difference hashes of
    the frames of the same upload already analysed, so near-duplicates can be reported
    (and skipped by analyzers that cost money). Raises :class:`AnalysisError` when the
    frame cannot be analysed; ``transient`` tells whether a retry may help.

    Budget hooks: analyzers that pay per call count them. The pipeline calls
    :meth:`begin_upload` before an upload's frames with the calls it already made (kept
    across retries) and stores :attr:`calls_made` after each frame. A paid analyzer with a
    budget per period takes each call from the :class:`PeriodBudget` given to
    :meth:`use_budget` before making it, and gives back a call that failed unbilled. The
    pipeline passes a :class:`SharedBudget` (one atomic counter in the state database,
    shared by every worker of a fleet). A free analyzer counts nothing and has no period.
    """

    name: str
    calls_made: int
    """Paid calls made for the current upload."""

    def analyze(self, image: Path, previous_hashes: Sequence[int] = ()) -> FrameAnalysis:
        """Metrics and labels of one frame."""

    def check(self) -> None:
        """Raise AnalysisError if the analyzer cannot work now (for doctor)."""

    def describe(self) -> str:
        """One line naming the analyzer and where it runs, safe to print."""

    def begin_upload(self, upload_id: int, calls_made: int = 0) -> None:
        """Start counting for ``upload_id``, which has already made ``calls_made`` calls."""

    def current_period(self) -> str | None:
        """The budget period now, or None for an analyzer without a period budget."""

    def use_budget(self, budget: PeriodBudget) -> None:
        """Take paid calls from ``budget`` from now on."""


class PeriodBudget(Protocol):
    """Paid calls per budget period: reserve one before a call, give back an unbilled one."""

    def reserve(self, period: str, limit: int) -> bool:
        """Take one call from ``period`` if fewer than ``limit`` were taken; whether it was."""

    def give_back(self, period: str) -> None:
        """Return a call reserved in ``period`` that was not made (or not billed)."""


@dataclass
class CountingBudget:
    """A budget counted in this process only: an analyzer on its own (tests, a script)."""

    counts: dict[str, int] = field(default_factory=dict)

    def reserve(self, period: str, limit: int) -> bool:
        if self.counts.get(period, 0) >= limit:
            return False
        self.counts[period] = self.counts.get(period, 0) + 1
        return True

    def give_back(self, period: str) -> None:
        self.counts[period] = max(0, self.counts.get(period, 0) - 1)


@dataclass
class SharedBudget:
    """The budget as one counter per period in the state database (``core.store.state`` key
    :func:`calls_key`), taken by one conditional statement: workers on any number of
    machines never make more than ``limit`` calls between them."""

    db: Any
    analyzer_name: str

    def reserve(self, period: str, limit: int) -> bool:
        return state.reserve(self.db, calls_key(self.analyzer_name, period), limit)

    def give_back(self, period: str) -> None:
        state.increment(self.db, calls_key(self.analyzer_name, period), -1)


def calls_key(analyzer_name: str, period: str) -> str:
    """The ``core.store.state`` key counting an analyzer's paid calls in ``period``."""
    return f"{analyzer_name}.calls.{period}"


def dhash(image: Image.Image) -> int:
    """64-bit difference hash: 9x8 greyscale, one bit per left<right neighbour pair."""
    from PIL import Image

    small = image.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    pixels = small.tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            left, right = pixels[row * 9 + col], pixels[row * 9 + col + 1]
            bits = (bits << 1) | (left < right)
    return bits


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def nearest_duplicate(hash_: int, previous: Sequence[int]) -> int | None:
    """Index in ``previous`` (the upload's frames before this one, in order) of the frame
    this one duplicates: the previous frame within NEAR_DUPLICATE_BITS, else the closest
    earlier one within REVISIT_BITS; None when it adds something."""
    if not previous:
        return None
    if hamming(hash_, previous[-1]) <= NEAR_DUPLICATE_BITS:
        return len(previous) - 1
    best = None
    for i, other in enumerate(previous[:-1]):
        distance = hamming(hash_, other)
        if distance <= REVISIT_BITS and (best is None or distance < best[0]):
            best = (distance, i)
    return None if best is None else best[1]


def measure(image_path: Path) -> Metrics:
    """Quality metrics of one image, computed on a small greyscale copy."""
    from PIL import Image, ImageFilter, ImageStat

    try:
        with Image.open(image_path) as image:
            width, height = image.size
            image.draft("L", (_WORK_WIDTH, _WORK_WIDTH))  # JPEG: decode at reduced size
            grey = image.convert("L")
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"frame {image_path.name} cannot be read as an image: {exc}") from None
    if grey.width > _WORK_WIDTH:
        grey = grey.resize((_WORK_WIDTH, max(1, grey.height * _WORK_WIDTH // grey.width)))
    # The edge filter's border rows are artefacts; normalising by contrast keeps a
    # dim but focused frame from reading as blurry. A picture too thin to lose its
    # border (a few pixels high or wide) keeps it.
    edges = grey.filter(ImageFilter.FIND_EDGES)
    if grey.width > 4 and grey.height > 4:
        edges = edges.crop((2, 2, grey.width - 2, grey.height - 2))
    sharpness = 100.0 * ImageStat.Stat(edges).var[0] / (ImageStat.Stat(grey).var[0] + 1.0)
    histogram = grey.histogram()
    total = sum(histogram) or 1
    brightness = sum(i * n for i, n in enumerate(histogram)) / total
    overexposed = sum(histogram[250:]) / total
    return Metrics(sharpness=round(sharpness, 2), brightness=round(brightness, 2),
                   overexposed=round(overexposed, 4), dhash=dhash(grey), width=width,
                   height=height)


def _scaled(value: float, low: float, high: float) -> float:
    """Map value from [low, high] to a confidence in [50, 99]."""
    if high == low:
        return 99.0
    share = min(1.0, max(0.0, (value - low) / (high - low)))
    return round(50.0 + 49.0 * share, 1)


def quality_labels(metrics: Metrics, near_duplicate: bool) -> list[Label]:
    """Labels an inspector acts on: focus, exposure, and whether the frame adds anything."""
    labels = []
    if metrics.sharpness < BLUR_THRESHOLD:
        labels.append(Label("blurry", _scaled(BLUR_THRESHOLD - metrics.sharpness, 0,
                                              BLUR_THRESHOLD)))
    else:
        labels.append(Label("sharp", _scaled(metrics.sharpness, BLUR_THRESHOLD,
                                             BLUR_THRESHOLD * 10)))
    if metrics.brightness < DARK_THRESHOLD:
        labels.append(Label("dark", _scaled(DARK_THRESHOLD - metrics.brightness, 0,
                                            DARK_THRESHOLD)))
    elif metrics.overexposed > BRIGHT_CLIP:
        labels.append(Label("overexposed", _scaled(metrics.overexposed, BRIGHT_CLIP, 1.0)))
    else:
        labels.append(Label("well-exposed", _scaled(
            -abs(metrics.brightness - 128), -(128 - DARK_THRESHOLD), 0)))
    if near_duplicate:
        labels.append(Label("near-duplicate", 90.0))
    return labels


class LocalAnalyzer:
    """Offline analysis with Pillow: sharpness, exposure and near-duplicates. Free: no
    call budget, no period."""

    name = SOURCE_LOCAL
    calls_made = 0

    def check(self) -> None:
        """Encode and decode a small JPEG with Pillow."""
        from PIL import Image

        buffer = io.BytesIO()
        try:
            Image.new("RGB", (32, 32), (128, 128, 128)).save(buffer, "JPEG")
            buffer.seek(0)
            with Image.open(buffer) as image:
                image.load()
        except (OSError, ValueError) as exc:
            raise AnalysisError(f"Pillow cannot encode and decode JPEG: {exc}") from None

    def describe(self) -> str:
        return "local (Pillow: sharpness, exposure, near-duplicates)"

    def begin_upload(self, upload_id: int, calls_made: int = 0) -> None:
        """Nothing to count: local analysis is free."""

    def current_period(self) -> str | None:
        return None

    def use_budget(self, budget: PeriodBudget) -> None:
        """Nothing to count: local analysis is free."""

    def analyze(self, image: Path, previous_hashes: Sequence[int] = ()) -> FrameAnalysis:
        metrics = measure(image)
        duplicate = nearest_duplicate(metrics.dhash, previous_hashes)
        return FrameAnalysis(metrics, quality_labels(metrics, duplicate is not None), duplicate)
