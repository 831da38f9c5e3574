"""Which frames of a video stream decode: one demux pass, no decoding (libav).

The plan is made on this list rather than on the times an index or a header promise:
packets the demuxer drops for an edit list (``is_discard``), corrupt or empty packets,
and packets before the first keyframe (nothing can show them) are not frames. Times
are the packets' own presentation times; a raw elementary stream has none, so its
frame ``n`` is at ``n / fps`` from the start, as the decoder is read from the start.

What the index and the header claim is checked against this count (issue #23 item 11):
a frame count the index promises but the stream does not hold, and gaps far longer than
the stream's own frame spacing, become notes the job records in the upload's events.
"""

from __future__ import annotations

import contextlib
import logging
from array import array
from fractions import Fraction
from pathlib import Path

from core.errors import InputError
from core.media.facts import RAW_FORMATS, ProbeResult
from core.media.plan import FrameIndex

logger = logging.getLogger(__name__)

DEFAULT_RAW_FPS = 25
"""Frame rate assumed for a raw stream whose header names none (frame times only)."""
GAP_NOTE_S = 60.0
"""A gap between two frames this long (and 100x the usual spacing) is noted."""
_MAX_BAD_PACKETS = 1000


def raw_tick(facts: ProbeResult, time_base: Fraction) -> Fraction:
    """One frame's length in ``time_base`` units for a stream without times."""
    fps = Fraction(facts.fps).limit_denominator(100000) if facts.fps else Fraction(DEFAULT_RAW_FPS)
    return 1 / (fps * time_base)


def scan(video: Path, facts: ProbeResult, *, name: str, upload_id: int | None = None) -> FrameIndex:
    """The frames of ``video``'s stream that decode, read in one demux pass."""
    import av

    from core.media.probing import open_container, open_reason, video_stream

    try:
        container = open_container(video)
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"{name}: {open_reason(video, exc)}", upload_id=upload_id) from None
    with container:
        stream = video_stream(container)
        if stream is None:
            raise InputError(f"{name}: has no video stream", upload_id=upload_id)
        time_base = stream.time_base or Fraction(1, 1000)
        key_positions = _header_keyframes(video, container, stream)
        with video.skipping_data() if key_positions is not None else contextlib.nullcontext():
            pts, keys, timeless, dropped = _read(container, stream, name, upload_id,
                                                 key_positions)
    seekable = bool(pts) and not timeless
    if timeless:  # raw elementary stream: frame n at n ticks, keyframes by decode order
        tick = raw_tick(facts, time_base)
        pts = array("q", (round(n * tick) for n in range(timeless)))
        keys = {round(n * tick) for n in keys}
    if not pts:
        raise InputError(f"{name}: no frame could be decoded (corrupt or truncated?)",
                         upload_id=upload_id)
    ordered = array("q", sorted(set(pts)))
    index = FrameIndex(pts=ordered, keys=frozenset(keys), time_base=time_base,
                       start=facts.start, seekable=seekable)
    notes = _sanity(index, facts, dropped)
    if notes:
        object.__setattr__(index, "notes", tuple(notes))
        for note in notes:
            logger.info("upload %s: %s: %s", upload_id, name, note)
    return index


def _header_keyframes(video, container, stream) -> frozenset[int] | None:
    """For a video read by range (S3) whose packet table is all in its header (an MP4 or
    MOV indexing every frame), the byte positions of its keyframes: the demux pass then
    reads no packet bytes (the reader hands libav zeros, so the pass downloads nothing)
    and takes keyframes from the index, as zeros show none. ``None``: read for real."""
    if getattr(video, "skipping_data", None) is None \
            or not container.format.name.startswith("mov,") or not stream.frames:
        return None
    entries = stream.index_entries
    if len(entries) < stream.frames:  # fragments: their tables are between the data
        return None
    return frozenset(entry.pos for entry in entries if entry.is_keyframe)


def _read(container, stream, name: str, upload_id: int | None,
          key_positions: frozenset[int] | None = None):
    """Packet times and keyframes; for a stream without times, the count instead."""
    import av

    pts: array = array("q")
    keys: set[int] = set()
    timeless = dropped = bad = 0
    started = False
    # A raw elementary stream's parser guesses times (raw MPEG video skips one at the
    # start): its frames are counted instead, as the decoder reads them from the start.
    raw = container.format.name in RAW_FORMATS
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            key = packet.is_keyframe if key_positions is None else packet.pos in key_positions
            started = started or key  # an edit list may hide the keyframe
            if packet.is_corrupt or packet.is_discard or not started:
                dropped += 1
                continue
            if raw or packet.pts is None:
                if raw or packet.dts is None:
                    if key:
                        keys.add(timeless)
                    timeless += 1
                    continue
                value = packet.dts
            else:
                value = packet.pts
            pts.append(value)
            if key:
                keys.add(value)
    except av.error.InvalidDataError:
        bad += 1
    except av.error.FFmpegError as exc:  # a cut file: the frames before the cut count
        logger.info("upload %s: %s: demuxing stopped (%s)", upload_id, name,
                    getattr(exc, "strerror", None) or type(exc).__name__)
    if bad > _MAX_BAD_PACKETS:
        raise InputError(f"{name}: too many unreadable packets (corrupt?)", upload_id=upload_id)
    if pts and timeless:  # a few packets without times in a timed stream: not frames
        timeless = 0
    return pts, keys, timeless, dropped


def _sanity(index: FrameIndex, facts: ProbeResult, dropped: int) -> list[str]:
    """What the index and header claim that the stream does not hold."""
    notes = []
    count = len(index)
    if facts.frames and facts.frames > count:
        notes.append(f"the index promises {facts.frames} frames, {count} are in the stream"
                     + (f" ({dropped} hidden by an edit list or unreadable)" if dropped else ""))
    if count > 2:
        gaps = sorted(b - a for a, b in zip(index.pts, index.pts[1:], strict=False))
        usual = gaps[len(gaps) // 2]
        widest = gaps[-1]
        if widest * index.time_base > GAP_NOTE_S and widest > 100 * usual:
            notes.append(f"a gap of {float(widest * index.time_base):.0f} s between two frames "
                         f"(usual spacing {float(usual * index.time_base) * 1000:.0f} ms)")
    return notes
