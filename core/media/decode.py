"""Exact, distinct frames through PyAV: the plan resolved to frames, then one decode walk.

One container and one decoder per video (:class:`PyAVSource`). :meth:`PyAVSource.plan`
reads which frames decode (:mod:`core.media.index`) and gives each slot its own frame.
:meth:`PyAVSource.take` walks to them in order: for each it either reads on from where
the decoder is or restarts at the frame's keyframe, whichever decodes fewer frames
(:func:`core.media.plan.seek_pays`), so close frames and short clips are decoded straight
through and far ones are reached by a seek. After a seek nothing is shown until a
keyframe has been decoded, and frames the decoder flags corrupt are never shown.

:meth:`PyAVSource.decoded` is the decode loop itself, a generator of
:class:`DecodedFrame` (frame, pts, time, keyframe flag) from a keyframe on: a selection
policy can read a whole slice through it.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.errors import InputError, JobTimeoutError, StorageError
from core.media.facts import ProbeResult
from core.media.ladder import LARGE_PICTURE_PIXELS, configure_decoder
from core.media.plan import (
    SEEK_COST_FRAMES,
    ExtractedFrame,
    ExtractOptions,
    FrameIndex,
    SlotResult,
    seek_pays,
)
from core.media.selection import COVERAGE, SHARPEST, window

logger = logging.getLogger(__name__)

_MAX_BAD_PACKETS = 50
MAX_CANDIDATES = 5
"""``sharpest`` scores at most this many frames per slot, the last ones decoded before the
slot's frame: scoring a 1080p frame costs about a quarter of decoding it (bench/selection.py)."""
FOCUS_TIE = 0.05
"""``sharpest``: a frame this close (as a share) to the sharpest seen counts as as sharp."""
HEARTBEAT_S = 2.0
"""While reading on towards a frame, ``take``'s heartbeat is called at most this often."""
_FRAMES_PER_TIMEOUT = 2400
"""Frames read on the way to a wanted one that earn another ``timeout`` (120 s at 20 fps,
a slow 4K decode)."""
_SEEK_RETRIES = 3
"""Earlier keyframes tried when a seek lands after the wanted frame (MPEG-TS/PS seek by
byte position and can overshoot) before reading from the start."""


@dataclass
class DecodedFrame:
    """One decoded frame: libav's frame, its pts, its time in seconds, a keyframe or not."""

    frame: object
    pts: int
    time: float
    key: bool
    focus: float | None = None   # scored only when a selection policy compares frames
    candidates: int = 0          # frames it was chosen among (``sharpest``)
    image: Any = None            # its finished picture, made early (:meth:`PyAVSource._keep`)


class PyAVExtractor:
    """Opens videos with PyAV (libav is loaded on the first ``open``)."""

    def __init__(self, *, timeout: float = 120.0, upload_id: int | None = None,
                 seek_cost: int | None = None) -> None:
        self.timeout = timeout
        self.upload_id = upload_id
        self.seek_cost = seek_cost

    def open(self, video: Path, facts: ProbeResult, options: ExtractOptions, *,
             name: str | None = None) -> PyAVSource:
        video = video if hasattr(video, "read") else Path(video)  # a file read by range
        return PyAVSource(video, facts, options, timeout=self.timeout,
                          upload_id=self.upload_id, name=name, seek_cost=self.seek_cost)


class PyAVSource:
    """One opened video; see :class:`core.media.plan.FrameSource` for the contract."""

    def __init__(self, video: Path, facts: ProbeResult, options: ExtractOptions, *,
                 timeout: float = 120.0, upload_id: int | None = None,
                 name: str | None = None, seek_cost: int | None = None) -> None:
        from core.media.picture import Picture

        self.name = name or getattr(video, "name", "video")  # never a path in messages
        self.video, self.facts, self.options = video, facts, options
        self.timeout, self.upload_id = timeout, upload_id
        # A seek's cost in decoded frames: fixed when given (0 seeks whenever a keyframe is
        # nearer), else measured on this video as it is read (:meth:`seek_cost`).
        self._fixed_seek_cost = seek_cost
        self._frame_s: float | None = None   # seconds per frame read on (running average)
        self._seek_s: float | None = None    # seconds per restart, beyond its first frame
        self._heartbeat: Callable[[int], None] | None = None
        self._beat = time.monotonic()
        self.heartbeat_s = HEARTBEAT_S
        self.picture = Picture(facts, options.max_width)
        self.container = None
        self._index: FrameIndex | None = None
        self._planned: list[int] = []
        self._windows: list[tuple[float, float]] = []
        self._coverage_note = ""
        self._run: Iterator[DecodedFrame] | None = None
        self._pending: DecodedFrame | None = None
        self._position: int | None = None
        self.decoded_count = 0   # frames the decoder gave (the cost of the walk)
        self.restarts = 0        # seeks or reopenings
        self._open()

    # ------------------------------------------------------------------ lifecycle
    def _open(self) -> None:
        import av

        from core.media.probing import open_container, open_reason, unsupported_codec, video_stream

        if self.container is not None:
            self.container.close()
        try:
            self.container = open_container(self.video)
        except (av.error.FFmpegError, OSError) as exc:
            raise self._input_error(open_reason(self.video, exc)) from None
        self.stream = video_stream(self.container)
        if self.stream is None:
            raise self._input_error("has no video stream")
        if self.stream.codec_context is None:
            raise self._input_error(unsupported_codec(self.video))
        context = self.stream.codec_context
        configure_decoder(context, self.facts.coded_width or self.stream.width,
                          self.facts.coded_height or self.stream.height, self.options)
        self.time_base = self.stream.time_base or Fraction(1, 1000)
        self._fresh = True  # nothing read yet: a decode from the start needs no seek
        # AVI stores no presentation times: libav gives each packet its decode time plus
        # one, so with B-frames the decoder's output carries times out of order. Frames
        # come out in display order, one per decode step, so the output's decode time,
        # set against the first keyframe's, is the display time.
        self._times_by_dts = self.container.format.name == "avi"

    def close(self) -> None:
        self._run = None
        if self.container is not None:
            self.container.close()
            self.container = None

    def __enter__(self) -> PyAVSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plan
    @property
    def index(self) -> FrameIndex:
        """The frames that decode (one demux pass, made once)."""
        if self._index is None:
            from core.media.index import scan

            self._index = scan(self.video, self.facts, name=self.name, upload_id=self.upload_id)
        return self._index

    def plan(self, count: int) -> list[float]:
        index = self.index
        if self.options.selection == COVERAGE and len(index) > count:
            self._planned = self._coverage_plan(count)
        else:
            self._planned = index.plan(count)
        times = [index.seconds(p) for p in self._planned]
        # ``sharpest`` may take any decoded frame up to half a slice before its target.
        self._windows = [window(times, i, index.span()) for i in range(len(times))]
        return times

    def _coverage_plan(self, count: int) -> list[int]:
        """Slots shared out by picture change (a keyframe-only pass, then the plan)."""
        from core.media.scan import coverage_plan

        planned, self._coverage_note = coverage_plan(
            self.video, self.facts, self.index, count, timeout=self.timeout,
            upload_id=self.upload_id, name=self.name)
        return planned

    # ------------------------------------------------------------------ frames
    def take(self, slots: Sequence[int], dest_for: Callable[[int], Path], *,
             taken: Collection[float] = (),
             heartbeat: Callable[[int], None] | None = None) -> Iterator[SlotResult]:
        index = self.index
        self._heartbeat = heartbeat
        slots = sorted(s for s in set(slots) if s < len(self._planned))
        taken_pts = {self._pts_of(t) for t in taken}
        wanted: list[int | None] = [self._planned[s] for s in slots]
        if self.options.keyframes_only:
            wanted = index.nearest_keys([w for w in wanted if w is not None], taken_pts)
        sharpest = self.options.selection == SHARPEST and not self.options.keyframes_only
        for slot, target in zip(slots, wanted, strict=True):
            if target is None:
                yield SlotResult(slot, None, "no keyframe left for this slot")
                continue
            later = {w for w in wanted if w is not None and w > target}
            earliest = None
            if sharpest:
                earliest = self._pts_at(self._windows[slot][0], above=True)
            decoded = self._walk_to(target, taken_pts | later, earliest=earliest)
            if decoded is None:
                yield SlotResult(slot, None, f"the frame at {index.seconds(target):.3f} s did "
                                 "not decode and no frame near it was left")
                continue
            taken_pts.add(decoded.pts)
            result = SlotResult(slot, self._write(decoded, dest_for(slot),
                                                  self._reason(decoded, target)))
            # The written frame is let go before the next walk: held, it would keep one
            # more picture (12 MB at 4K) out of the decoder's pool all the way to the next.
            del decoded
            yield result

    def extract(self, timestamp: float, dest: Path) -> ExtractedFrame:
        index = self.index
        at = bisect.bisect_right(index.times(), index.start + max(0.0, timestamp) + 1e-9)
        target = index.pts[max(at - 1, 0)]
        if self.options.keyframes_only:
            target = index.keyframe_before(target)
        decoded = self._walk_to(target, set())
        if decoded is None:
            raise self._input_error(f"no frame at or before {timestamp:.3f} s",
                                    timestamp=timestamp)
        return self._write(decoded, Path(dest))

    def _walk_to(self, target: int, unavailable: set[int], *,
                 earliest: int | None = None) -> DecodedFrame | None:
        """The decoded frame at ``target``; if it never comes, the nearest available one.

        With ``earliest`` (``sharpest``), the last ``MAX_CANDIDATES`` frames decoded on the
        way from ``earliest`` to ``target`` are scored and the sharpest is taken: no frame
        is decoded for it that the walk would not decode anyway, and only the best so far
        is held: as the decoder's own picture while it is the latest frame (the decoder
        keeps that one as a reference anyway), as its finished image once a later frame
        came (:meth:`_keep`), so it never costs the decoder a picture more.
        """
        if seek_pays(self.index, self._position, target, keys_only=self.options.keyframes_only,
                     seek_cost=self.seek_cost()):
            self._restart(target)
        # ``timeout`` for one frame, once more for every few thousand frames read on the
        # way (a raw stream is read from its start: thousands of frames between slots).
        start = self._position if self._position is not None else -2**62
        on_the_way = self.index.frames_between(start, target)
        deadline = time.monotonic() + self.timeout * (1 + on_the_way / _FRAMES_PER_TIMEOUT)
        before = best = decoded = None
        seen, sharpest = 0, 0.0
        while True:
            began = time.monotonic()
            if best is not None and best is not decoded:
                self._keep(best)
            decoded = None  # let the last frame go before the decoder makes the next one
            decoded = self._pending or self._timed_next(began)
            self._pending = None
            if decoded is None:
                break
            self._position = decoded.pts
            if earliest is not None and earliest <= decoded.pts <= target \
                    and decoded.pts not in unavailable \
                    and self.index.frames_between(decoded.pts, target) < MAX_CANDIDATES:
                decoded.focus = self._focus(decoded)
                seen, sharpest = seen + 1, max(sharpest, decoded.focus)
                # Within FOCUS_TIE of the sharpest so far counts as as sharp: the frame
                # nearer the slice's middle wins (a steady shot keeps the even plan).
                if decoded.focus >= sharpest * (1 - FOCUS_TIE):
                    best = decoded
                best.candidates = seen
            if decoded.pts < target:
                # The fallback, should ``target`` never come; not needed (nor held) once a
                # sharper candidate is, since that one is taken then.
                before = decoded if best is None else None
            elif decoded.pts == target:
                return best or decoded
            else:
                self._pending = decoded  # the next slot may want it
                break
            if time.monotonic() > deadline:
                raise JobTimeoutError(
                    f"{self.name}: decoding took longer than {self.timeout:g} s for one frame",
                    upload_id=self.upload_id, timeout=self.timeout)
        if best is not None:
            return best
        candidates = [d for d in (before, self._pending)
                      if d is not None and d.pts not in unavailable]
        if not candidates:
            return None
        logger.info("upload %s: %s: the frame at %.3f s did not decode; nearest taken",
                    self.upload_id, self.name, self.index.seconds(target))
        return min(candidates, key=lambda d: abs(d.pts - target))

    def _restart(self, target: int) -> None:
        """Start a decode whose first shown frame is at or before ``target``."""
        index = self.index
        keys = index.sorted_keys
        at = bisect.bisect_right(keys, target) - 1
        self._run = self._pending = None  # the old walk's frames go back to the decoder
        for attempt in range(_SEEK_RETRIES + 1):
            key = keys[at - attempt] if at - attempt > 0 else None
            if key is None or not index.seekable:
                break
            self.restarts += 1
            began = time.monotonic()
            run = self.decoded(key)
            first = next(run, None)
            self._measure_seek(time.monotonic() - began)
            if first is not None and first.pts <= target:
                self._run, self._pending, self._position = run, first, None
                return
        self.restarts += 1
        self._run, self._pending, self._position = self.decoded(None), None, None

    def seek_cost(self) -> int:
        """What a restart costs in decoded frames: measured on this video once both a
        restart and reading on have been timed, else :data:`SEEK_COST_FRAMES`."""
        if self._fixed_seek_cost is not None:
            return self._fixed_seek_cost
        if self._frame_s and self._seek_s is not None:
            return max(1, min(1000, round(self._seek_s / self._frame_s)))
        return SEEK_COST_FRAMES

    def _timed_next(self, began: float) -> DecodedFrame | None:
        decoded = next(self._run, None)
        if decoded is not None:
            now = time.monotonic()
            spent = now - began
            self._frame_s = spent if self._frame_s is None else 0.8 * self._frame_s + 0.2 * spent
            if self._heartbeat is not None and now - self._beat >= self.heartbeat_s:
                self._beat = now
                self._heartbeat(self.decoded_count)  # a long read on between two frames
        return decoded

    def _measure_seek(self, spent: float) -> None:
        beyond = max(0.0, spent - (self._frame_s or 0.0))  # the first frame is a decode too
        self._seek_s = beyond if self._seek_s is None else 0.5 * (self._seek_s + beyond)

    def decoded(self, key: int | None) -> Iterator[DecodedFrame]:
        """Decoded frames from the keyframe at ``key`` (``None``: the stream's start) on.

        Nothing is given before a keyframe has been decoded, nor any frame the decoder
        flags corrupt; frames without a time are skipped (raw streams get theirs from
        their place, counted from the start).
        """
        import av

        if key is None:
            if not self._fresh:
                self._open()
        elif not self._seek(key):
            self._open()
            key = None
        self._fresh = False
        index = self.index
        tick = None if index.seekable else self._raw_tick()
        counted = bad = 0
        dts_offset = None
        started = False
        key_fed = None  # the first keyframe packet given to the decoder (its pts)
        try:
            for packet in self.container.demux(self.stream):
                if key_fed is None and packet.is_keyframe:
                    key_fed = packet.pts if packet.pts is not None else packet.dts
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    bad += 1
                    if bad > _MAX_BAD_PACKETS:
                        raise self._input_error("too many undecodable packets (corrupt?)") from None
                    continue
                while frames:
                    # Popped, and let go once the caller asks for the next: a frame held
                    # here while the decoder makes the next would cost it one picture more.
                    frame = frames.pop(0)
                    # After a seek, nothing before the keyframe: a frame decoded from
                    # there on (an edit list may hide the keyframe itself) or a keyframe.
                    started = started or frame.key_frame or (
                        key_fed is not None and frame.pts is not None and frame.pts >= key_fed)
                    if not started:
                        continue
                    pts = frame.pts
                    if tick is not None:
                        pts, counted = round(counted * tick), counted + 1
                    elif self._times_by_dts and frame.dts is not None and pts is not None:
                        if dts_offset is None:  # the first frame shown: a keyframe, true time
                            dts_offset = frame.dts - pts
                        pts = frame.dts - dts_offset
                    if pts is None or frame.is_corrupt:
                        continue
                    self.decoded_count += 1
                    yield DecodedFrame(frame, pts, index.seconds(pts), bool(frame.key_frame))
                    frame = None
        except av.error.FFmpegError as exc:
            if not started:
                raise self._input_error(f"libav could not decode the video ({_reason(exc)})") from None
            logger.info("upload %s: %s: decoding stopped (%s)", self.upload_id, self.name,
                        _reason(exc))

    def _raw_tick(self) -> Fraction:
        from core.media.index import raw_tick

        return raw_tick(self.facts, self.time_base)

    def _seek(self, pts: int) -> bool:
        import av

        try:
            self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            logger.info("upload %s: seek failed in %s: %s", self.upload_id, self.name, _reason(exc))
            return False
        return True

    def _pts_of(self, seconds: float) -> int:
        """The indexed frame nearest ``seconds`` (a recorded timestamp)."""
        index = self.index
        times = index.times()
        at = bisect.bisect_left(times, index.start + seconds)
        near = [i for i in (at - 1, at) if 0 <= i < len(times)]
        return index.pts[min(near, key=lambda i: abs(times[i] - index.start - seconds))]

    def _pts_at(self, seconds: float, *, above: bool) -> int:
        """The first indexed frame at or after ``seconds`` (from the video's first frame)."""
        index = self.index
        at = bisect.bisect_left(index.times(), index.start + seconds - 1e-9)
        return index.pts[min(at, len(index.pts) - 1)] if above else index.pts[max(at - 1, 0)]

    def _keep(self, decoded: DecodedFrame) -> None:
        """Hold a frame that waits to be written as its image rather than the decoder's
        picture, where that picture is large (4K: 12 MB against 2.7 MB at 1280 wide)."""
        if decoded.image is None and decoded.frame.width * decoded.frame.height \
                > LARGE_PICTURE_PIXELS:
            decoded.image = self.picture.image(decoded.frame)
            decoded.frame = None

    @staticmethod
    def _focus(decoded: DecodedFrame) -> float:
        from core.media.scan import frame_focus

        return frame_focus(decoded.frame)

    def _reason(self, decoded: DecodedFrame, target: int) -> str:
        if self.options.keyframes_only:
            return "keyframe nearest the slot (keyframes-only level)"
        if decoded.candidates:
            return f"sharpest of {decoded.candidates} decoded frames in the slice"
        if decoded.pts != target:
            return "nearest frame that decoded"
        if self.options.selection == COVERAGE:
            return self._coverage_note or "placed by picture change"
        return "middle of the slice"

    def _write(self, decoded: DecodedFrame, dest: Path, reason: str = "") -> ExtractedFrame:
        image = decoded.image or self.picture.image(decoded.frame)
        focus = decoded.focus if decoded.focus is not None else self._focus(decoded)
        part = dest.with_name(dest.name + ".part")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            image.save(part, "JPEG", quality=self.options.pillow_quality)
            os.replace(part, dest)
        except OSError as exc:
            raise StorageError(f"{dest.parent}: could not write a frame ({exc.strerror})",
                               upload_id=self.upload_id, transient=True) from None
        finally:
            part.unlink(missing_ok=True)
        return ExtractedFrame(
            path=dest, timestamp=decoded.time, width=image.width, height=image.height,
            number=self.index.number(decoded.pts),
            source_time=round(float(decoded.pts * self.time_base), 6), keyframe=decoded.key,
            focus=focus, reason=reason)

    def _input_error(self, reason: str, **evidence: object) -> InputError:
        return InputError(f"{self.name}: {reason}", upload_id=self.upload_id, **evidence)


def _reason(exc: Exception) -> str:
    """libav's reason without the file name it quotes (a scratch path)."""
    return str(getattr(exc, "strerror", None) or type(exc).__name__)
