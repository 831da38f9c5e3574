"""The degrade ladder: what each level gives up so that a job needs less memory.

A memory kill retries the job one level down (:mod:`core.jobs.settle`). Level 0 is full
quality; each level after it takes every n-th frame of the full plan (so frames recorded
at a lower level stay valid) and bounds what the decoder holds. No libav here.
"""

from __future__ import annotations

from core.media.plan import ExtractOptions

DEGRADE_LEVELS = 3
LARGE_PICTURE_PIXELS = 1920 * 1088
"""Above this (e.g. 4K), decode with one thread: each frame thread holds frames of its own."""

LADDER: tuple[tuple[int, ExtractOptions], ...] = (
    (1, ExtractOptions()),
    (2, ExtractOptions(max_width=960, threads=1)),
    (4, ExtractOptions(max_width=640, threads=1, keyframes_only=True)),
)
assert len(LADDER) == DEGRADE_LEVELS


def degrade_plan(level: int, max_frames: int) -> tuple[list[int], ExtractOptions]:
    """Frame indices (into the full plan of ``max_frames`` slots) and options for a level.

    Indices stay in the full plan so frames recorded at a lower level remain valid.
    """
    if not 0 <= level < DEGRADE_LEVELS:
        raise ValueError(f"degrade level must be 0..{DEGRADE_LEVELS - 1}, got {level}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    step, options = LADDER[level]
    return list(range(0, max_frames, step)), options


def decode_threads(width: int, height: int, requested: int) -> int:
    """Decode threads for a picture size: large pictures get one, so memory stays bounded."""
    if width * height > LARGE_PICTURE_PIXELS:
        return 1
    return max(1, requested)
