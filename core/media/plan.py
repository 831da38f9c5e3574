"""Which frames to take, with which knobs, and the contract of an extractor (no libav).

The plan is by *frames*, not by times: ``count`` slots over the stream's own span, each
resolved to a frame that really decodes (:func:`resolve_slots`), so no frame is taken
twice and a video with fewer frames than slots gives fewer. The decode loop then walks
to those frames, seeking or decoding straight through, whichever costs fewer decoded
frames (:func:`seek_pays`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

from core.media.facts import ProbeResult
from core.media.selection import check_selection

SEEK_COST_FRAMES = 6
"""What one seek costs, in decoded frames (the demuxer's search, the decoder's flush and
refill), until the source has timed both a seek and reading on for the video at hand
(:meth:`core.media.decode.PyAVSource.seek_cost`)."""


def frame_times(duration: float | None, count: int) -> list[float]:
    """``count`` times at the middles of equal slices of ``duration``; one at 0 if unknown."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if not duration or duration <= 0:
        return [0.0]
    return [duration * (i + 0.5) / count for i in range(count)]


def plan_times(facts: ProbeResult, max_frames: int) -> list[float]:
    """The slot targets the probe's facts promise (before the frames are counted).

    Never more slots than the video has frames, so a one-frame clip gives one frame. The
    job resolves the targets to frames that decode (:meth:`FrameIndex.plan`), which can
    give fewer slots when the index promised frames that are not there.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    count = max_frames
    if facts.frames:
        count = min(count, max(1, facts.frames))
    return frame_times(facts.duration, count)


def resolve_slots(times: Sequence[float], targets: Sequence[float]) -> list[int]:
    """Positions in ``times`` (sorted, distinct) for each of ``targets`` (sorted).

    Each slot takes the frame nearest its target that no other slot has taken; the
    result is strictly increasing, so timestamps never repeat and stay in slot order.
    ``len(targets)`` must not exceed ``len(times)``.
    """
    total, count = len(times), len(targets)
    if count > total:
        raise ValueError(f"{count} slots for {total} frames")
    chosen: list[int] = []
    for target in targets:
        at = bisect.bisect_left(times, target)
        if at == total or (at > 0 and target - times[at - 1] <= times[at] - target):
            at -= 1
        chosen.append(at)
    for i in range(1, count):  # a slot whose frame is taken moves on to the next one...
        chosen[i] = max(chosen[i], chosen[i - 1] + 1)
    if count:  # ...and when that runs off the end, slots give way backwards
        chosen[-1] = min(chosen[-1], total - 1)
        for i in range(count - 2, -1, -1):
            chosen[i] = min(chosen[i], chosen[i + 1] - 1)
    return chosen


@dataclass(frozen=True)
class FrameIndex:
    """The frames of a video stream that decode, in presentation order.

    ``pts`` are the frames' own times in ``time_base`` units (sorted, distinct); ``keys``
    the subset that are keyframes (a decode may start there). ``start`` is the stream's
    first frame time in seconds on the file's clock, so a frame's time in the video is
    ``pts * time_base - start``. ``seekable`` is False for streams without times (raw
    elementary streams): those are read from the start only.
    """

    pts: Sequence[int]
    keys: frozenset[int]
    time_base: Fraction
    start: float
    seekable: bool = True
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.pts)

    def seconds(self, pts: int) -> float:
        """A frame's time in seconds from the video's first frame (microseconds)."""
        value = round(float(pts * self.time_base) - self.start, 6)
        return 0.0 if -1e-3 < value <= 0 else value

    def times(self) -> list[float]:
        """Each frame's time in seconds on the file's clock (made once)."""
        cached = self.__dict__.get("_times")
        if cached is None:
            cached = [float(p * self.time_base) for p in self.pts]
            object.__setattr__(self, "_times", cached)
        return cached

    def span(self) -> float:
        """First frame to the end of the last: the last plus the typical spacing."""
        if len(self.pts) < 2:
            return 0.0
        gaps = sorted(b - a for a, b in zip(self.pts, self.pts[1:], strict=False))
        step = gaps[len(gaps) // 2]
        return float((self.pts[-1] - self.pts[0] + step) * self.time_base)

    def plan(self, count: int) -> list[int]:
        """The frame (its pts) each of ``count`` slots takes; fewer when fewer frames decode.

        Slots are the middles of equal slices of the span from the first frame; with no
        more frames than slots, every frame once.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        if len(self.pts) <= count:
            return list(self.pts)
        first = float(self.pts[0] * self.time_base)
        times = self.times()
        targets = [first + t for t in frame_times(self.span(), count)]
        return [self.pts[i] for i in resolve_slots(times, targets)]

    def nearest_keys(self, wanted: Sequence[int], taken: Collection[int] = ()) -> list[int | None]:
        """For each of ``wanted`` (sorted pts), the nearest keyframe no other slot took.

        The keyframes-only level takes these instead of the planned frames; ``taken``
        holds frames recorded before (they are never taken again). ``None``: no keyframe
        is left for that slot.
        """
        gone = set(taken)
        keys = sorted(k for k in self.keys if k not in gone)
        if not keys:
            return [None] * len(wanted)
        if len(wanted) <= len(keys):
            tb = self.time_base
            chosen = resolve_slots([float(k * tb) for k in keys], [float(w * tb) for w in wanted])
            return [keys[i] for i in chosen]
        result: list[int | None] = [None] * len(wanted)
        for position, i in enumerate(resolve_slots([float(w) for w in wanted],
                                                   [float(k) for k in keys])):
            result[i] = keys[position]
        return result

    def keyframe_before(self, pts: int) -> int:
        """The last keyframe at or before ``pts`` (the first keyframe if none is)."""
        keys = self.sorted_keys
        at = bisect.bisect_right(keys, pts) - 1
        return keys[max(at, 0)]

    @property
    def sorted_keys(self) -> list[int]:
        cached = self.__dict__.get("_sorted_keys")
        if cached is None:
            cached = sorted(self.keys) or [self.pts[0]]
            object.__setattr__(self, "_sorted_keys", cached)
        return cached

    def variable_rate(self) -> bool:
        """Whether frame spacing varies (variable frame rate): the longest gap between
        neighbours is over 1.5x the shortest (a phone's slow motion, a recording gap)."""
        gaps = [b - a for a, b in zip(self.pts, self.pts[1:], strict=False)]
        return len(gaps) >= 2 and max(gaps) > 1.5 * max(1, min(gaps))

    def number(self, pts: int) -> int:
        """The frame's place in the stream (0 = the first frame that decodes)."""
        return bisect.bisect_left(self.pts, pts)

    def frames_between(self, after: int, upto: int) -> int:
        """How many frames have ``after`` < pts <= ``upto``."""
        return max(0, bisect.bisect_right(self.pts, upto) - bisect.bisect_right(self.pts, after))


def seek_pays(index: FrameIndex, position: int | None, target: int, *, keys_only: bool = False,
              seek_cost: int = SEEK_COST_FRAMES) -> bool:
    """Whether to (re)start decoding at ``target``'s keyframe rather than read on.

    ``position`` is the pts of the last frame the running decode gave (``None``: no
    decode is running). A decoder showing keyframes only (the ladder's last level, there
    to bound memory) always restarts where it can: the seek flushes the decoder, so the
    keyframe it showed last is not held as a reference while it decodes the next one.
    """
    if position is None or position >= target:
        return True  # nothing running, or the running decode has passed it
    if not index.seekable:
        return False
    if keys_only:
        return True
    key = index.keyframe_before(target)
    read_on = index.frames_between(position, target)
    after_seek = index.frames_between(key - 1, target) if key > position else read_on
    return after_seek + seek_cost < read_on


@dataclass(frozen=True)
class ExtractOptions:
    """How to decode frames; the knobs that bound memory."""

    max_width: int = 1280
    threads: int = 2
    keyframes_only: bool = False
    jpeg_quality: int = 3   # ffmpeg's -q:v scale (2 best .. 31 worst), mapped for Pillow
    selection: str = "even"  # which frame a slot takes: core.media.selection.SELECTIONS

    def __post_init__(self) -> None:
        if self.max_width < 2:
            raise ValueError(f"max_width must be at least 2, got {self.max_width}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if not 2 <= self.jpeg_quality <= 31:
            raise ValueError(f"jpeg_quality must be 2..31, got {self.jpeg_quality}")
        check_selection(self.selection)

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
    number: int | None = None         # the frame's place in the stream (0 = first shown)
    source_time: float | None = None  # its presentation time on the file's own clock, s
    keyframe: bool | None = None
    focus: float | None = None        # core.media.selection.focus_score
    reason: str = ""                  # why this frame: the selection policy's words


@dataclass(frozen=True)
class SlotResult:
    """What one slot gave: its frame, or ``None`` and why (``note``)."""

    slot: int
    frame: ExtractedFrame | None
    note: str = ""


class FrameSource(Protocol):
    """One opened video.

    ``plan(count)`` resolves ``count`` slots to frames that decode (fewer when the video
    has fewer) and returns each slot's frame time in seconds; ``take`` then writes the
    frames of the given slots, in slot order, yielding one ``SlotResult`` per slot. A
    slot whose frame turns out not to decode takes the nearest frame no slot has taken,
    or gives ``None`` with the reason. ``taken`` holds the times of frames recorded
    earlier (a resumed job), never taken again. ``heartbeat(decoded)`` is called every
    few seconds while a long stretch is decoded between two frames (a raw stream read from
    its start), so the job can show it moves. ``extract`` writes the frame shown at
    ``timestamp``: the last frame at or before it; past the last frame, the last frame.

    Every picture is as a person sees it: rotation and flips applied, square pixels, the
    stream's own colour matrix and range, HDR tone-mapped to SDR, at most
    ``options.max_width`` wide (never scaled up). An ``ExtractedFrame`` carries the
    frame's own timestamp, never the request; its file holds a complete JPEG or is not
    there. Problems with the video raise ``InputError``; running too long
    ``JobTimeoutError``.
    """

    def plan(self, count: int) -> list[float]: ...

    def take(self, slots: Sequence[int], dest_for: Callable[[int], Path], *,
             taken: Collection[float] = (),
             heartbeat: Callable[[int], None] | None = None) -> Iterator[SlotResult]: ...

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
