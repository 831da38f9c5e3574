"""Probe a video through libav's structures (PyAV): never from log text.

Only the demuxers in :data:`VIDEO_FORMATS` may open a file, and only through the
``file`` protocol: libav refuses any other demuxer right after recognising the data,
before its header is read, so a playlist never opens the files it names. Everything
recorded comes from fields (format name, stream rates and time bases, packet times,
the first decoded frame's display matrix and colour description), so no metadata value
or file name can change what is recorded.
"""

from __future__ import annotations

import errno
import logging
import os
import statistics
import struct
import tempfile
from fractions import Fraction
from pathlib import Path

import av

from core.errors import InputError
from core.media.boxes import describe_entry, index_state, opened, video_sample_entry
from core.media.facts import (
    PLAYLIST_FORMATS,
    RAW_FORMATS,
    STILL_BRANDS,
    VIDEO_FORMATS,
    ProbeResult,
)
from core.media.orientation import display_matrix, orientation

logger = logging.getLogger(__name__)

MIN_SIDE = 2
"""Pictures narrower or shorter than this carry nothing to inspect: refused at probe."""
MAX_SCAN_PACKETS = 2_000_000
"""Bound on the packet scan that measures a stream without an index."""
_FIRST_FRAME_PACKETS = 500
TAIL_CHECK_S = 2.0
"""How far before the indexed end the probe checks that the data is really there."""

_MATRICES = {0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
             7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
_RANGES = {0: "unknown", 1: "tv", 2: "pc"}
_PRIMARIES = {1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m",
              7: "smpte240m", 8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431",
              12: "smpte432", 22: "ebu3213"}
_TRANSFERS = {1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m",
              7: "smpte240m", 8: "linear", 11: "iec61966-2-4", 13: "iec61966-2-1",
              14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}

_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*", b"\x00\x00\x00\x0cjP",
                b"qoif", b"\xff\x0a")


def open_container(path) -> av.container.InputContainer:
    """Open ``path`` with only the ``file`` protocol and only video demuxers allowed.

    ``path`` may also be a seekable binary file (an S3 object read by range): libav reads
    it through PyAV, and a demuxer may open nothing else (no protocol is allowed).
    Raises ``av.FFmpegError`` subclasses; :func:`probe` turns them into ``InputError``.
    """
    formats = ",".join(VIDEO_FORMATS)
    if hasattr(path, "read"):
        if hasattr(path, "view"):  # one reader, several containers: each its own position
            path = path.view()
        path.seek(0)
        return av.open(path, container_options={"protocol_whitelist": "none",
                                                "format_whitelist": formats})
    url = "file:" + os.fspath(Path(path).absolute())
    return av.open(url, container_options={
        "protocol_whitelist": "file",
        "format_whitelist": formats,
    })


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first video stream that is not a cover picture."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _head(path: Path) -> bytes:
    try:
        with opened(path) as handle:
            handle.seek(0)
            return handle.read(512)
    except OSError:
        return b""


def _refusal(path: Path) -> str:
    """Why libav's whitelist refused ``path``, from its first bytes (for the message only)."""
    head = _head(path)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"#EXTM3U") or text.startswith(b"ffconcat") or b"<MPD" in head:
        return "is a playlist, not a video"
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "is a still image, not a video"
    return _NOT_ACCEPTED


_NOT_ACCEPTED = "is not a video container PeakOps accepts"


def _open_error(path: Path, exc: Exception) -> str:
    if isinstance(exc, av.error.ArgumentError | av.error.InvalidDataError):
        # The whitelist refuses other demuxers (at probing or right after): say what it was.
        refusal = _refusal(path)
        if isinstance(exc, av.error.ArgumentError) or refusal != _NOT_ACCEPTED:
            return refusal
    if isinstance(exc, av.error.PermissionError):
        return "cannot be read (permission denied)"
    if isinstance(exc, av.error.InvalidDataError):
        if _head(path)[4:8] == b"ftyp":  # an MP4 whose index (written last) never came
            return TRUNCATED_INDEX
        return "not a video file libav can read (unrecognised or corrupt data)"
    if isinstance(exc, av.error.FileNotFoundError | FileNotFoundError):
        return "file not found"
    if isinstance(exc, av.error.EOFError | EOFError):
        return "truncated: the file ends inside its header"
    if getattr(exc, "errno", None) == errno.EIO:  # Matroska/WebM's answer to the same cut
        return "truncated or corrupt: its header could not be read (input/output error)"
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return f"libav could not open the file ({reason})"


def unsupported_codec(path: Path) -> str:
    """The refusal for a video stream libav names no decoder for (its codec is "none")."""
    entry = video_sample_entry(path)
    what = describe_entry(entry) if entry else "the video stream's codec"
    return f"codec not supported: {what} cannot be decoded by this PeakOps's libav"


def open_reason(path: Path, exc: Exception) -> str:
    """Why libav could not open ``path``, in words (for the job's own opening too)."""
    if index_state(path) is not None:
        return TRUNCATED_INDEX
    return _open_error(path, exc)


def neutral_link(path: Path, folder: Path) -> Path:
    """A neutrally named link to ``path`` inside ``folder``: no user suffix sways the demuxer."""
    link = folder / "video"
    try:
        link.symlink_to(Path(path).absolute())
    except OSError:
        return Path(path)
    return link


def probe(path: Path, *, upload_id: int | None = None,
          memory_mb: int | None = None) -> ProbeResult:
    """Facts about the video at ``path``; ``InputError`` for anything unusable.

    ``memory_mb`` is the cap this process runs under (the probe child's): a picture too
    large to decode within it is then an ``InputError`` saying so. Without it the
    ``MemoryError`` is raised as it is (the job child retries at a degraded level).
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="peakops-probe-") as folder:
        return _probe(neutral_link(path, Path(folder)), path.name, upload_id, memory_mb)


TRUNCATED_INDEX = "truncated: the file's index is missing or cut"


def _probe(path: Path, name: str, upload_id: int | None, memory_mb: int | None) -> ProbeResult:
    def fail(reason: str, **evidence: object) -> InputError:
        return InputError(f"{name}: {reason}", upload_id=upload_id, **evidence)

    if not path.exists():
        raise fail("file not found")
    if path.stat().st_size == 0:
        raise fail("file is empty (0 bytes)")
    index = index_state(path)
    if index is not None:  # libav would say EOF, "no stream" or "no frame" instead
        raise fail(TRUNCATED_INDEX, index=index)
    try:
        container = open_container(path)
    except (av.error.FFmpegError, OSError) as exc:
        raise fail(open_reason(path, exc), libav_error=str(getattr(exc, "strerror", exc))) from None
    with container:
        fmt = container.format.name
        if not set(fmt.split(",")) <= set(VIDEO_FORMATS):  # the whitelist already holds
            reason = ("is a playlist, not a video" if fmt in PLAYLIST_FORMATS
                      else "is not a video container PeakOps accepts")
            raise fail(reason, container=fmt)
        brand = str(container.metadata.get("major_brand", "")).strip().lower()
        if brand in STILL_BRANDS:
            raise fail("is a still image, not a video", container=fmt, brand=brand)
        stream = video_stream(container)
        has_audio = bool(container.streams.audio)
        if stream is None:
            if has_audio:
                raise fail("has no video stream (audio only?)", container=fmt)
            raise fail("not a video (no video stream)", container=fmt)
        if stream.disposition & av.stream.Disposition.still_image:
            raise fail("is a still image, not a video", container=fmt)
        if stream.codec_context is None:  # libav has no decoder for it (codec "none")
            raise fail(unsupported_codec(path), container=fmt)
        try:
            return _facts(path, container, stream, fmt, has_audio, fail, memory_mb)
        except MemoryError:
            if memory_mb is None:
                raise
            size = _declared_size(path, stream, fmt)
            raise fail(too_large(size, memory_mb), container=fmt) from None


def _facts(path: Path, container, stream, fmt: str, has_audio: bool, fail,
           memory_mb: int | None = None) -> ProbeResult:
    tb = stream.time_base or Fraction(1, 1000)
    first = _first_frame(container, stream)
    if first is None:
        size = _declared_size(path, stream, fmt)
        if size and _beyond(size, memory_mb):  # libav refused the size before decoding
            raise fail(too_large(size, memory_mb), container=fmt)
        raise fail("no frame could be decoded (corrupt or truncated?)", container=fmt,
                   codec=stream.codec_context.name)
    width, height = first.width, first.height
    if width < MIN_SIDE or height < MIN_SIDE:
        raise fail(f"picture too small: {width}x{height}", container=fmt)
    raw = fmt in RAW_FORMATS
    start = float(first.pts * tb) if first.pts is not None and not raw else 0.0
    if stream.start_time is not None and not raw:
        start = min(start, float(stream.start_time * tb))
    matrix = display_matrix(first)
    rotation, flip = orientation(matrix)
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio or Fraction(1, 1)
    if sar <= 0:
        sar = Fraction(1, 1)
    display_w = max(1, round(width * sar)) if sar != 1 else width
    if rotation in (90, 270):
        display_w, display_h = height, display_w
    else:
        display_h = height

    rates = [r for r in (stream.average_rate, stream.guessed_rate) if r and r > 0]
    # A rate equal to the time base's tick (1000 fps for millisecond timestamps) is no rate.
    rates = [r for r in rates if not (tb and r == 1 / tb and r >= 240)]
    header_fps = float(rates[0]) if rates else None

    if stream.frames and stream.duration and fmt.startswith("mov"):
        # The samples the index holds, not what its time table declares (2^31-1 seen).
        frames, exact = min(int(stream.frames), len(stream.index_entries) or stream.frames), True
        end = float((stream.start_time or 0) * tb + stream.duration * tb)
        last = float(stream.start_time or 0) * float(tb) + float(stream.duration * tb)
        with open_container(path) as fresh:
            reached = _intact_until(fresh, video_stream(fresh), last)
        step = 1 / header_fps if header_fps else 0.1
        if reached is None or reached < last - 2 * step - 1e-6:
            where = "before its first frame" if reached is None else (
                f"at {max(0.0, reached - start):.1f} s of {max(0.0, last - start):.1f} s")
            raise fail(f"file is truncated or incomplete (its video data stops {where})",
                       container=fmt)
    else:
        with open_container(path) as fresh:  # from the start; raw streams cannot seek back
            frames, end = _scan(fresh, video_stream(fresh), header_fps, raw=raw)
        exact = frames is not None
    duration = max(0.0, end - start) if end is not None else None
    fps = header_fps
    if exact and frames and frames > 1 and duration:
        fps = round(frames / duration, 3)
        guessed = float(stream.guessed_rate or 0)
        if fps < guessed / 10:  # a long gap between frames is no frame rate: their spacing is
            fps = guessed
    if fmt == "gif" and (frames or 0) < 2:
        raise fail("is a still image, not a video", container=fmt)
    cc = stream.codec_context
    return ProbeResult(
        duration=round(duration, 6) if duration is not None else None,
        width=display_w, height=display_h, codec=cc.name.removeprefix("lib"), fps=fps,
        rotation=rotation, has_audio=has_audio, container=fmt, start=round(start, 6),
        frames=frames, frames_exact=exact, coded_width=width, coded_height=height,
        sar=f"{sar.numerator}:{sar.denominator}", flip=flip, display_matrix=matrix,
        pix_fmt=first.format.name,
        color_matrix=_MATRICES.get(int(first.colorspace), str(int(first.colorspace))),
        color_range=_RANGES.get(int(first.color_range), str(int(first.color_range))),
        color_primaries=_PRIMARIES.get(int(first.color_primaries), str(first.color_primaries)),
        color_transfer=_TRANSFERS.get(int(first.color_trc), str(first.color_trc)),
    )


def too_large(size: tuple[int, int] | None, memory_mb: int | None) -> str:
    """The refusal for a picture that cannot be decoded within the memory at hand."""
    within = f" within {memory_mb} MB" if memory_mb else ""
    shown = f" ({size[0]}x{size[1]})" if size else ""
    return f"the picture is too large to read{within}{shown}"


def _declared_size(path: Path, stream, fmt: str) -> tuple[int, int] | None:
    """The picture size the header declares (a GIF's canvas, which libav leaves at 0x0
    when it refuses it)."""
    if fmt == "gif":
        head = _head(path)
        if head[:3] == b"GIF" and len(head) >= 10:
            return struct.unpack("<HH", head[6:10])
    width, height = stream.codec_context.width, stream.codec_context.height
    return (width, height) if width and height else None


def _beyond(size: tuple[int, int], memory_mb: int | None) -> bool:
    """Whether one RGBA picture of ``size`` exceeds the cap, or libav's own size limit."""
    width, height = size
    if (width + 128) * (height + 128) >= (2**31 - 1) // 8:  # av_image_check_size's rule
        return True
    return bool(memory_mb) and width * height * 4 > memory_mb * 1024 * 1024


def _first_frame(container, stream):
    stream.codec_context.thread_count = 1  # one frame is wanted: no thread pool's buffers
    packets = 0
    try:
        for packet in container.demux(stream):
            packets += 1
            try:
                for frame in packet.decode():
                    return frame
            except av.error.InvalidDataError:
                pass
            if packets > _FIRST_FRAME_PACKETS:
                return None
    except MemoryError:
        raise
    except av.error.FFmpegError:
        return None
    return None


def _intact_until(container, stream, end: float) -> float | None:
    """Where the intact packets of the last seconds end (an index can promise more)."""
    tb = stream.time_base
    try:
        container.seek(max(0, int((end - TAIL_CHECK_S) / tb)), stream=stream, backward=True)
        reached = None
        for packet in container.demux(stream):
            if packet.size and not packet.is_corrupt and packet.pts is not None:
                stop = float((packet.pts + (packet.duration or 0)) * tb)
                reached = stop if reached is None else max(reached, stop)
    except av.error.FFmpegError:
        pass
    return reached


def _scan(container, stream, fps: float | None, *,
          raw: bool = False) -> tuple[int | None, float | None]:
    """Count the video packets and find where the last one ends (demux only, no decoding)."""
    tb = stream.time_base
    count = 0
    times: list[int] = []
    durations: list[int] = []
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_corrupt:
            continue
        count += 1
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is not None and not raw:
            times.append(pts)
            if packet.duration:
                durations.append(packet.duration)
        if count >= MAX_SCAN_PACKETS:
            logger.warning("stopped counting frames after %s packets", count)
            return None, _end(times, durations, tb, fps)
    if not times and count and fps:  # raw elementary streams carry no times: count / rate
        return count, count / fps
    return (count or None), _end(times, durations, tb, fps)


def _end(times: list[int], durations: list[int], tb: Fraction, fps: float | None) -> float | None:
    """Where the last frame ends: its time plus one frame's length.

    A frame's length is the packets' own duration unless it is far shorter than the
    spacing of the frames (FLV writes 1 ms), then the median spacing.
    """
    if not times:
        return None
    times.sort()
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False) if b > a)
    spacing = gaps[len(gaps) // 2] if gaps else None
    length = statistics.median(durations) if durations else None
    if length is None or (spacing and length < spacing / 2):
        length = spacing
    if length is None:
        return float(times[-1] * tb) + (1 / fps if fps else 0.0)
    return float((times[-1] + length) * tb)
