"""core.media (PyAV) on tiny generated clips: probe, plan and the FrameExtractor contract.

Real camera files are in tests/core/test_media_real.py.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from core import errors, media
from core.media import (
    DEGRADE_LEVELS,
    ExtractedFrame,
    ExtractOptions,
    ProbeResult,
    decode_threads,
    degrade_plan,
    frame_times,
    plan_times,
    probe,
)
from core.media.decode import PyAVExtractor

# --------------------------------------------------------------------------- probe


def test_probe_h264_mp4_with_audio(clip_with_audio: Path) -> None:
    result = probe(clip_with_audio)
    assert result.duration == pytest.approx(2.0, abs=0.05)
    assert (result.width, result.height) == (320, 240)
    assert result.codec == "h264"
    assert result.fps == pytest.approx(25.0)
    assert result.frames == 50 and result.frames_exact
    assert result.rotation == 0
    assert result.has_audio is True
    assert "mp4" in result.container.split(",")
    assert result.pix_fmt == "yuv420p"
    assert ProbeResult.from_json(result.to_json()) == result


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
    assert (result.coded_width, result.coded_height) == (320, 240)


@pytest.mark.parametrize("fixture", ["clip_no_duration", "clip_piped_mkv"])
def test_probe_measures_duration_the_container_lacks(fixture: str,
                                                     request: pytest.FixtureRequest) -> None:
    import av

    path: Path = request.getfixturevalue(fixture)
    with av.open(str(path)) as container:
        assert container.streams.video[0].duration is None  # else this test proves nothing
    result = probe(path)
    assert result.duration == pytest.approx(3.0, abs=0.15)
    assert result.frames == 75


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


def test_gif_is_a_video_only_with_more_than_one_frame(tmp_path: Path) -> None:
    def gif(name: str, frames: int) -> Path:
        path = tmp_path / name
        subprocess.run([media.ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=64x48:rate=10", "-frames:v", str(frames), "-y", str(path)],
                       check=True, stdin=subprocess.DEVNULL, timeout=60)
        return path

    assert probe(gif("moving.gif", 5)).frames == 5
    with pytest.raises(errors.InputError, match=r"^still\.gif: is a still image, not a video$"):
        probe(gif("still.gif", 1))


@pytest.fixture
def missing_path(tmp_path: Path) -> Path:
    return tmp_path / "gone.mp4"


def test_probe_in_a_child_gives_the_same_facts(clip_rotated: Path) -> None:
    assert media.probe_isolated(clip_rotated) == probe(clip_rotated)


def test_probe_child_refusal_is_one_line_with_the_given_name(png_as_mp4: Path) -> None:
    with pytest.raises(errors.InputError) as caught:
        media.probe_isolated(png_as_mp4, upload_id=3, name="shown name.mp4")
    assert caught.value.message == "shown name.mp4: is a still image, not a video"
    assert caught.value.upload_id == 3


def test_probe_child_memory_cap_is_a_clear_input_error(clip_h264: Path) -> None:
    """A cap too small for libav to load stands in for a header that allocates too much."""
    if sys.platform != "linux":
        pytest.fail("RLIMIT_AS is enforced on Linux, where this suite runs")
    with pytest.raises(errors.InputError, match=r"^clip\.mp4: reading the video header needed "
                                                r"more than 40 MB"):
        media.probe_isolated(clip_h264, memory_mb=40)


def test_importing_core_media_loads_no_libav() -> None:
    code = ("import sys, core.media, core.app, core.intake, core.jobs.pipeline, core.jobs.supervisor, "
            "batch.worker, desktop.app; "
            "print([m for m in sys.modules if m == 'av' or m.startswith('av.')])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"


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


def test_plan_never_has_more_slots_than_frames() -> None:
    facts = ProbeResult(0.12, 640, 426, "mpeg2video", 25.0, 0, False, "mpeg", frames=3)
    assert plan_times(facts, 20) == pytest.approx([0.02, 0.06, 0.10])
    single = ProbeResult(0.001, 8, 8, "vp8", None, 0, False, "matroska,webm", frames=1)
    assert len(plan_times(single, 20)) == 1


def test_decode_threads_by_picture_size() -> None:
    assert decode_threads(1920, 1080, 2) == 2
    assert decode_threads(3840, 2160, 2) == 1
    assert decode_threads(320, 240, 1) == 1


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


# --------------------------------------------------------------------------- extraction


JPEG_NOISE = 10.0
"""Mean difference a JPEG of testsrc2's saturated bars shows against the lossless frame
(measured 6-8.5 at 160x120: chroma subsampling on one-colour columns)."""


def _pixels_differ(a: Path, b: Path) -> float:
    with Image.open(a) as first, Image.open(b) as second:
        diff = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
        return sum(ImageStat.Stat(diff).mean) / 3


def _reference_frame(video: Path, timestamp: float, dest: Path) -> Path:
    """The frame at ``timestamp`` decoded the slow, sure way (output-side seek), lossless."""
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
                    "-i", str(video), "-ss", f"{timestamp:.3f}", "-frames:v", "1",
                    "-pix_fmt", "rgb24", "-y", "-f", "image2", "-c:v", "png",
                    str(dest)], check=True, stdin=subprocess.DEVNULL, timeout=60)
    return dest


def _open(video: Path, options: ExtractOptions | None = None, **kwargs: object):
    return PyAVExtractor(**kwargs).open(video, probe(video), options or ExtractOptions())


@pytest.fixture(params=[PyAVExtractor], ids=lambda cls: cls.__name__)
def extractor(request: pytest.FixtureRequest) -> media.FrameExtractor:
    return request.param()


class TestFrameExtractorContract:
    """What every FrameExtractor must do."""

    def test_twenty_frames_from_ten_seconds(self, extractor: media.FrameExtractor,
                                            clip_10s: Path, tmp_path: Path) -> None:
        facts = probe(clip_10s)
        times = plan_times(facts, 20)
        with extractor.open(clip_10s, facts, ExtractOptions()) as source:
            frames = [source.extract(t, tmp_path / f"{i:03d}.jpg") for i, t in enumerate(times)]
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i:03d}.jpg" for i in range(20)]
        # The frame shown at each time: the last one at or before it (25 fps).
        assert [f.timestamp for f in frames] == pytest.approx(
            [int(25 * t) / 25 for t in times])
        for frame in frames:
            assert isinstance(frame, ExtractedFrame)
            with Image.open(frame.path) as image:
                assert image.format == "JPEG"
                assert image.size == (frame.width, frame.height) == (160, 120)
        digests = {hashlib.sha256(f.path.read_bytes()).hexdigest() for f in frames}
        assert len(digests) == 20  # every seek landed somewhere different
        for index in (3, 17):  # and on the right frame: ffmpeg's own, not a neighbour's
            own = _reference_frame(clip_10s, frames[index].timestamp, tmp_path / f"r{index}.png")
            near = _reference_frame(clip_10s, frames[index].timestamp + 0.2,
                                    tmp_path / f"n{index}.png")
            assert _pixels_differ(frames[index].path, own) < JPEG_NOISE
            assert _pixels_differ(frames[index].path, own) < _pixels_differ(frames[index].path, near)

    def test_rotated_clip_gives_portrait_frames(self, extractor: media.FrameExtractor,
                                                clip_rotated: Path, tmp_path: Path) -> None:
        with extractor.open(clip_rotated, probe(clip_rotated), ExtractOptions()) as source:
            frame = source.extract(1.0, tmp_path / "f.jpg")
        assert (frame.width, frame.height) == (240, 320)
        with Image.open(frame.path) as image:
            assert image.size == (240, 320)

    @pytest.mark.parametrize(("max_width", "expected_width"), [(100, 100), (101, 101),
                                                               (1280, 320)])
    def test_max_width_scales_down_only(self, extractor: media.FrameExtractor, clip_h264: Path,
                                        tmp_path: Path, max_width: int,
                                        expected_width: int) -> None:
        options = ExtractOptions(max_width=max_width)
        with extractor.open(clip_h264, probe(clip_h264), options) as source:
            frame = source.extract(0.5, tmp_path / "f.jpg")
        assert frame.width == expected_width
        assert abs(frame.height - expected_width * 240 / 320) <= 1

    def test_keyframes_only_returns_the_preceding_keyframe(
            self, extractor: media.FrameExtractor, clip_10s: Path, tmp_path: Path) -> None:
        facts = probe(clip_10s)
        with extractor.open(clip_10s, facts, ExtractOptions(keyframes_only=True)) as source:
            fast = source.extract(3.7, tmp_path / "fast.jpg")
        with extractor.open(clip_10s, facts, ExtractOptions()) as source:
            keyframe = source.extract(3.0, tmp_path / "key.jpg")
            exact = source.extract(3.7, tmp_path / "exact.jpg")
        assert fast.timestamp == pytest.approx(3.0)  # its own time, not the one asked for
        assert exact.timestamp == pytest.approx(3.68)
        assert _pixels_differ(fast.path, keyframe.path) < 1.0
        assert _pixels_differ(fast.path, exact.path) > 3.0

    def test_past_the_last_frame_gives_the_last_frame(self, extractor: media.FrameExtractor,
                                                      clip_h264: Path, tmp_path: Path) -> None:
        with extractor.open(clip_h264, probe(clip_h264), ExtractOptions()) as source:
            late = source.extract(1.99, tmp_path / "f.jpg")
            beyond = source.extract(60.0, tmp_path / "g.jpg")
        assert late.timestamp == beyond.timestamp == pytest.approx(1.96)  # 2 s at 25 fps
        assert _pixels_differ(late.path, beyond.path) < 0.5

    def test_corrupt_video_leaves_nothing_behind(self, extractor: media.FrameExtractor,
                                                 clip_10s: Path, tmp_path: Path) -> None:
        facts = probe(clip_10s)
        broken = tmp_path / "broken.mp4"
        data = bytearray(clip_10s.read_bytes())
        data[len(data) // 3:] = bytes(len(data) - len(data) // 3)  # zeros after the first third
        broken.write_bytes(bytes(data))
        dest = tmp_path / "out" / "f.jpg"
        dest.parent.mkdir()
        dest.write_bytes(b"earlier frame")
        try:
            with extractor.open(broken, facts, ExtractOptions()) as source:
                source.extract(9.0, dest)
        except errors.InputError as exc:
            assert exc.message.startswith("broken.mp4: ")
            assert "\n" not in exc.message
            assert dest.read_bytes() == b"earlier frame"
        else:  # libav may conceal the damage; then the file is a whole JPEG
            with Image.open(dest) as image:
                assert image.format == "JPEG"
        assert [p.name for p in dest.parent.iterdir()] == ["f.jpg"]


def test_timestamps_stay_in_order_and_unique(clip_10s: Path, tmp_path: Path) -> None:
    with _open(clip_10s) as source:
        stamps = [source.extract(t, tmp_path / f"{i}.jpg").timestamp
                  for i, t in enumerate(frame_times(10.0, 60))]
    assert stamps == sorted(stamps)


def test_extractor_timeout(clip_h264: Path, tmp_path: Path) -> None:
    with _open(clip_h264, timeout=0.0) as source:
        with pytest.raises(errors.JobTimeoutError) as caught:
            source.extract(0.5, tmp_path / "f.jpg")
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


def test_raw_stream_without_index_gives_exact_frames(clip_no_duration: Path,
                                                     tmp_path: Path) -> None:
    with _open(clip_no_duration) as source:
        frame = source.extract(2.0, tmp_path / "f.jpg")
        assert frame.timestamp == pytest.approx(2.0)
        reference = _reference_frame(clip_no_duration, 2.0, tmp_path / "ref.png")
        assert _pixels_differ(frame.path, reference) < JPEG_NOISE
    with _open(clip_no_duration) as source:
        start = source.extract(0.0, tmp_path / "g.jpg")
    assert start.timestamp == 0.0
    assert _pixels_differ(frame.path, start.path) > 3.0
