"""Which frame each slot takes: the selection policies, with no libav.

``even`` takes the frame at the middle of each equal slice of the video (the plan as it
always was). ``sharpest`` takes, among the frames the decoder produces anyway on its way
to the slice's middle, the one with the highest focus score (:func:`focus_score`), never
further than half a slice from the middle. ``coverage`` moves the slots themselves: a
keyframe-only pass measures how much the picture changes along the video
(:mod:`core.media.scan`), and :func:`coverage_targets` shares the frames out in
proportion to that change, with a floor per stretch of time so no stretch is left empty.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Pillow is loaded when a picture is scored, not when a plan is named
    from PIL.Image import Image

EVEN, SHARPEST, COVERAGE = "even", "sharpest", "coverage"
SELECTIONS: tuple[str, ...] = (EVEN, SHARPEST, COVERAGE)
DEFAULT_SELECTION = SHARPEST
"""Chosen by the bench (bench/results/selection.md): on the 720p and 1080p bench clips
sharpest costs 1.10x and 1.11x even's CPU time, and on a blurred handheld clip it lifts the
chosen frames' mean focus score from 166 to 624. (On flat generated clips that decode in
0.3 ms a frame the scoring weighs up to 1.34x.) core.config's default names the same plan."""

THUMB_WIDTH = 160
"""Width of the grey thumbnail a frame is scored on: enough to see focus, cheap to make."""
CHANGE_WIDTH = 64
"""Width of the grey thumbnail two keyframes are compared on."""
FRAMES_PER_STRETCH = 4
"""``coverage`` keeps one frame of every this many as a floor: one per stretch of time."""
CHANGE_NOISE = 1.0
"""Keyframe-to-keyframe change at or below this is noise (encoder grain on a tripod shot)."""
CHANGE_CAP = 40.0
"""One keyframe step counts for at most this much change: a scene cut is one new view,
worth about as much as a quarter-view step of a pan, not a whole clip's frames."""

_LAPLACE = (0, 1, 0, 1, -4, 1, 0, 1, 0)


@functools.cache
def _kernels():
    """The Laplacian split in two so no value clips at 0..255: each kernel keeps one sign,
    divided by 4 so the largest (4 * 255) fits a byte."""
    from PIL import ImageFilter

    return (ImageFilter.Kernel((3, 3), _LAPLACE, scale=4),
            ImageFilter.Kernel((3, 3), [-k for k in _LAPLACE], scale=4))


def check_selection(value: str) -> str:
    """``value`` if it names a policy; ValueError otherwise."""
    if value not in SELECTIONS:
        raise ValueError(f"frame selection must be one of {', '.join(SELECTIONS)}, got {value!r}")
    return value


def focus_score(grey: Image) -> float:
    """Variance of the Laplacian of a greyscale picture (higher: sharper).

    Scored on a small thumbnail (``THUMB_WIDTH`` wide), so figures from videos of any size
    compare; the border row and column, where the kernel sees outside the picture, are left
    out.
    """
    from PIL import Image as PILImage
    from PIL import ImageStat

    if grey.mode != "L":
        grey = grey.convert("L")
    if grey.width > THUMB_WIDTH:
        grey = grey.resize((THUMB_WIDTH, max(1, round(grey.height * THUMB_WIDTH / grey.width))),
                           PILImage.Resampling.BILINEAR)
    if grey.width < 3 or grey.height < 3:
        return 0.0
    inner = (1, 1, grey.width - 1, grey.height - 1)
    positive_kernel, negative_kernel = _kernels()
    positive = ImageStat.Stat(grey.filter(positive_kernel).crop(inner))
    negative = ImageStat.Stat(grey.filter(negative_kernel).crop(inner))
    count = positive.count[0]
    # At each pixel one of the two halves is zero, so (p - n)^2 = p^2 + n^2.
    mean = (positive.sum[0] - negative.sum[0]) / count
    square = (positive.sum2[0] + negative.sum2[0]) / count
    return round(16.0 * max(0.0, square - mean * mean), 2)


def picture_change(a: Image, b: Image) -> float:
    """How different two greyscale thumbnails of the same size look: mean absolute
    difference per pixel, 0 (same) .. 255."""
    from PIL import ImageChops, ImageStat

    return round(ImageStat.Stat(ImageChops.difference(a, b)).mean[0], 3)


def change_thumbnail(grey: Image) -> Image:
    """The small thumbnail :func:`picture_change` compares (blurred a little, so sensor
    noise and compression grain do not read as change)."""
    from PIL import Image as PILImage
    from PIL import ImageFilter

    height = max(1, round(grey.height * CHANGE_WIDTH / max(1, grey.width)))
    small = grey.convert("L").resize((CHANGE_WIDTH, height), PILImage.Resampling.BOX)
    return small.filter(ImageFilter.BoxBlur(1))


@dataclass(frozen=True)
class Candidate:
    """A decoded frame in a slot's window and its focus score."""

    pts: int
    score: float


def window(targets: Sequence[float], i: int, span: float) -> tuple[float, float]:
    """(earliest, latest) time slot ``i`` may take under ``sharpest``: half a slice either
    side of its target, and never past the middle between it and a neighbour."""
    slice_ = span / max(1, len(targets))
    low, high = targets[i] - slice_ / 2, targets[i] + slice_ / 2
    if i > 0:
        low = max(low, (targets[i - 1] + targets[i]) / 2)
    if i + 1 < len(targets):
        high = min(high, (targets[i] + targets[i + 1]) / 2)
    return low, high


def coverage_targets(times: Sequence[float], changes: Sequence[float], span: float,
                     count: int, *, per_stretch: int = FRAMES_PER_STRETCH) -> list[float]:
    """``count`` slot targets (seconds, increasing) shared out by picture change.

    ``times`` are the keyframes' times (increasing, seconds from the video's first frame)
    and ``changes[k]`` how much the picture changed from keyframe ``k-1`` to ``k``
    (``changes[0]`` is ignored); the change is spread evenly over the time between them.
    The span is cut into ``count // per_stretch`` stretches (at least one); each gets one
    frame, the rest go to the stretches in proportion to their change, and within a
    stretch each frame sits at an equal share of its change. A video that never changes
    gets the ``even`` plan.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if span <= 0:
        return [0.0]
    curve = _ChangeCurve(times, changes, span)
    if curve.total <= 0:
        return [span * (i + 0.5) / count for i in range(count)]
    stretches = max(1, min(count, count // max(1, per_stretch)))
    edges = [span * s / stretches for s in range(stretches + 1)]
    mass = [curve.at(edges[s + 1]) - curve.at(edges[s]) for s in range(stretches)]
    shares = _largest_remainder(mass, count - stretches)
    targets: list[float] = []
    for s in range(stretches):
        frames = 1 + shares[s]
        low, high = edges[s], edges[s + 1]
        if mass[s] <= 0:
            targets += [low + (high - low) * (j + 0.5) / frames for j in range(frames)]
            continue
        base = curve.at(low)
        targets += [curve.time_of(base + mass[s] * (j + 0.5) / frames, low, high)
                    for j in range(frames)]
    return targets


def _largest_remainder(weights: Sequence[float], seats: int) -> list[int]:
    """``seats`` whole shares in proportion to ``weights`` (Hamilton's method)."""
    total = sum(weights)
    if seats <= 0 or total <= 0:
        return [0] * len(weights)
    exact = [seats * w / total for w in weights]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda k: exact[k] - shares[k], reverse=True)
    for k in order[:seats - sum(shares)]:
        shares[k] += 1
    return shares


class _ChangeCurve:
    """Cumulative picture change over time: piecewise linear through the keyframes, plus
    a trace of time so a flat stretch still orders its frames by time."""

    def __init__(self, times: Sequence[float], changes: Sequence[float], span: float):
        points = [(0.0, 0.0)]
        total = 0.0
        for k in range(1, len(times)):
            step = changes[k] if changes[k] > CHANGE_NOISE else 0.0
            total += min(step, CHANGE_CAP)
            points.append((max(points[-1][0], min(times[k], span)), total))
        self.total = total
        epsilon = total * 1e-3 / span
        points.append((span, total))
        self.times = [t for t, _ in points]
        self.values = [v + epsilon * t for t, v in points]

    def at(self, t: float) -> float:
        k = bisect.bisect_right(self.times, t) - 1
        if k >= len(self.times) - 1:
            return self.values[-1]
        t0, t1 = self.times[k], self.times[k + 1]
        v0, v1 = self.values[k], self.values[k + 1]
        return v0 if t1 <= t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def time_of(self, value: float, low: float, high: float) -> float:
        """The time in [low, high] where the curve reaches ``value`` (it never falls)."""
        for _ in range(60):
            middle = (low + high) / 2
            if self.at(middle) < value:
                low = middle
            else:
                high = middle
        return round((low + high) / 2, 6)
