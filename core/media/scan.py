"""What the selection policies need from libav: the keyframe-only pass ``coverage`` plans
by (how much the picture changes along a video) and a decoded frame's focus score.

The decoder is told to skip every frame but keyframes (``skip_frame = NONKEY``), so the
pass costs one decoded frame per GOP. Each keyframe is shrunk to a small grey thumbnail
(libav's scaler does that in the decoder's own format) and compared with the previous one.
Loads libav: job child only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from core.errors import InputError, JobTimeoutError
from core.media.facts import ProbeResult
from core.media.plan import FrameIndex, resolve_slots
from core.media.selection import (
    CHANGE_NOISE,
    CHANGE_WIDTH,
    THUMB_WIDTH,
    change_thumbnail,
    coverage_targets,
    focus_score,
    picture_change,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChangeScan:
    """Keyframe times (seconds from the video's first frame) and the picture change from
    the previous keyframe to each (0 for the first)."""

    times: list[float] = field(default_factory=list)
    changes: list[float] = field(default_factory=list)
    seconds: float = 0.0   # how long the pass took


def scan_changes(video: Path, facts: ProbeResult, *, timeout: float = 120.0,
                 upload_id: int | None = None, name: str | None = None) -> ChangeScan:
    """Decode the keyframes of ``video`` and measure the change between neighbours."""
    import av

    from core.media.probing import open_container, video_stream

    video = Path(video)
    name = name or video.name
    began = time.monotonic()
    try:
        container = open_container(video)
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"{name}: libav could not open the video ({type(exc).__name__})",
                         upload_id=upload_id) from None
    times: list[float] = []
    changes: list[float] = []
    try:
        stream = video_stream(container)
        if stream is None:
            raise InputError(f"{name}: has no video stream", upload_id=upload_id)
        context = stream.codec_context
        context.skip_frame = "NONKEY"
        context.thread_type = "SLICE"
        time_base = stream.time_base or Fraction(1, 1000)
        height = max(2, round(CHANGE_WIDTH * 4 * (facts.height or 9) / (facts.width or 16)))
        previous = None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            # Scale at 4x the compared size (cheap in libav), then box down in Pillow.
            grey = frame.reformat(width=CHANGE_WIDTH * 4, height=height, format="gray")
            thumb = change_thumbnail(grey.to_image())
            times.append(round(float(frame.pts * time_base) - facts.start, 6))
            changes.append(0.0 if previous is None else picture_change(previous, thumb))
            previous = thumb
            if time.monotonic() - began > timeout:
                raise JobTimeoutError(f"{name}: the keyframe pass took longer than "
                                      f"{timeout:g} s", upload_id=upload_id, timeout=timeout)
    except av.error.FFmpegError as exc:
        if not times:
            raise InputError(f"{name}: libav could not decode the keyframes "
                             f"({type(exc).__name__})", upload_id=upload_id) from None
        logger.info("upload %s: keyframe pass stopped early at %.3f s (%s)", upload_id,
                    times[-1], type(exc).__name__)
    finally:
        container.close()
    order = sorted(range(len(times)), key=times.__getitem__)
    return ChangeScan([times[k] for k in order], [changes[k] for k in order],
                      round(time.monotonic() - began, 4))


def coverage_plan(video: Path, facts: ProbeResult, index: FrameIndex, count: int, *,
                  timeout: float, upload_id: int | None, name: str) -> tuple[list[int], str]:
    """The frames (pts) ``coverage`` takes, and a note when it could not measure change
    (too few keyframes, or none differing) and fell back to the slice middles."""
    changes = scan_changes(video, facts, timeout=timeout, upload_id=upload_id, name=name)
    logger.info("upload %s: %s: keyframe pass over %d keyframes took %.2f s", upload_id,
                name, len(changes.times), changes.seconds)
    if len(changes.times) < 3 or max(changes.changes, default=0.0) <= CHANGE_NOISE:
        return index.plan(count), ("middle of the slice (coverage: too few keyframes or no "
                                   "change between them to measure)")
    targets = coverage_targets(changes.times, changes.changes, index.span(), count)
    chosen = resolve_slots(index.times(), [index.start + t for t in targets])
    return [index.pts[i] for i in chosen], ""


def frame_focus(frame) -> float:
    """A decoded frame's focus score, on a small grey thumbnail libav's scaler makes
    (fast bilinear: a quarter of what the default filter costs on a 1080p frame)."""
    height = max(2, round(THUMB_WIDTH * frame.height / max(1, frame.width)))
    grey = frame.reformat(width=THUMB_WIDTH, height=height, format="gray",
                          interpolation="FAST_BILINEAR")
    return focus_score(grey.to_image())
