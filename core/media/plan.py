"""Which frames to take, with which knobs, and the contract of an extractor (no libav)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.media.facts import ProbeResult


def frame_times(duration: float | None, count: int) -> list[float]:
    """``count`` times at the middles of equal slices of ``duration``; one at 0 if unknown."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if not duration or duration <= 0:
        return [0.0]
    return [duration * (i + 0.5) / count for i in range(count)]


def plan_times(facts: ProbeResult, max_frames: int) -> list[float]:
    """The full plan: times (seconds from the video's first frame) over the stream's own span.

    Never more slots than the video has frames, so a one-frame clip gives one frame.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    count = max_frames
    if facts.frames:
        count = min(count, max(1, facts.frames))
    return frame_times(facts.duration, count)


@dataclass(frozen=True)
class ExtractOptions:
    """How to decode frames; the knobs that bound memory."""

    max_width: int = 1280
    threads: int = 2
    keyframes_only: bool = False
    jpeg_quality: int = 3   # ffmpeg's -q:v scale (2 best .. 31 worst), mapped for Pillow

    def __post_init__(self) -> None:
        if self.max_width < 2:
            raise ValueError(f"max_width must be at least 2, got {self.max_width}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if not 2 <= self.jpeg_quality <= 31:
            raise ValueError(f"jpeg_quality must be 2..31, got {self.jpeg_quality}")

    @property
    def pillow_quality(self) -> int:
        """Pillow's 1..95 quality for ffmpeg's q:v (2 -> 95, 3 -> 92, 31 -> 20)."""
        return max(20, min(95, 98 - 3 * self.jpeg_quality)) if self.jpeg_quality > 2 else 95


@dataclass(frozen=True)
class ExtractedFrame:
    path: Path
    timestamp: float   # the frame's own time, seconds from the video's first frame
    width: int
    height: int


class FrameSource(Protocol):
    """One opened video, giving frames in increasing time order.

    ``extract`` writes the frame shown at ``timestamp`` (seconds from the video's first
    frame) to ``dest`` as a JPEG: the last frame whose time is at or before
    ``timestamp``; past the last frame, the last frame. The picture is as a person sees
    it: rotation and flips applied, square pixels, the stream's own colour matrix and
    range, HDR tone-mapped to SDR, at most ``options.max_width`` wide (never scaled up).
    The returned ``ExtractedFrame`` carries the frame's own timestamp, never the request.
    ``dest`` holds a complete JPEG afterwards or is untouched.
    Problems with the video raise ``InputError``; running too long ``JobTimeoutError``.
    """

    def extract(self, timestamp: float, dest: Path) -> ExtractedFrame: ...

    def close(self) -> None: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...


class FrameExtractor(Protocol):
    """Opens videos for frame extraction.

    ``open`` trusts ``facts`` (the probe recorded at submit) for the stream's start, span,
    orientation and colours, so it does not re-probe; cost per frame grows with the
    distance to the preceding keyframe, not with the video's length.
    """

    def open(self, video: Path, facts: ProbeResult, options: ExtractOptions, *,
             name: str | None = None) -> FrameSource:
        """``name`` is what messages call the video (the operator's name, never a path)."""
        ...
