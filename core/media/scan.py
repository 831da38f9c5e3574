"""The keyframe-only pass ``coverage`` plans by: how much the picture changes along a video.

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
from core.media.selection import CHANGE_WIDTH, change_thumbnail, picture_change

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

    from core.media.probe import open_container, video_stream

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
