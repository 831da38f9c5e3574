"""Generate small sample media with the bundled ffmpeg (tests, the demo, benchmarks).

Clips come from ffmpeg's lavfi test sources, so nothing is downloaded. Files are
written next to ``dest`` under a temporary name and renamed into place.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
from pathlib import Path

from core.media import ffmpeg_exe
from core.procenv import clean_env

logger = logging.getLogger(__name__)

# codec -> (encoder, default muxer, encoder flags)
_VIDEO_CODECS: dict[str, tuple[str, str, list[str]]] = {
    "h264": ("libx264", "mp4", ["-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
    "vp9": ("libvpx-vp9", "webm", ["-deadline", "realtime", "-cpu-used", "8",
                                   "-pix_fmt", "yuv420p"]),
    "hevc": ("libx265", "mp4", ["-preset", "ultrafast", "-pix_fmt", "yuv420p",
                                "-x265-params", "log-level=error"]),
    "mpeg4": ("mpeg4", "mp4", ["-q:v", "5", "-pix_fmt", "yuv420p"]),
}

# file suffix -> muxer; anything else uses the codec's default muxer
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm", ".mkv": "matroska",
           ".ts": "mpegts", ".avi": "avi", ".h264": "h264", ".264": "h264", ".hevc": "hevc"}
_RAW_MUXERS = {"h264", "hevc"}
_TIMEOUT = 600.0


@functools.cache
def available_encoders() -> frozenset[str]:
    """Names of the encoders the bundled ffmpeg was built with (``ffmpeg -encoders``)."""
    done = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-encoders"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=True, env=clean_env())
    names = set()
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def make_clip(dest: Path, *, seconds: float = 2.0, width: int = 320, height: int = 240,
              fps: int = 25, codec: str = "h264", audio: bool = False, rotate: int = 0,
              keyint: int | None = None, pattern: str = "testsrc2") -> Path:
    """Write a synthetic clip to ``dest`` and return it.

    The container follows ``dest``'s suffix (.mp4 .mov .webm .mkv .ts .avi, or .h264
    for a raw elementary stream without a duration), else the codec's usual one.
    ``rotate`` (0/90/180/270, clockwise like a phone's ``rotate`` tag) is stored as
    display-matrix side data; the pixels stay ``width`` x ``height``. ``keyint`` fixes
    the GOP length in frames.
    """
    dest = Path(dest)
    if codec not in _VIDEO_CODECS:
        raise ValueError(f"codec must be one of {sorted(_VIDEO_CODECS)}, got {codec!r}")
    if rotate not in (0, 90, 180, 270):
        raise ValueError(f"rotate must be 0, 90, 180 or 270, got {rotate}")
    encoder, default_muxer, flags = _VIDEO_CODECS[codec]
    if encoder not in available_encoders():
        raise RuntimeError(f"the bundled ffmpeg has no {encoder} encoder for {codec}")
    muxer = _MUXERS.get(dest.suffix.lower(), default_muxer)
    if audio and muxer in _RAW_MUXERS:
        raise ValueError(f"a raw {muxer} stream cannot carry audio")

    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i",
            f"{pattern}=size={width}x{height}:rate={fps}:duration={seconds:g}"]
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds:g}"]
    argv += ["-map", "0:v:0", "-c:v", encoder, *flags]
    if keyint is not None:
        argv += ["-g", str(keyint), "-keyint_min", str(keyint)]
        if encoder == "libx264":
            argv += ["-sc_threshold", "0"]
    if audio:
        audio_codec = "libopus" if muxer == "webm" else "aac"
        argv += ["-map", "1:a:0", "-c:a", audio_codec, "-shortest"]

    tmp = _tmp_name(dest)
    try:
        _ffmpeg([*argv, "-f", muxer, str(tmp)])
        if rotate:
            # Given as an input option at encode time, ffmpeg would rotate the pixels
            # instead; remuxing stores it as side data, which is what phones do.
            rotated = _tmp_name(dest, ".rot")
            try:
                _ffmpeg([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                         "-display_rotation", str(-rotate), "-i", str(tmp),
                         "-map", "0", "-c", "copy", "-f", muxer, str(rotated)])
                os.replace(rotated, tmp)
            finally:
                rotated.unlink(missing_ok=True)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("made clip %s (%s, %gs, %dx%d)", dest, codec, seconds, width, height)
    return dest


def make_audio_only(dest: Path, seconds: float = 2.0) -> Path:
    """Write an AAC-in-MP4 file (or WAV for a .wav name): ffmpeg reads it, but no video."""
    dest = Path(dest)
    if dest.suffix.lower() == ".wav":
        codec, muxer = "pcm_s16le", "wav"
    else:
        codec, muxer = "aac", "mp4"
    tmp = _tmp_name(dest)
    try:
        _ffmpeg([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                 "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds:g}",
                 "-c:a", codec, "-f", muxer, str(tmp)])
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def make_still_image(dest: Path, *, width: int = 320, height: int = 240) -> Path:
    """Write one PNG picture to ``dest`` whatever its suffix (a photo posing as a video)."""
    dest = Path(dest)
    tmp = _tmp_name(dest)
    try:
        _ffmpeg([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                 "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}", "-frames:v", "1",
                 "-c:v", "png", "-f", "image2", "-update", "1", str(tmp)])
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _tmp_name(dest: Path, extra: str = "") -> Path:
    return dest.with_name(f".{dest.name}{extra}.tmp")


def _ffmpeg(argv: list[str]) -> None:
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, errors="replace",
                          timeout=_TIMEOUT, env=clean_env())
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"ffmpeg failed (exit {done.returncode}) making a sample: {tail}")


SCENES = ("static", "pan", "still-then-pan", "cuts", "handheld-blur", "coast")
"""Camera moves :func:`make_scene` films over one large test picture."""


def make_scene(dest: Path, scene: str, *, seconds: float = 8.0, width: int = 320,
               height: int = 180, fps: int = 25, keyint: int = 12) -> Path:
    """Write an H.264 clip of a camera moving over one large still picture.

    ``static``: a tripod shot (every frame the same picture); ``pan``: a steady pan along
    the picture, as a drone flying a coastline or a wall sees it; ``still-then-pan``: held
    still for the first half, then the pan; ``cuts``: a new view every quarter of the clip;
    ``handheld-blur``: a shaking hand, with motion blur on three frames of every five;
    ``coast``: a drone flying along a coastline, the view mostly sky and sea (smooth, alike
    from frame to frame) over a thin band of shore that moves all the time.
    """
    if scene not in SCENES:
        raise ValueError(f"scene must be one of {', '.join(SCENES)}, got {scene!r}")
    dest = Path(dest)
    wide, tall = width * 5, height * 2
    half = seconds / 2
    speed = (wide - width) / seconds
    x, y, extra = {
        "static": ("0", "0", ""),
        "pan": (f"t*{speed:.3f}", "0", ""),
        "still-then-pan": (f"if(lt(t,{half:g}),0,(t-{half:g})*{2 * speed:.3f})", "0", ""),
        "cuts": (f"floor(t*4/{seconds:g})*{(wide - width) // 3}",
                 f"mod(floor(t*4/{seconds:g}),2)*{tall - height}", ""),
        "handheld-blur": (f"{wide // 3}+{width // 8}*sin(t*7)",
                          f"{tall // 4}+{height // 8}*sin(t*11)",
                          ",boxblur=6:1:enable='lt(mod(n,5),3)'"),
        "coast": (f"t*{speed:.3f}", str(tall // 4), ""),
    }[scene]
    picture = _tmp_name(dest, ".png")
    tmp = _tmp_name(dest)
    base = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    try:
        if scene == "coast":
            _coastline(wide, tall).save(picture, "PNG")
        else:
            _ffmpeg([*base, "-f", "lavfi", "-i", f"testsrc2=size={wide}x{tall}", "-frames:v",
                     "1", "-c:v", "png", "-f", "image2", "-update", "1", str(picture)])
        _ffmpeg([*base, "-loop", "1", "-framerate", str(fps), "-t", f"{seconds:g}",
                 "-i", str(picture), "-vf", f"crop={width}:{height}:x='{x}':y='{y}'{extra}",
                 "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                 "-g", str(keyint), "-keyint_min", str(keyint), "-sc_threshold", "0",
                 "-f", "mp4", str(tmp)])
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
        picture.unlink(missing_ok=True)
    return dest


def _coastline(width: int, height: int, seed: int = 7):
    """A wide aerial picture: sky, a shore of rocks and houses, and sea (Pillow)."""
    import random

    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    picture = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(picture)
    horizon = height * 2 // 5
    for y in range(height):  # a sky and a sea gradient, as a low sun lights them
        if y < horizon:
            shade = 150 + 80 * y // horizon
            draw.line([(0, y), (width, y)], fill=(shade - 60, shade - 20, 235))
        else:
            shade = 120 - 60 * (y - horizon) // (height - horizon)
            draw.line([(0, y), (width, y)], fill=(20, shade, shade + 60))
    shore = [(x, horizon + 8 + round(10 * rng.random() + 6 * ((x // 37) % 3)))
             for x in range(0, width + 8, 8)]
    draw.polygon([(0, horizon - 4), *shore, (width, horizon - 4)], fill=(110, 100, 80))
    for _ in range(width // 6):  # rocks, houses and trees along the shore
        x = rng.randrange(width)
        y = horizon - 4 + rng.randrange(18)
        size = rng.randrange(2, 7)
        colour = rng.choice([(230, 230, 220), (170, 60, 40), (40, 90, 40), (70, 60, 50)])
        draw.rectangle([x, y - size, x + size, y], fill=colour)
    return picture.filter(ImageFilter.SMOOTH)
