"""The benchmark videos: generated once with the bundled ffmpeg and cached outside the repo.

Cache: ``$PEAKOPS_BENCH_CACHE``, else ``~/.cache/peakops-bench``. H.264 (libx264
ultrafast, constant bit rate roughly like a phone or drone camera), 30 fps, fixed
keyframe spacing. The 10-minute video is five 2-minute encodes joined by stream copy,
which is exact for closed GOPs and saves minutes of encoding.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from core.media import ffmpeg_exe, probe

FPS = 30


@dataclass(frozen=True)
class Video:
    name: str
    width: int
    height: int
    seconds: int
    keyint_s: float
    bitrate: str   # ffmpeg -b:v

    @property
    def filename(self) -> str:
        return (f"{self.name}-{self.width}x{self.height}-{self.seconds}s-"
                f"k{self.keyint_s:g}-{self.bitrate}.mp4")

    def describe(self) -> str:
        return (f"{self.width}x{self.height}, {self.seconds} s, {FPS} fps, H.264 "
                f"{self.bitrate}bit/s, keyframe every {self.keyint_s:g} s")


FULL = (
    Video("720p-30s", 1280, 720, 30, 2, "5M"),
    Video("1080p-2min", 1920, 1080, 120, 2, "10M"),
    Video("1080p-10min", 1920, 1080, 600, 2, "10M"),
    Video("4k-60s", 3840, 2160, 60, 2, "40M"),
    Video("4k-20s", 3840, 2160, 20, 2, "40M"),
    Video("1080p-2min-key8s", 1920, 1080, 120, 8, "10M"),
)
QUICK = (
    Video("720p-30s", 1280, 720, 30, 2, "5M"),
    Video("4k-10s", 3840, 2160, 10, 2, "40M"),
)
CHART_VIDEO = {"full": "4k-60s", "quick": "4k-10s"}


def cache_dir() -> Path:
    path = Path(os.environ.get("PEAKOPS_BENCH_CACHE") or Path.home() / ".cache" / "peakops-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ffmpeg(argv: list[str]) -> None:
    done = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                           *argv], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {done.stderr[-800:]}")


def _encode(video: Video, seconds: int, dest: Path) -> None:
    keyint = int(video.keyint_s * FPS)
    tmp = dest.with_name("." + dest.name + ".tmp.mp4")
    _ffmpeg(["-f", "lavfi", "-i",
             f"testsrc2=size={video.width}x{video.height}:rate={FPS}:duration={seconds}",
             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
             "-b:v", video.bitrate, "-maxrate", video.bitrate, "-bufsize", video.bitrate,
             "-g", str(keyint), "-keyint_min", str(keyint), "-sc_threshold", "0",
             "-movflags", "+faststart", str(tmp)])
    os.replace(tmp, dest)


def ensure(video: Video, log=print) -> Path:
    """The cached file for ``video``, generated first if missing."""
    root = cache_dir()
    dest = root / video.filename
    if dest.exists():
        return dest
    log(f"generating {video.name} ({video.describe()}) ...")
    segment = 120
    if video.seconds > segment and video.seconds % segment == 0:
        part = ensure(Video(video.name.split("-")[0] + "-2min", video.width, video.height,
                            segment, video.keyint_s, video.bitrate), log)
        listing = root / f".{video.filename}.txt"
        listing.write_text(f"file '{part}'\n" * (video.seconds // segment))
        tmp = dest.with_name("." + dest.name + ".tmp.mp4")
        try:
            _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                     "-movflags", "+faststart", str(tmp)])
            os.replace(tmp, dest)
        finally:
            listing.unlink(missing_ok=True)
    else:
        _encode(video, video.seconds, dest)
    return dest


def facts(video: Video, path: Path) -> dict:
    """Probe results for the report (cached beside the video)."""
    meta = path.with_name(path.name + ".json")
    if meta.exists() and meta.stat().st_mtime >= path.stat().st_mtime:
        return json.loads(meta.read_text())
    info = probe(path)
    data = {**asdict(video), "file": str(path), "bytes": path.stat().st_size,
            "duration": info.duration, "fps": info.fps, "codec": info.codec}
    meta.write_text(json.dumps(data, indent=2))
    return data
