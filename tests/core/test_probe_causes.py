"""Every refusal and failure in probe or job names its cause (issue #21 items 4, 5, 7;
issue #23 item 14): spatial video, raw MPEG video, unsupported codecs, truncated indexes,
pictures too large for the probe's memory cap, crashes.

Files are real (tests/media/dev) or built here with the bundled ffmpeg, then damaged the
way real files are (a cut, a sample entry libav does not know).
"""

from __future__ import annotations

import re
import signal
import struct
import subprocess
import sys
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from core import errors, media
from core.app import open_app
from core.intake import submit_file
from core.jobs import pipeline
from core.media import ExtractOptions
from core.media.decode import PyAVExtractor
from core.media.picture import Picture
from core.procenv import exit_cause
from core.storage.local import LocalStore
from core.store import lifecycle, queries
from tests.helpers import MEDIA_DEV, make_settings

NOT_A_CAUSE = re.compile(r"child failed|\bexit\b|exit code|\(exit|returncode", re.IGNORECASE)
"""What no message may say: that a process ended, instead of why."""
TRUNCATED = "truncated: the file's index is missing or cut"


def ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
                    "-y", *args], stdin=subprocess.DEVNULL, capture_output=True, check=True,
                   timeout=300)


def take(video: Path, dest: Path, max_frames: int):
    facts = media.probe_isolated(video)
    with PyAVExtractor().open(video, facts, ExtractOptions()) as source:
        times = source.plan(max_frames)
        frames = [r.frame for r in source.take(range(len(times)), lambda i: dest / f"{i}.jpg")]
    return facts, frames


def mean_diff(path: Path, reference: Image.Image) -> float:
    with Image.open(path) as image:
        diff = ImageChops.difference(image.convert("RGB"), reference.convert("RGB"))
        return max(ImageStat.Stat(diff).mean)


# --------------------------------------------------------------------------- files

@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("causes")


@pytest.fixture(scope="module")
def dolby_vision_av1(built: Path) -> Path:
    """hdr10-av1.mp4 with its sample entry renamed ``av01`` -> ``dav1``, as a Dolby Vision
    profile 10 file stores it: ffmpeg then reports the codec as "none"."""
    data = bytearray((MEDIA_DEV / "hdr10-av1.mp4").read_bytes())
    at = data.index(b"av01", data.index(b"stsd"))
    data[at:at + 4] = b"dav1"
    path = built / "dolby-vision-av1.mp4"
    path.write_bytes(bytes(data))
    return path


def _moov(data: bytes) -> tuple[int, int]:
    at = data.index(b"moov") - 4
    return at, struct.unpack(">I", data[at:at + 4])[0]


@pytest.fixture(scope="module")
def truncated(built: Path) -> dict[str, Path]:
    """Three ways a recording loses its index: the moov written last never came, cut in
    its middle, or a faststart file cut inside the moov at its front."""
    plain, front = built / "plain.mp4", built / "front.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
           "-c:v", "libx264", "-preset", "ultrafast", str(plain))
    ffmpeg("-i", str(plain), "-c", "copy", "-movflags", "+faststart", str(front))
    cuts = {}
    data = plain.read_bytes()
    at, size = _moov(data)
    cuts["moov-never-written.mp4"] = data[:at]
    cuts["moov-cut-at-the-end.mp4"] = data[:at + size // 2]
    data = front.read_bytes()
    at, size = _moov(data)
    cuts["faststart-moov-cut.mp4"] = data[:at + size // 2]
    cuts["faststart-moov-header-only.mp4"] = data[:at + 12]
    paths = {}
    for name, content in cuts.items():
        paths[name] = built / name
        paths[name].write_bytes(content)
    return paths


@pytest.fixture(scope="module")
def png_12000(built: Path) -> Path:
    """A valid MOV of two 12000x12000 PNG pictures (a decoded one needs 432 MB and more)."""
    path = built / "png-12000.mov"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=12000x12000:rate=2:duration=1",
           "-c:v", "png", "-f", "mov", str(path))
    return path


@pytest.fixture(scope="module")
def gif_65535(built: Path) -> Path:
    """A 5-frame 64x48 GIF whose header declares a 65535x65535 canvas."""
    small = built / "small.gif"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5:duration=1", "-f", "gif", str(small))
    data = bytearray(small.read_bytes())
    data[6:10] = struct.pack("<HH", 65535, 65535)  # the logical screen descriptor
    path = built / "canvas-65535.gif"
    path.write_bytes(bytes(data))
    return path


# --------------------------------------------------------------------------- item 4

def test_mv_hevc_spatial_video_gives_five_frames_of_the_left_view(tmp_path: Path) -> None:
    video = MEDIA_DEV / "water_180_mvhevc_5frames.mov"
    facts, frames = take(video, tmp_path, 20)
    assert (facts.codec, facts.frames, facts.width, facts.height) == ("hevc", 5, 1934, 2160)
    stamps = [f.timestamp for f in frames]
    assert len(frames) == 5 and stamps == sorted(set(stamps))
    # Both views decoded (view_ids -1): each frame must be the first (base, left) view.
    views: dict[int, list[Image.Image]] = {}
    picture = Picture(facts, ExtractOptions().max_width)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"view_ids": "-1"}
        for frame in container.decode(stream):
            views.setdefault(frame.pts, []).append(picture.image(frame))
    assert len(views) == 5 and all(len(pair) == 2 for pair in views.values())
    for frame, (left, right) in zip(frames, (views[p] for p in sorted(views)), strict=True):
        assert mean_diff(frame.path, left) <= 4.0
        assert mean_diff(frame.path, right) > mean_diff(frame.path, left) + 1.0


# --------------------------------------------------------------------------- item 7

@pytest.mark.parametrize("muxer", ["mpeg1video", "mpeg2video"])
def test_raw_mpeg_video_is_a_video(built: Path, tmp_path: Path, muxer: str) -> None:
    path = built / f"dvr-{muxer}.mpg"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4.8",
           "-c:v", muxer, "-g", "12", "-f", muxer, str(path))
    facts, frames = take(path, tmp_path, 6)
    assert (facts.container, facts.codec, facts.frames) == ("mpegvideo", muxer, 120)
    assert facts.start == 0 and facts.duration == pytest.approx(4.8)
    assert facts.fps == pytest.approx(25)
    assert [f.timestamp for f in frames] == pytest.approx([0.4, 1.2, 2.0, 2.8, 3.6, 4.4])
    # Frame n of a straight decode is at n / 25 s: each taken frame is that one.
    picture = Picture(facts, ExtractOptions().max_width)
    with av.open(str(path)) as container:
        decoded = [picture.image(f) for f in container.decode(container.streams.video[0])]
    assert len(decoded) == 120
    for frame in frames:
        n = round(frame.timestamp * 25)
        own = mean_diff(frame.path, decoded[n])  # a JPEG of testsrc2's fine text: about 4.5
        neighbours = [mean_diff(frame.path, decoded[n + k]) for k in (-1, 1)]
        assert own <= 6.0 and own < 0.6 * min(neighbours), (n, own, neighbours)


# --------------------------------------------------------------------------- items 5, 14

def refusal(path: Path) -> str:
    with pytest.raises(errors.PeakOpsError) as caught:
        media.probe_isolated(path, upload_id=5)
    message = caught.value.message
    assert message.startswith(f"{path.name}: ") and "\n" not in message
    assert not NOT_A_CAUSE.search(message), message
    return message


def test_dolby_vision_av1_names_its_codec(dolby_vision_av1: Path) -> None:
    message = refusal(dolby_vision_av1)
    assert message == (f"{dolby_vision_av1.name}: codec not supported: 'dav1' (Dolby Vision "
                       "AV1) cannot be decoded by this PeakOps's libav")


@pytest.mark.parametrize("name", ["moov-never-written.mp4", "moov-cut-at-the-end.mp4",
                                  "faststart-moov-cut.mp4", "faststart-moov-header-only.mp4"])
def test_a_cut_index_says_truncated(truncated: dict[str, Path], name: str) -> None:
    assert refusal(truncated[name]) == f"{name}: {TRUNCATED}"


@pytest.mark.parametrize(("suffix", "cut", "words"), [
    (".mkv", 100, "truncated or corrupt: its header could not be read (input/output error)"),
    (".webm", 400, "truncated or corrupt: its header could not be read (input/output error)"),
    (".ts", 400, "truncated: the file ends inside its header"),
])
def test_a_header_cut_short_says_truncated(built: Path, suffix: str, cut: int,
                                           words: str) -> None:
    """libav answers EOF (MPEG-TS) or EIO (Matroska) for these: was "(EOFError)"."""
    whole = built / f"whole{suffix}"
    codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=2", "-c:v", codec,
           str(whole))
    path = built / f"cut-header{suffix}"
    path.write_bytes(whole.read_bytes()[:cut])
    assert refusal(path) == f"{path.name}: {words}"


def test_a_picture_too_large_for_the_probe_says_so(png_12000: Path, gif_65535: Path) -> None:
    cap = 512
    assert refusal(png_12000) == (f"{png_12000.name}: the picture is too large to read "
                                  f"within {cap} MB (12000x12000)")
    assert refusal(gif_65535) == (f"{gif_65535.name}: the picture is too large to read "
                                  f"within {cap} MB (65535x65535)")


def test_every_probe_refusal_names_a_cause(built: Path, dolby_vision_av1: Path,
                                           truncated: dict[str, Path], audio_only: Path,
                                           text_as_mp4: Path, empty_file: Path,
                                           png_as_mp4: Path) -> None:
    cases = {
        dolby_vision_av1: "codec not supported", audio_only: "no video stream",
        text_as_mp4: "not a video", empty_file: "empty", png_as_mp4: "still image",
        built / "gone.mp4": "not found", MEDIA_DEV / "bitmap.mp4": "picture too small",
        MEDIA_DEV / "sample_still_photo.heic": "still image",
        **{path: "truncated" for path in truncated.values()},
    }
    for path, cause in cases.items():
        assert cause in refusal(path), path.name


def test_a_probe_that_cannot_load_within_its_cap_says_the_cap(clip_h264: Path) -> None:
    with pytest.raises(errors.InputError) as caught:
        media.probe_isolated(clip_h264, memory_mb=40)
    assert caught.value.message == "clip.mp4: reading the video header needed more than 40 MB"


@pytest.mark.parametrize(("sig", "words"), [
    (signal.SIGSEGV, "crashed (SIGSEGV: a fault in libav or another library)"),
    (signal.SIGKILL, "was killed by SIGKILL (out of memory, or stopped by an operator)"),
    (signal.SIGTERM, "was stopped by SIGTERM"),
])
def test_a_process_ended_by_a_signal_is_named_by_it(sig: int, words: str) -> None:
    ended = subprocess.run([sys.executable, "-c", f"import os; os.kill(os.getpid(), {sig})"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert ended.returncode == -sig and exit_cause(ended.returncode) == words
    assert not NOT_A_CAUSE.search(exit_cause(ended.returncode))


def test_a_process_ending_with_a_status_says_no_number() -> None:
    ended = subprocess.run([sys.executable, "-c", "raise SystemExit(3)"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    words = exit_cause(ended.returncode)
    assert ended.returncode == 3 and "3" not in words and not NOT_A_CAUSE.search(words)


# --------------------------------------------------------------------------- the job side

@pytest.fixture
def app(tmp_path: Path):
    home = tmp_path / "home"
    application = open_app(make_settings(home, max_frames_per_video=4),
                           store=LocalStore(home / "objects"))
    yield application
    application.close()


@pytest.mark.parametrize("replacement", ["dolby-vision", "moov-cut", "text"])
def test_a_stored_copy_that_went_bad_fails_the_job_with_a_cause(
        app, clip_h264: Path, dolby_vision_av1: Path, truncated: dict[str, Path],
        replacement: str) -> None:
    """The probe at submit saw a good file; the job opens a different one."""
    upload_id = submit_file(app, clip_h264).upload_id
    stored = Path(app.store.location(queries.get_upload(app.db, upload_id)["storage_key"]))
    bad, cause = {
        "dolby-vision": (dolby_vision_av1.read_bytes(), "codec not supported: 'dav1'"),
        "moov-cut": (truncated["moov-cut-at-the-end.mp4"].read_bytes(), TRUNCATED),
        "text": (b"not a video\n" * 100, "not a video"),
    }[replacement]
    stored.write_bytes(bad)
    assert pipeline.process_now(app, upload_id, "test") == lifecycle.FAILED
    row = queries.get_upload(app.db, upload_id)
    assert row["error_category"] == "input" and cause in row["error_message"]
    assert not NOT_A_CAUSE.search(row["error_message"])
