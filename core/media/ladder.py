"""The degrade ladder: what each level gives up so that a job needs less memory.

A memory kill retries the job one level down (:mod:`core.jobs.settle`). Level 0 is full
quality; each level after it takes every n-th frame of the full plan (so frames recorded
at a lower level stay valid) and bounds what the decoder holds, per decoder
(:func:`decoder_setup`): its thread count and type (each frame thread holds pictures of
its own), for dav1d its own frame delay and thread pool (it ignores libavcodec's frame
threads), a smaller output picture, and at the last level keyframes only. What each
level costs per codec is measured by ``python -m bench.ladder``. No libav here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


DAV1D = "libdav1d"
HEVC = "hevc"


@dataclass(frozen=True)
class DecoderSetup:
    """What the ladder asks of one decoder: libavcodec's threads, the decoder's own
    options (``codec_context.options``) and whether only keyframes are decoded."""

    thread_count: int
    thread_type: str
    options: tuple[tuple[str, str], ...] = ()
    keyframes_only: bool = False


def decoder_setup(decoder: str, width: int, height: int, options: ExtractOptions, *,
                  slice_parallel: bool = False) -> DecoderSetup:
    """The setup for ``decoder`` (libavcodec's name: h264, hevc, vp9, libdav1d, ...).

    ``slice_parallel``: an HEVC stream coded with wavefronts or tiles
    (:func:`core.media.hevc.slice_parallel`). Its threads work within one picture and hold
    none of their own, so it gets the level's threads at any size, as slice threads:
    at level 0 leaner than frame threads and faster (measured on 10-bit HLG: 1080p 104 MB
    and 1.0 s against 107 MB and 1.1 s; 4K 3.0 s against 5.0 s on one thread, the same
    258 MB).
    """
    if decoder == HEVC and slice_parallel:
        return DecoderSetup(max(1, options.threads), "SLICE", (), options.keyframes_only)
    threads = decode_threads(width, height, options.threads)
    own: tuple[tuple[str, str], ...] = ()
    if decoder == DAV1D:
        # dav1d runs its own pool; the frame delay is how many frames it keeps in flight,
        # each with its pictures.
        own = (("threads", str(threads)), ("max_frame_delay", str(threads)))
    return DecoderSetup(threads, "AUTO" if threads > 1 else "SLICE", own,
                        options.keyframes_only)


def configure_decoder(context: Any, width: int, height: int,
                      options: ExtractOptions) -> DecoderSetup:
    """Apply the ladder to a PyAV codec context before its first decode."""
    parallel = False
    if context.codec.name == HEVC:
        from core.media.hevc import slice_parallel

        parallel = slice_parallel(context.extradata)
    setup = decoder_setup(context.codec.name, width, height, options, slice_parallel=parallel)
    context.thread_count = setup.thread_count
    context.thread_type = setup.thread_type
    if setup.options:
        context.options = {**context.options, **dict(setup.options)}
    if setup.keyframes_only:
        context.skip_frame = "NONKEY"
    return setup
