"""Probe videos and extract frames with the ffmpeg binary that imageio-ffmpeg ships.

Nothing here holds a video in memory: ffmpeg reads the file, one process per step,
stdin/stdout closed and stderr spooled to a temporary file of which only the tail
is read back. Every problem with the video itself is an ``InputError`` whose
one-line message names the file.

Still images are rejected (``image2`` and the ``*_pipe`` image demuxers, whatever the
file is called). Animated GIF/APNG files are accepted as videos: ffmpeg decodes them
like any other video stream, and they do occur as screen-capture exports.

Frames are found by seeking on the input side, so a frame costs one keyframe-to-frame
decode whatever the video's length. Inputs that cannot seek (raw .h264/.hevc elementary
streams) fall back to decoding from the start, bounded by the per-frame timeout.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import select
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from core.errors import InputError, InternalError, JobTimeoutError, StorageError
from core.procenv import clean_env, die_with_parent_preexec

logger = logging.getLogger(__name__)

DEGRADE_LEVELS = 3
STDERR_TAIL_LINES = 5
_PROBE_STDERR_BYTES = 1 << 20
_TAIL_BYTES = 8192


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the bundled ffmpeg binary (imageio-ffmpeg; no ffprobe is shipped)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# --------------------------------------------------------------------------- running

@dataclass(frozen=True)
class _Completed:
    returncode: int
    stderr: str


def _run(argv: Sequence[str], *, timeout: float, keep_bytes: int = _TAIL_BYTES,
         on_spawn: Callable[[int], None] | None = None) -> _Completed:
    """Run ``argv``; stderr goes to a temp file so a chatty ffmpeg cannot grow our memory.

    Raises ``subprocess.TimeoutExpired`` after killing the process.
    """
    with tempfile.TemporaryFile() as err:
        with subprocess.Popen(list(argv), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=err, env=clean_env(),
                              preexec_fn=die_with_parent_preexec()) as proc:
            try:
                if on_spawn is not None:
                    on_spawn(proc.pid)
                returncode = _wait_exit(proc, timeout)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        size = err.seek(0, os.SEEK_END)
        err.seek(max(0, size - keep_bytes))
        text = err.read().decode("utf-8", "replace")
    return _Completed(returncode, text)


def _wait_exit(proc: subprocess.Popen, timeout: float) -> int:
    """``proc.wait(timeout)`` without its polling.

    With a timeout, ``Popen.wait`` sleeps in steps of up to 50 ms, which added ~25 ms to
    every ffmpeg run, 21 runs per video. A pidfd (Linux 5.3+) is readable the moment the
    process exits; elsewhere this falls back to ``Popen.wait``.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return proc.wait(timeout=timeout)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    return proc.wait()


_NOISE = ("deprecated pixel format used",)


def _tail(stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    kept = [line for line in stderr.replace("\r", "\n").splitlines()
            if line.strip() and not any(noise in line for noise in _NOISE)]
    return "\n".join(kept[-lines:])


def _file_url(path: Path) -> str:
    # "file:" stops ffmpeg reading a leading "-" as an option or "a:b" as a protocol.
    return "file:" + str(Path(path).absolute())


def _killed(done: _Completed, what: str, *, upload_id: int | None = None,
            **evidence: object) -> InternalError | None:
    """A transient error when ffmpeg died of a signal (OOM killer, operator, a supervisor):
    that says nothing about the video, so it must not fail the upload as bad input."""
    if done.returncode >= 0:
        return None
    return InternalError(f"ffmpeg was killed (signal {-done.returncode}) while {what}",
                         upload_id=upload_id, transient=True, returncode=done.returncode,
                         **evidence)


# --------------------------------------------------------------------------- probe

@dataclass(frozen=True)
class ProbeResult:
    """Facts about a video, as ffmpeg reports them (sizes are display sizes)."""

    duration: float | None
    width: int
    height: int
    codec: str
    fps: float | None
    rotation: int
    has_audio: bool
    container: str

    def as_dict(self) -> dict:
        return asdict(self)


_INPUT_RE = re.compile(r"^Input #0, (?P<fmt>.+?), from '", re.M)
_DURATION_RE = re.compile(r"^\s*Duration: (?:(\d+):(\d\d):(\d\d(?:\.\d+)?)|N/A)", re.M)
_STREAM_RE = re.compile(r"^\s*Stream #0:\d+\S*: (?P<kind>\w+): (?P<rest>.*)$", re.M)
_SIZE_RE = re.compile(r"(?:^|[\s,])(\d{1,6})x(\d{1,6})(?=[\s,\[]|$)")
_FPS_RE = re.compile(r"([\d.]+)(k?) fps")
_MATRIX_RE = re.compile(r"display ?matrix: rotation of (-?[\d.]+) degrees", re.I)
_ROTATE_TAG_RE = re.compile(r"^\s*rotate\s*:\s*(-?\d+)\s*$", re.M)
_TIME_RE = re.compile(r"time=(\d+):(\d\d):(\d\d(?:\.\d+)?)")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")


def probe(path: Path, *, timeout: float = 60.0, upload_id: int | None = None) -> ProbeResult:
    """Read the container header of ``path`` with ``ffmpeg -i`` and check it is a usable video.

    When the container reports no duration (raw streams, files written to a pipe) it is
    measured with a stream-copy pass, which reads the file but decodes nothing.
    Raises ``InputError`` for anything that makes the file unusable.
    """
    path = Path(path)
    name = path.name

    def fail(reason: str, **evidence: object) -> InputError:
        return InputError(f"{name}: {reason}", upload_id=upload_id, path=str(path), **evidence)

    if not path.exists():
        raise fail("file not found")
    if not path.is_file():
        raise fail("is not a file")
    if path.stat().st_size == 0:
        raise fail("file is empty (0 bytes)")

    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _file_url(path)]
    try:
        done = _run(argv, timeout=timeout, keep_bytes=_PROBE_STDERR_BYTES)
    except subprocess.TimeoutExpired:
        raise fail(f"ffmpeg took longer than {timeout:g} s to read the file header",
                   timeout=timeout) from None
    if killed := _killed(done, f"reading the header of {name}", upload_id=upload_id):
        raise killed
    text = done.stderr
    evidence = {"returncode": done.returncode, "stderr_tail": _tail(text)}

    header = _INPUT_RE.search(text)
    if header is None:
        raise fail(_open_failure_reason(text), **evidence)
    container = header.group("fmt")

    streams = list(_STREAM_RE.finditer(text))
    videos = [m for m in streams
              if m.group("kind") == "Video" and "(attached pic)" not in m.group("rest")]
    has_audio = any(m.group("kind") == "Audio" for m in streams)
    if not videos:
        if has_audio:
            raise fail("has no video stream (audio only?)", container=container, **evidence)
        raise fail("not a video (ffmpeg found no video stream)", container=container, **evidence)
    if container == "image2" or container.endswith("_pipe"):
        raise fail("is a still image, not a video", container=container, **evidence)

    video = videos[0]
    rest = video.group("rest")
    codec_match = re.match(r"[\w-]+", rest)
    codec = codec_match.group(0) if codec_match else "unknown"
    size = _SIZE_RE.search(rest)
    width, height = (int(size.group(1)), int(size.group(2))) if size else (0, 0)
    if width <= 0 or height <= 0:
        raise fail(f"video stream has no picture size ({width}x{height})", codec=codec, **evidence)

    following = [m.start() for m in streams if m.start() > video.start()]
    section = text[video.end():following[0] if following else len(text)]
    rotation = _rotation(section)
    if rotation in (90, 270):
        width, height = height, width

    fps_match = _FPS_RE.search(rest)
    fps = None
    if fps_match:
        fps = float(fps_match.group(1)) * (1000 if fps_match.group(2) else 1)

    duration = _header_duration(text)
    if duration is None:
        duration = _measure_duration(path, fps, timeout=timeout)
    if duration is not None and duration <= 0:
        raise fail("video has zero length", duration=duration, **evidence)

    result = ProbeResult(duration=duration, width=width, height=height, codec=codec, fps=fps,
                         rotation=rotation, has_audio=has_audio, container=container)
    logger.debug("probed %s (upload %s): %s", name, upload_id, result)
    return result


def _open_failure_reason(stderr: str) -> str:
    if "misdetection possible" in stderr:
        return "not a video file ffmpeg can read (unrecognised data)"
    if "moov atom not found" in stderr:
        return "file is truncated or incomplete (the MP4 index, 'moov atom', is missing)"
    if "Invalid data found" in stderr:
        return "not a video file ffmpeg can read (unrecognised or corrupt data)"
    if "Permission denied" in stderr:
        return "cannot be read (permission denied)"
    last = _tail(stderr, 1).split("] ")[-1][:200]
    return f"ffmpeg could not open the file ({last or 'no reason given'})"


def _rotation(section: str) -> int:
    """Clockwise display rotation: the old ``rotate`` tag, or minus the display-matrix angle."""
    degrees = 0.0
    tag = _ROTATE_TAG_RE.search(section)
    matrix = _MATRIX_RE.search(section)
    if matrix:
        degrees = -float(matrix.group(1))
    elif tag:
        degrees = float(tag.group(1))
    return int(((degrees + 45) // 90) * 90) % 360


def _header_duration(stderr: str) -> float | None:
    match = _DURATION_RE.search(stderr)
    if match is None or match.group(1) is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _measure_duration(path: Path, fps: float | None, *, timeout: float) -> float | None:
    """Duration from a stream-copy pass: last ``time=``, else frame count / fps."""
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _file_url(path),
            "-map", "0:V:0", "-c", "copy", "-f", "null", "-"]
    try:
        done = _run(argv, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InputError(f"{path.name}: measuring the duration took longer than {timeout:g} s",
                         path=str(path), timeout=timeout) from None
    if killed := _killed(done, f"measuring the duration of {path.name}"):
        raise killed  # a partial pass would give a wrong (short) duration
    times = _TIME_RE.findall(done.stderr)
    if times:
        hours, minutes, seconds = times[-1]
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    frames = _FRAME_RE.findall(done.stderr)
    if frames and fps:
        return int(frames[-1]) / fps
    logger.warning("could not measure the duration of %s (rc %s): %s",
                   path.name, done.returncode, _tail(done.stderr, 2))
    return None


# --------------------------------------------------------------------------- planning

def frame_times(duration: float | None, count: int) -> list[float]:
    """``count`` timestamps at the middles of equal slices; one frame at 0 if length is unknown."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if not duration or duration <= 0:
        return [0.0]
    return [duration * (i + 0.5) / count for i in range(count)]


@dataclass(frozen=True)
class ExtractOptions:
    """How to decode one frame; the knobs that bound ffmpeg's memory."""

    max_width: int = 1280
    threads: int = 2
    keyframes_only: bool = False
    jpeg_quality: int = 3

    def __post_init__(self) -> None:
        if self.max_width < 2:
            raise ValueError(f"max_width must be at least 2, got {self.max_width}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if not 2 <= self.jpeg_quality <= 31:
            raise ValueError(f"jpeg_quality must be 2..31, got {self.jpeg_quality}")


_LEVELS: tuple[tuple[int, ExtractOptions], ...] = (
    (1, ExtractOptions()),
    (2, ExtractOptions(max_width=960, threads=1)),
    (4, ExtractOptions(max_width=640, threads=1, keyframes_only=True)),
)
assert len(_LEVELS) == DEGRADE_LEVELS


def degrade_plan(level: int, max_frames: int) -> tuple[list[int], ExtractOptions]:
    """Frame indices (into the full ``frame_times(duration, max_frames)``) and options for a level.

    Indices stay in the full plan so frames recorded at a lower level remain valid.
    """
    if not 0 <= level < DEGRADE_LEVELS:
        raise ValueError(f"degrade level must be 0..{DEGRADE_LEVELS - 1}, got {level}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    step, options = _LEVELS[level]
    return list(range(0, max_frames, step)), options


# --------------------------------------------------------------------------- extraction

@dataclass(frozen=True)
class ExtractedFrame:
    path: Path
    timestamp: float
    width: int
    height: int


class FrameExtractor(Protocol):
    """Writes one frame of a video to disk as a JPEG.

    Contract:
    - ``extract`` decodes the frame at (or, near the end, shortly before) ``timestamp``
      seconds, applies the video's display rotation, scales it down to at most
      ``options.max_width`` (never up; even dimensions) and writes a JPEG to ``dest``.
    - ``dest`` either holds a complete JPEG afterwards or is untouched: no partial file
      is left at ``dest`` or beside it, whatever happens.
    - The returned ``ExtractedFrame`` has the timestamp actually used and the JPEG's size.
    - Cost does not grow with the video's length, only with the distance to a keyframe.
    - Problems with the video raise ``InputError``; running too long raises
      ``JobTimeoutError``.
    """

    def extract(self, video: Path, timestamp: float, dest: Path,
                options: ExtractOptions) -> ExtractedFrame: ...


class FFmpegExtractor:
    """One ffmpeg process per frame, seeking on the input side (jumps to the keyframe).

    ``on_spawn`` receives each ffmpeg pid (for a supervisor); ``timeout`` is per frame.
    With ``keyframes_only`` the frame is the keyframe at or before ``timestamp``, while
    the returned timestamp stays the one requested.
    """

    def __init__(self, *, timeout: float = 120.0,
                 on_spawn: Callable[[int], None] | None = None,
                 upload_id: int | None = None) -> None:
        self.timeout = timeout
        self.on_spawn = on_spawn
        self.upload_id = upload_id

    def extract(self, video: Path, timestamp: float, dest: Path,
                options: ExtractOptions) -> ExtractedFrame:
        video, dest = Path(video), Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        try:
            used = max(0.0, timestamp)
            found, log = self._extract_once(video, used, part, options, input_seek=True)
            input_seek = "could not seek" not in log
            if not found and not input_seek:
                # Raw elementary streams have no index: decode from the start instead.
                logger.warning("%s (upload %s) cannot seek; decoding from the start to %.1f s",
                               video.name, self.upload_id, used)
                found, log = self._extract_once(video, used, part, options, input_seek=False)
            if not found and used > 0:
                earlier = max(0.0, used - 1.0)
                logger.info("no frame at %.3f s in %s (upload %s); retrying at %.3f s",
                            used, video.name, self.upload_id, earlier)
                used = earlier
                found, log = self._extract_once(video, used, part, options, input_seek)
            if not found:
                raise InputError(
                    f"{video.name}: no frame at or shortly before {timestamp:.1f} s "
                    "(video shorter than its header says?)",
                    upload_id=self.upload_id, timestamp=timestamp, stderr_tail=_tail(log))
            width, height = _jpeg_size(part)
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        return ExtractedFrame(path=dest, timestamp=used, width=width, height=height)

    def _extract_once(self, video: Path, timestamp: float, part: Path,
                      options: ExtractOptions, input_seek: bool) -> tuple[bool, str]:
        """Run ffmpeg once; whether it wrote a frame to ``part``, and its stderr tail."""
        part.unlink(missing_ok=True)
        argv = extract_argv(video, timestamp, part, options, input_seek=input_seek)
        try:
            done = _run(argv, timeout=self.timeout, on_spawn=self.on_spawn)
        except subprocess.TimeoutExpired:
            raise JobTimeoutError(
                f"{video.name}: ffmpeg took longer than {self.timeout:g} s "
                f"to extract the frame at {timestamp:.1f} s",
                upload_id=self.upload_id, timeout=self.timeout, timestamp=timestamp) from None
        if killed := _killed(done, f"extracting the frame at {timestamp:.1f} s of {video.name}",
                             upload_id=self.upload_id, timestamp=timestamp):
            raise killed
        if done.returncode != 0:
            tail = _tail(done.stderr)
            if "No space left on device" in tail:
                raise StorageError(f"{part.parent}: disk full, no space left for frames of "
                                   f"{video.name}",
                                   upload_id=self.upload_id, transient=True,
                                   returncode=done.returncode, stderr_tail=tail)
            raise InputError(
                f"{video.name}: ffmpeg could not decode a frame at {timestamp:.1f} s "
                "(corrupt or truncated?)",
                upload_id=self.upload_id, returncode=done.returncode, stderr_tail=tail,
                timestamp=timestamp)
        return part.exists() and part.stat().st_size > 0, done.stderr


def extract_argv(video: Path, timestamp: float, out: Path, options: ExtractOptions, *,
                 input_seek: bool = True) -> list[str]:
    """The ffmpeg command line for one frame.

    ``-ss`` before ``-i`` seeks to the keyframe and decodes from there; after ``-i``
    (only for inputs that cannot seek) it decodes everything up to ``timestamp``.
    """
    # Warnings are kept: "could not seek" is how an unseekable input shows itself.
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "warning", "-y",
            "-filter_threads", "1", "-threads", str(options.threads)]
    if options.keyframes_only:
        argv += ["-skip_frame", "nokey", "-noaccurate_seek"]
    # Full-range yuvj420p: the mjpeg encoder refuses limited range, and with this
    # format a seek past the last frame exits 0 with no output (retried earlier).
    scale = (f"scale='trunc(min(iw,{options.max_width})/2)*2':-2:out_range=full,"
             "format=yuvj420p")
    # passthrough: without accurate seek the keyframe has a negative timestamp, and the
    # default frame-rate sync would drop it and emit the next keyframe instead.
    seek = ["-ss", f"{timestamp:.3f}"]
    argv += [*(seek if input_seek else []), "-i", _file_url(video), *([] if input_seek else seek),
             "-map", "0:V:0", "-frames:v", "1", "-vf", scale, "-fps_mode", "passthrough",
             "-threads", "1", "-c:v", "mjpeg", "-q:v", str(options.jpeg_quality),
             "-f", "image2", "-update", "1", _file_url(out)]
    return argv


def _jpeg_size(path: Path) -> tuple[int, int]:
    from PIL import Image  # header only; Pillow reads no pixel data here

    with Image.open(path) as image:
        return image.size
