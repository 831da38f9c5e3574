"""Probing and exact-frame decoding of videos through libav's API (PyAV).

This package imports no libav itself: the facts, the plan and the extractor contract are
plain Python, so the console and the worker's supervisor can import it without loading
FFmpeg's libraries. libav code lives in :mod:`core.media.probing`, :mod:`core.media.decode`
and :mod:`core.media.picture`, imported only by the job child and the short-lived probe
child (:mod:`core.media.child`), where a decoder crash or a huge allocation hits a limit
instead of the operator's app.
"""

from __future__ import annotations

import functools
from pathlib import Path

from core.media.facts import (
    PLAYLIST_FORMATS,
    VIDEO_FORMATS,
    ProbeResult,
)
from core.media.ladder import DEGRADE_LEVELS, decode_threads, degrade_plan
from core.media.plan import (
    ExtractedFrame,
    ExtractOptions,
    FrameExtractor,
    FrameSource,
    frame_times,
    plan_times,
)

__all__ = [
    "DEGRADE_LEVELS", "PLAYLIST_FORMATS", "VIDEO_FORMATS", "ExtractOptions", "ExtractedFrame",
    "FrameExtractor", "FrameSource", "ProbeResult", "decode_threads", "default_extractor",
    "degrade_plan", "ffmpeg_exe", "frame_times", "plan_times", "probe", "probe_isolated", "start_probe",
]


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary imageio-ffmpeg ships (sample clips and the bench baseline)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def probe(path: Path, *, upload_id: int | None = None) -> ProbeResult:
    """Probe ``path`` in this process (loads libav: job child and probe child only)."""
    from core.media.probing import probe as probe_here

    return probe_here(Path(path), upload_id=upload_id)


def probe_isolated(path: Path, *, upload_id: int | None = None, name: str | None = None,
                   memory_mb: int | None = None, timeout: float | None = None) -> ProbeResult:
    """Probe ``path`` in a short-lived child process under a memory cap (submit time)."""
    from core.media.child import probe_in_child

    kwargs = {k: v for k, v in (("memory_mb", memory_mb), ("timeout", timeout)) if v}
    return probe_in_child(Path(path), upload_id=upload_id, name=name, **kwargs)


def start_probe(path: Path, *, name: str | None = None):
    """Start the submit-time probe child now; ``.result(upload_id=...)`` or ``.cancel()``."""
    from core.media.child import ProbeChild

    return ProbeChild(Path(path), name=name)


def default_extractor(upload_id: int | None = None) -> FrameExtractor:
    """The PyAV extractor (its module loads libav only when a video is opened)."""
    from core.media.decode import PyAVExtractor

    return PyAVExtractor(upload_id=upload_id)
