"""Shared fixtures. Clips are generated once per session with the bundled ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.media import ffmpeg_exe, samples

# Throwaway PostgreSQL and Redis servers (session fixtures), for fleet-mode tests, and
# the `database_url` fixture that runs a test on SQLite and on PostgreSQL.
pytest_plugins = ["tests.servers", "tests.databases"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False,
                     help="reliability suite: long runs (200 random kills) instead of CI size")


# --------------------------------------------------------------------------- clips


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def clip_h264(clips_dir: Path) -> Path:
    """2 s, 320x240, 25 fps H.264 MP4 with an AAC track, keyframe every second."""
    return samples.make_clip(clips_dir / "clip.mp4", seconds=2, audio=True, keyint=25)


@pytest.fixture(scope="session")
def clip_with_audio(clip_h264: Path) -> Path:
    """Same file as ``clip_h264``; the name says what a test relies on."""
    return clip_h264


@pytest.fixture(scope="session")
def clip_noaudio(clips_dir: Path) -> Path:
    """2 s, 320x240 H.264 MP4, video only."""
    return samples.make_clip(clips_dir / "noaudio.mp4", seconds=2)


@pytest.fixture(scope="session")
def clip_vp9(clips_dir: Path) -> Path:
    """2 s, 320x240 VP9 WebM with an Opus track."""
    return samples.make_clip(clips_dir / "clip.webm", seconds=2, codec="vp9", audio=True)


@pytest.fixture(scope="session")
def clip_rotated(clips_dir: Path) -> Path:
    """Phone-style: 320x240 pixels stored with a 90-degree display rotation (portrait)."""
    return samples.make_clip(clips_dir / "phone.mp4", seconds=2, rotate=90)


@pytest.fixture(scope="session")
def clip_no_duration(clips_dir: Path) -> Path:
    """3 s raw H.264 elementary stream: the container knows no duration."""
    return samples.make_clip(clips_dir / "raw.h264", seconds=3)


@pytest.fixture(scope="session")
def clip_piped_mkv(clips_dir: Path) -> Path:
    """3 s H.264 Matroska written to a pipe, so no duration was stored."""
    path = clips_dir / "piped.mkv"
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=3",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-f", "matroska", "pipe:1"]
    with path.open("wb") as out:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, check=True, timeout=120)
    return path


def four_scenes(path: Path, *, audio: bool = False) -> Path:
    """10 s, 160x120: testsrc2 turned 0, 90, 180 and 270 degrees for 2.5 s each, so the
    four frames of a 4-frame plan (at the middles of four equal slices) are far apart by
    difference hash (24 bits or more), never near-duplicates by coincidence of timing."""
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=10"]
    if audio:
        argv += ["-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-c:a", "aac"]
    argv += ["-vf", "rotate=a='PI/2*floor(t/2.5)':ow=160:oh=120", "-c:v", "libx264",
             "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(argv, stdin=subprocess.DEVNULL, check=True, timeout=120)
    return path


@pytest.fixture(scope="session")
def clip_four_scenes(clips_dir: Path) -> Path:
    return four_scenes(clips_dir / "four-scenes.mp4")


@pytest.fixture(scope="session")
def clip_10s(clips_dir: Path) -> Path:
    """10 s, 160x120, 25 fps H.264 with a keyframe every second."""
    return samples.make_clip(clips_dir / "ten.mp4", seconds=10, width=160, height=120,
                             keyint=25)


@pytest.fixture(scope="session")
def audio_only(clips_dir: Path) -> Path:
    """AAC in an .mp4: readable by ffmpeg, no video stream."""
    return samples.make_audio_only(clips_dir / "voice.mp4")


@pytest.fixture(scope="session")
def png_as_mp4(clips_dir: Path) -> Path:
    """A PNG picture named .mp4."""
    return samples.make_still_image(clips_dir / "photo.mp4")


@pytest.fixture(scope="session")
def text_as_mp4(clips_dir: Path) -> Path:
    path = clips_dir / "notes.mp4"
    path.write_text("these are inspection notes, not a video\n" * 20)
    return path


@pytest.fixture(scope="session")
def truncated_mp4(clips_dir: Path, clip_noaudio: Path) -> Path:
    """``clip_noaudio`` cut at 50%: the MP4 index (written last) is gone."""
    data = clip_noaudio.read_bytes()
    path = clips_dir / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="session")
def empty_file(clips_dir: Path) -> Path:
    path = clips_dir / "empty.mp4"
    path.write_bytes(b"")
    return path
