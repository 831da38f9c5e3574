"""The ladder bench's clips: one per decoder, generated with the bundled ffmpeg and cached.

Each is a few seconds of ``testsrc2`` at 30 fps with a keyframe every 2 s, cached beside
the other bench videos (:func:`bench.videos.cache_dir`). ``seconds`` is a parameter so
the box test can make short ones in its own folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.videos import _ffmpeg, cache_dir

FPS = 30


@dataclass(frozen=True)
class CodecClip:
    name: str
    width: int
    height: int
    encoder: list[str]   # ffmpeg output arguments for the video
    suffix: str = ".mp4"

    def filename(self, seconds: float) -> str:
        return f"ladder-{self.name}-{self.width}x{self.height}-{seconds:g}s{self.suffix}"


_HLG = ["-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc"]
CLIPS = {
    "h264-4k": CodecClip("h264-4k", 3840, 2160, [
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "40M"]),
    "hevc10-hlg": CodecClip("hevc10-hlg", 1920, 1080, [
        "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-b:v", "8M",
        "-x265-params", "log-level=error", "-tag:v", "hvc1", *_HLG]),
    "hevc10-4k-hlg": CodecClip("hevc10-4k-hlg", 3840, 2160, [
        "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-b:v", "20M",
        "-x265-params", "log-level=error", "-tag:v", "hvc1", *_HLG]),
    "av1-4k": CodecClip("av1-4k", 3840, 2160, [
        "-c:v", "libsvtav1", "-preset", "12", "-pix_fmt", "yuv420p", "-b:v", "15M"]),
    "vp9-4k": CodecClip("vp9-4k", 3840, 2160, [
        "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
        "-pix_fmt", "yuv420p", "-b:v", "20M"], ".webm"),
    "h264-1080p": CodecClip("h264-1080p", 1920, 1080, [
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "10M"]),
    "h264-8k": CodecClip("h264-8k", 7680, 4320, [
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "80M"]),
}
LADDER_CODECS = ("h264-4k", "hevc10-hlg", "av1-4k", "vp9-4k")


def ensure_clip(name: str, seconds: float = 4, folder: Path | None = None) -> Path:
    """The clip ``name`` of ``seconds``, generated into ``folder`` (the cache) if missing."""
    clip = CLIPS[name]
    dest = (folder or cache_dir()) / clip.filename(seconds)
    if dest.exists():
        return dest
    tmp = dest.with_name("." + dest.name + ".tmp" + clip.suffix)
    _ffmpeg(["-f", "lavfi", "-i",
             f"testsrc2=size={clip.width}x{clip.height}:rate={FPS}:duration={seconds:g}",
             *clip.encoder, "-g", str(2 * FPS), "-threads", "2", str(tmp)])
    os.replace(tmp, dest)
    return dest
