"""core.media against the real bundled ffmpeg on tiny generated clips."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from core import errors, media
from core.media import (
    DEGRADE_LEVELS,
    ExtractedFrame,
    ExtractOptions,
    FFmpegExtractor,
    ProbeResult,
    degrade_plan,
    frame_times,
    probe,
)

# --------------------------------------------------------------------------- probe


def test_probe_h264_mp4_with_audio(clip_with_audio: Path) -> None:
    result = probe(clip_with_audio)
    assert result.duration == pytest.approx(2.0, abs=0.05)
    assert (result.width, result.height) == (320, 240)
    assert result.codec == "h264"
    assert result.fps == pytest.approx(25.0)
    assert result.rotation == 0
    assert result.has_audio is True
    assert "mp4" in result.container.split(",")
    assert result.as_dict() == {
        "duration": result.duration, "width": 320, "height": 240, "codec": "h264",
        "fps": result.fps, "rotation": 0, "has_audio": True, "container": result.container,
    }


def test_probe_vp9_webm(clip_vp9: Path) -> None:
    result = probe(clip_vp9)
    assert result.codec == "vp9"
    assert result.container == "matroska,webm"
    assert (result.width, result.height) == (320, 240)
    assert result.duration == pytest.approx(2.0, abs=0.05)
    assert result.has_audio is True


def test_probe_clip_without_audio(clip_noaudio: Path) -> None:
    result = probe(clip_noaudio)
    assert result.has_audio is False
    assert result.codec == "h264"


def test_probe_rotated_phone_clip_reports_display_size(clip_rotated: Path) -> None:
    result = probe(clip_rotated)
    assert result.rotation == 90
    assert (result.width, result.height) == (240, 320)


@pytest.mark.parametrize("fixture", ["clip_no_duration", "clip_piped_mkv"])
def test_probe_measures_duration_the_container_lacks(fixture: str,
                                                     request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    header = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL).stderr
    assert "Duration: N/A" in header  # otherwise this test proves nothing
    assert probe(path).duration == pytest.approx(3.0, abs=0.15)


@pytest.mark.parametrize(("section", "expected"), [
    ("    Side data:\n      displaymatrix: rotation of -90.00 degrees\n", 90),
    ("    Side data:\n      Display Matrix: rotation of 90.00 degrees\n", 270),
    ("    Side data:\n      Display Matrix: rotation of -180.00 degrees\n", 180),
    ("    Metadata:\n      rotate          : 270\n", 270),
    ("    Metadata:\n      handler_name    : VideoHandler\n", 0),
])
def test_rotation_parsing_old_and_new_ffmpeg_wording(section: str, expected: int) -> None:
    assert media._rotation(section) == expected


@pytest.mark.parametrize(("fixture", "reason"), [
    ("empty_file", "empty"),
    ("text_as_mp4", "not a video"),
    ("truncated_mp4", "truncated"),
    ("audio_only", "no video stream (audio only?)"),
    ("png_as_mp4", "still image"),
    ("missing_path", "not found"),
])
def test_probe_rejects_unusable_files(fixture: str, reason: str,
                                      request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    with pytest.raises(errors.InputError) as caught:
        probe(path, upload_id=7)
    error = caught.value
    assert error.category == errors.INPUT
    assert error.upload_id == 7
    assert error.message.startswith(f"{path.name}: ")
    assert reason in error.message
    assert "\n" not in error.message and "Traceback" not in error.message
    assert str(path.parent) not in error.message  # basename only


@pytest.fixture
def missing_path(tmp_path: Path) -> Path:
    return tmp_path / "gone.mp4"


def test_probe_failure_carries_ffmpeg_evidence(truncated_mp4: Path) -> None:
    with pytest.raises(errors.InputError) as caught:
        probe(truncated_mp4)
    assert caught.value.evidence["returncode"] != 0
    assert "moov atom not found" in caught.value.evidence["stderr_tail"]


def test_probe_timeout_is_an_input_error(clip_h264: Path) -> None:
    with pytest.raises(errors.InputError, match="longer than"):
        probe(clip_h264, timeout=0.001)


# --------------------------------------------------------------------------- planning


def test_frame_times_are_slice_middles() -> None:
    assert frame_times(10.0, 4) == pytest.approx([1.25, 3.75, 6.25, 8.75])
    assert frame_times(3.0, 1) == [1.5]


@pytest.mark.parametrize("duration", [None, 0.0, -1.0])
def test_frame_times_unknown_length_gives_one_frame_at_start(duration: float | None) -> None:
    assert frame_times(duration, 20) == [0.0]


def test_frame_times_never_reach_the_end() -> None:
    times = frame_times(0.1, 1000)
    assert len(times) == 1000
    assert max(times) < 0.1 and min(times) > 0
    assert times == sorted(times)
    with pytest.raises(ValueError):
        frame_times(10.0, 0)


def test_degrade_plan_levels() -> None:
    assert DEGRADE_LEVELS == 3
    indices, options = degrade_plan(0, 20)
    assert indices == list(range(20)) and options == ExtractOptions()
    indices, options = degrade_plan(1, 20)
    assert indices == list(range(0, 20, 2))
    assert (options.max_width, options.threads, options.keyframes_only) == (960, 1, False)
    indices, options = degrade_plan(2, 20)
    assert indices == [0, 4, 8, 12, 16]
    assert (options.max_width, options.threads, options.keyframes_only) == (640, 1, True)


def test_degrade_plan_indices_stay_in_the_full_plan() -> None:
    plans = [set(degrade_plan(level, 37)[0]) for level in range(DEGRADE_LEVELS)]
    assert plans[2] <= plans[1] <= plans[0] == set(range(37))
    assert degrade_plan(2, 1)[0] == [0]


@pytest.mark.parametrize("level", [-1, DEGRADE_LEVELS])
def test_degrade_plan_rejects_unknown_level(level: int) -> None:
    with pytest.raises(ValueError):
        degrade_plan(level, 20)


def test_extract_seeks_on_the_input_side(tmp_path: Path) -> None:
    argv = media.extract_argv(tmp_path / "v.mp4", 12.5, tmp_path / "f.jpg", ExtractOptions())
    assert argv.index("-ss") < argv.index("-i")
    assert argv[argv.index("-ss") + 1] == "12.500"
    assert "-frames:v" in argv and "shell" not in " ".join(argv)


# --------------------------------------------------------------------------- extraction


def _pixels_differ(a: Path, b: Path) -> float:
    with Image.open(a) as first, Image.open(b) as second:
        diff = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
        return sum(ImageStat.Stat(diff).mean) / 3


def _reference_frame(video: Path, timestamp: float, dest: Path) -> Path:
    """The frame at ``timestamp`` decoded the slow, sure way (output-side seek)."""
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
                    "-i", str(video), "-ss", f"{timestamp:.3f}", "-frames:v", "1",
                    "-vf", "scale=out_range=full,format=yuvj420p", "-q:v", "3", "-y",
                    str(dest)], check=True, stdin=subprocess.DEVNULL, timeout=60)
    return dest


@pytest.fixture(params=[FFmpegExtractor], ids=lambda cls: cls.__name__)
def extractor(request: pytest.FixtureRequest) -> media.FrameExtractor:
    return request.param()


class TestFrameExtractorContract:
    """What every FrameExtractor must do."""

    def test_twenty_frames_from_ten_seconds(self, extractor: media.FrameExtractor,
                                            clip_10s: Path, tmp_path: Path) -> None:
        times = frame_times(probe(clip_10s).duration, 20)
        frames = [extractor.extract(clip_10s, t, tmp_path / f"{i:03d}.jpg", ExtractOptions())
                  for i, t in enumerate(times)]
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i:03d}.jpg" for i in range(20)]
        assert [f.timestamp for f in frames] == pytest.approx([0.25 + 0.5 * i for i in range(20)])
        for frame in frames:
            assert isinstance(frame, ExtractedFrame)
            with Image.open(frame.path) as image:
                assert image.format == "JPEG"
                assert image.size == (frame.width, frame.height) == (160, 120)
        digests = {hashlib.sha256(f.path.read_bytes()).hexdigest() for f in frames}
        assert len(digests) == 20  # every seek landed somewhere different
        for index in (3, 17):  # and on the right frame
            reference = _reference_frame(clip_10s, times[index], tmp_path / f"ref{index}.jpeg")
            assert _pixels_differ(frames[index].path, reference) < 2.0

    def test_rotated_clip_gives_portrait_frames(self, extractor: media.FrameExtractor,
                                                clip_rotated: Path, tmp_path: Path) -> None:
        frame = extractor.extract(clip_rotated, 1.0, tmp_path / "f.jpg", ExtractOptions())
        assert (frame.width, frame.height) == (240, 320)
        with Image.open(frame.path) as image:
            assert image.size == (240, 320)

    @pytest.mark.parametrize(("max_width", "expected_width"), [(100, 100), (101, 100),
                                                               (1280, 320)])
    def test_max_width_scales_down_only(self, extractor: media.FrameExtractor, clip_h264: Path,
                                        tmp_path: Path, max_width: int,
                                        expected_width: int) -> None:
        frame = extractor.extract(clip_h264, 0.5, tmp_path / "f.jpg",
                                  ExtractOptions(max_width=max_width))
        assert frame.width == expected_width
        assert frame.height % 2 == 0
        assert abs(frame.height - expected_width * 240 / 320) <= 1

    def test_keyframes_only_returns_the_preceding_keyframe(
            self, extractor: media.FrameExtractor, clip_10s: Path, tmp_path: Path) -> None:
        fast = extractor.extract(clip_10s, 3.7, tmp_path / "fast.jpg",
                                 ExtractOptions(keyframes_only=True))
        keyframe = extractor.extract(clip_10s, 3.0, tmp_path / "key.jpg", ExtractOptions())
        exact = extractor.extract(clip_10s, 3.7, tmp_path / "exact.jpg", ExtractOptions())
        assert _pixels_differ(fast.path, keyframe.path) < 1.0
        assert _pixels_differ(fast.path, exact.path) > 3.0

    def test_seek_past_the_last_frame_retries_earlier(self, extractor: media.FrameExtractor,
                                                      clip_h264: Path, tmp_path: Path) -> None:
        frame = extractor.extract(clip_h264, 1.99, tmp_path / "f.jpg", ExtractOptions())
        assert frame.timestamp == pytest.approx(0.99)
        assert frame.path.stat().st_size > 0

    def test_no_frame_at_all_is_an_input_error(self, extractor: media.FrameExtractor,
                                               clip_h264: Path, tmp_path: Path) -> None:
        dest = tmp_path / "f.jpg"
        with pytest.raises(errors.InputError, match=r"^clip\.mp4: no frame"):
            extractor.extract(clip_h264, 60.0, dest, ExtractOptions())
        assert list(tmp_path.iterdir()) == []

    def test_corrupt_video_leaves_nothing_behind(self, extractor: media.FrameExtractor,
                                                 truncated_mp4: Path, tmp_path: Path) -> None:
        dest = tmp_path / "f.jpg"
        dest.write_bytes(b"earlier frame")
        with pytest.raises(errors.InputError) as caught:
            extractor.extract(truncated_mp4, 1.0, dest, ExtractOptions())
        assert caught.value.message == (
            "truncated.mp4: ffmpeg could not decode a frame at 1.0 s (corrupt or truncated?)")
        assert caught.value.evidence["returncode"] != 0
        assert 0 < len(caught.value.evidence["stderr_tail"].splitlines()) <= 5
        assert dest.read_bytes() == b"earlier frame"
        assert [p.name for p in tmp_path.iterdir()] == ["f.jpg"]


def test_extractor_reports_pids_and_upload_id(clip_h264: Path, tmp_path: Path) -> None:
    pids: list[int] = []
    extractor = FFmpegExtractor(on_spawn=pids.append, upload_id=42)
    extractor.extract(clip_h264, 0.5, tmp_path / "a.jpg", ExtractOptions())
    extractor.extract(clip_h264, 1.99, tmp_path / "b.jpg", ExtractOptions())  # retried once
    assert len(pids) == 3 and all(isinstance(pid, int) and pid > 0 for pid in pids)
    with pytest.raises(errors.InputError) as caught:
        extractor.extract(clip_h264, 60.0, tmp_path / "c.jpg", ExtractOptions())
    assert caught.value.upload_id == 42


def test_extractor_timeout(clip_h264: Path, tmp_path: Path) -> None:
    extractor = FFmpegExtractor(timeout=0.001)
    with pytest.raises(errors.JobTimeoutError) as caught:
        extractor.extract(clip_h264, 0.5, tmp_path / "f.jpg", ExtractOptions())
    assert caught.value.category == errors.TIMEOUT
    assert list(tmp_path.iterdir()) == []


def test_extract_options_are_validated() -> None:
    with pytest.raises(ValueError):
        ExtractOptions(threads=0)
    with pytest.raises(ValueError):
        ExtractOptions(jpeg_quality=40)


def test_probe_result_is_frozen() -> None:
    result = ProbeResult(2.0, 320, 240, "h264", 25.0, 0, False, "mp4")
    with pytest.raises(AttributeError):
        result.width = 1  # type: ignore[misc]


def test_unseekable_raw_stream_is_decoded_from_the_start(clip_no_duration: Path,
                                                         tmp_path: Path) -> None:
    frame = FFmpegExtractor().extract(clip_no_duration, 2.0, tmp_path / "f.jpg",
                                      ExtractOptions())
    assert frame.timestamp == 2.0
    reference = _reference_frame(clip_no_duration, 2.0, tmp_path / "ref.jpeg")
    assert _pixels_differ(frame.path, reference) < 2.0
    start = FFmpegExtractor().extract(clip_no_duration, 0.0, tmp_path / "g.jpg",
                                      ExtractOptions())
    assert _pixels_differ(frame.path, start.path) > 3.0
