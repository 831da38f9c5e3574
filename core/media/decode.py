"""Exact frames through PyAV: seek back to a keyframe, decode forward to the wanted time.

One container and one decoder per video (:class:`PyAVSource`); frames are asked for in
increasing time order. The frame for a time is the last one shown at or before it; a
time past the last frame gets the last frame. When a seek lands after the wanted time
(MPEG-TS/PS seek by byte position and can overshoot), it seeks further back, then as a
last resort decodes from the start, bounded by :data:`MAX_FALLBACK_FRAMES`. The recorded
timestamp is always the frame's own.
"""

from __future__ import annotations

import logging
import os
import time
from fractions import Fraction
from pathlib import Path

from core.errors import InputError, JobTimeoutError, StorageError
from core.media.facts import ProbeResult
from core.media.ladder import decode_threads
from core.media.plan import ExtractedFrame, ExtractOptions

logger = logging.getLogger(__name__)

MAX_FALLBACK_FRAMES = 20_000
"""Frames a decode-from-the-start may go through before the slot is given up."""
_BACKOFFS_S = (1.0, 5.0, 30.0)
_MAX_BAD_PACKETS = 50


class PyAVExtractor:
    """Opens videos with PyAV (libav is loaded on the first ``open``)."""

    def __init__(self, *, timeout: float = 120.0, upload_id: int | None = None) -> None:
        self.timeout = timeout
        self.upload_id = upload_id

    def open(self, video: Path, facts: ProbeResult, options: ExtractOptions, *,
             name: str | None = None) -> PyAVSource:
        video = video if hasattr(video, "read") else Path(video)  # a file read by range
        return PyAVSource(video, facts, options, timeout=self.timeout,
                          upload_id=self.upload_id, name=name)


class PyAVSource:
    """One opened video; see :class:`core.media.plan.FrameSource` for the contract."""

    def __init__(self, video: Path, facts: ProbeResult, options: ExtractOptions, *,
                 timeout: float = 120.0, upload_id: int | None = None,
                 name: str | None = None) -> None:
        from core.media.picture import Picture

        self.name = name or getattr(video, "name", "video")  # never a path in messages
        self.video, self.facts, self.options = video, facts, options
        self.timeout, self.upload_id = timeout, upload_id
        self.picture = Picture(facts, options.max_width)
        self.container = None
        self._open()

    # ------------------------------------------------------------------ lifecycle
    def _open(self) -> None:
        import av

        from core.media.probe import open_container, video_stream

        if self.container is not None:
            self.container.close()
        try:
            self.container = open_container(self.video)
        except (av.error.FFmpegError, OSError) as exc:
            raise self._input_error(f"libav could not open the video ({_reason(exc)})") from None
        self.stream = video_stream(self.container)
        if self.stream is None:
            raise self._input_error("has no video stream")
        context = self.stream.codec_context
        threads = decode_threads(self.facts.coded_width or self.stream.width,
                                 self.facts.coded_height or self.stream.height,
                                 self.options.threads)
        context.thread_count = threads
        context.thread_type = "AUTO" if threads > 1 else "SLICE"
        if self.options.keyframes_only:
            context.skip_frame = "NONKEY"
        self.time_base = self.stream.time_base or Fraction(1, 1000)
        # Raw elementary streams carry no times: from the start, frame n is at n / fps.
        self._decoded_from_start = 0
        self._tick = (1 / (Fraction(self.facts.fps).limit_denominator(100000) * self.time_base)
                      if self.facts.fps else None)

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    def __enter__(self) -> PyAVSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ frames
    def extract(self, timestamp: float, dest: Path) -> ExtractedFrame:
        dest = Path(dest)
        frame = self._frame_at(max(0.0, timestamp))
        image = self.picture.image(frame)
        seconds = round(float(frame.pts * self.time_base) - self.facts.start, 6)
        if -1e-3 < seconds <= 0:  # the recorded start is rounded to the microsecond
            seconds = 0.0
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
        if abs(seconds - timestamp) > 1.0:
            logger.info("upload %s: frame for %.3f s is from %.3f s", self.upload_id,
                        timestamp, seconds)
        return ExtractedFrame(path=dest, timestamp=seconds, width=image.width,
                              height=image.height)

    def _frame_at(self, timestamp: float):
        target = int((self.facts.start + timestamp) / self.time_base)
        deadline = time.monotonic() + self.timeout
        for back in (0.0, *_BACKOFFS_S):
            seek_to = target - int(back / self.time_base)
            if not self._seek(seek_to):
                break
            frame, _ = self._decode_to(target, deadline, limit=None)
            if frame is not None:
                return frame
        logger.warning("upload %s: seeking gave no frame at or before %.3f s of %s; "
                       "decoding from the start", self.upload_id, timestamp, self.name)
        self._open()
        frame, _ = self._decode_to(target, deadline, limit=MAX_FALLBACK_FRAMES)
        if frame is None:
            raise self._input_error(f"no frame at or before {timestamp:.3f} s", timestamp=timestamp)
        return frame

    def _seek(self, pts: int) -> bool:
        import av

        try:
            self.container.seek(max(pts, 0) if pts < 0 else pts, stream=self.stream,
                                backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            logger.info("upload %s: seek failed in %s: %s", self.upload_id, self.name, _reason(exc))
            return False
        return True

    def _decode_to(self, target: int, deadline: float, *, limit: int | None):
        """The last frame at or before ``target``, and whether a later frame came first."""
        import av

        best = None
        decoded = bad = 0
        from_start = limit is not None
        try:
            for packet in self.container.demux(self.stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    bad += 1
                    if bad > _MAX_BAD_PACKETS:
                        raise self._input_error("too many undecodable packets (corrupt?)") from None
                    continue
                for frame in frames:
                    if frame.pts is None and from_start and self._tick:
                        frame.pts = round(self._decoded_from_start * self._tick)
                    self._decoded_from_start += 1
                    if frame.pts is None:
                        continue
                    decoded += 1
                    if frame.pts > target:
                        return best, best is None
                    best = frame
                    if frame.duration and frame.pts + frame.duration > target:
                        return best, False  # the next frame starts after the target
                if time.monotonic() > deadline:
                    raise JobTimeoutError(
                        f"{self.name}: decoding took longer than {self.timeout:g} s "
                        "for one frame", upload_id=self.upload_id, timeout=self.timeout)
                if limit is not None and decoded > limit:
                    break
        except av.error.FFmpegError as exc:
            if best is None:
                raise self._input_error(f"libav could not decode the video ({_reason(exc)})") from None
        return best, False

    def _input_error(self, reason: str, **evidence: object) -> InputError:
        return InputError(f"{self.name}: {reason}", upload_id=self.upload_id, **evidence)


def _reason(exc: Exception) -> str:
    """libav's reason without the file name it quotes (a scratch path)."""
    return str(getattr(exc, "strerror", None) or type(exc).__name__)
