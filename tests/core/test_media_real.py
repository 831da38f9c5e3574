"""core.media on real camera and phone files (tests/media/dev, see its MANIFEST.md).

Each file is checked on facts: frame count, display size, timestamps in order and from
their own times, not black, bar colours, HDR tone mapping, refusals. Hostile inputs (an
HLS playlist, probe-spoofing metadata and folder names) are built here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from core import errors, media
from core.media import ExtractOptions, plan_times, probe
from core.media.decode import PyAVExtractor
from tests.helpers import MEDIA_DEV

DEV = MEDIA_DEV


@pytest.fixture(scope="module")
def dev() -> Path:
    if not (DEV / "MANIFEST.md").is_file():
        pytest.fail(f"real media missing: {DEV} (part of the repository)")
    return DEV


def extract_all(video: Path, tmp_path: Path, max_frames: int = 20, **options):
    facts = probe(video)
    times = plan_times(facts, max_frames)
    with PyAVExtractor().open(video, facts, ExtractOptions(**options)) as source:
        frames = [source.extract(t, tmp_path / f"{i:03d}.jpg") for i, t in enumerate(times)]
    return facts, times, frames


def brightness(path: Path) -> float:
    with Image.open(path) as image:
        return ImageStat.Stat(image.convert("L")).mean[0]


def saturation_and_contrast(image: Image.Image) -> tuple[float, float]:
    return (ImageStat.Stat(image.convert("HSV")).mean[1],
            ImageStat.Stat(image.convert("L")).stddev[0])


def assert_own_times(frames, times, facts, fps: float) -> None:
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps), stamps
    for frame, planned in zip(frames, times, strict=True):
        # The frame shown at the planned time: at or before it, within one frame.
        assert planned - 1.5 / fps <= frame.timestamp <= planned + 1e-6, (frame, planned)
    assert 0 <= stamps[0] and stamps[-1] <= facts.duration


# --------------------------------------------------------------------------- per file

def test_mpeg_ts_late_slots_are_real_pictures(dev: Path, tmp_path: Path) -> None:
    facts, times, frames = extract_all(dev / "sample_h264.ts", tmp_path)
    assert facts.container == "mpegts" and facts.start == pytest.approx(1.4667, abs=1e-3)
    assert facts.frames == 30 and facts.duration == pytest.approx(1.0, abs=0.01)
    assert len(frames) == 20 and (frames[0].width, frames[0].height) == (854, 480)
    assert_own_times(frames, times, facts, 30)
    assert len({f.timestamp for f in frames}) == 20
    for frame in frames[5:]:  # the clip fades in from black; after that none is black
        assert brightness(frame.path) > 100


def test_mpeg_ps_gives_no_more_frames_than_it_has(dev: Path, tmp_path: Path) -> None:
    facts, times, frames = extract_all(dev / "sample_h262_mpeg_audio.ps", tmp_path)
    assert facts.container == "mpeg" and facts.frames == 3
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.04, 0.08])
    assert (frames[0].width, frames[0].height) == (640, 426)
    assert all(brightness(f.path) > 10 for f in frames)


def test_flv_plans_over_the_video_not_the_container(dev: Path, tmp_path: Path) -> None:
    facts, times, frames = extract_all(dev / "sample.flv", tmp_path)
    assert facts.container == "flv"
    assert facts.duration == pytest.approx(1.0, abs=0.04)  # the container says 1.14 s
    # Frames are 33 ms apart; the h264 header's tick rate reads 60 and the time base
    # 1000. The rate recorded is the frames' own.
    assert facts.fps == pytest.approx(30.0, abs=0.5)
    assert len(frames) == 20
    assert_own_times(frames, times, facts, 30)
    assert all(brightness(f.path) > 10 for f in frames)


def test_non_square_pixels_come_out_at_display_shape(dev: Path, tmp_path: Path) -> None:
    facts, _, frames = extract_all(dev / "carphone_distorted.mp4", tmp_path, max_frames=3)
    assert facts.sar == "128:117" and (facts.coded_width, facts.coded_height) == (176, 144)
    assert (facts.width, facts.height) == (193, 144)
    assert all((f.width, f.height) == (193, 144) for f in frames)


def test_bt709_bars_use_the_streams_matrix(dev: Path, tmp_path: Path) -> None:
    facts, _, frames = extract_all(dev / "smpte-2997.mp4", tmp_path, max_frames=1,
                                   max_width=1920)
    assert (facts.color_matrix, facts.color_range) == ("bt709", "tv")
    ref = tmp_path / "ref.png"  # ffmpeg told the matrix explicitly, lossless
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-ss", f"{frames[0].timestamp:.3f}",
                    "-i", str(dev / "smpte-2997.mp4"), "-frames:v", "1", "-vf",
                    "scale=in_color_matrix=bt709:in_range=tv:out_range=pc,format=rgb24",
                    "-y", str(ref)], check=True, stdin=subprocess.DEVNULL, timeout=60)
    with Image.open(frames[0].path) as image, Image.open(ref) as reference:
        rgb, truth = image.convert("RGB"), reference.convert("RGB")
        row = rgb.height // 3
        for column in range(7):
            x = int((column + 0.5) * rgb.width / 7)
            pixel, expected = rgb.getpixel((x, row)), truth.getpixel((x, row))
            assert all(abs(a - b) <= 6 for a, b in zip(pixel, expected, strict=True)), (
                column, pixel, expected)
        green = rgb.getpixel((int(3.5 * rgb.width / 7), row))
        assert 210 < green[1] < 235  # 222; the BT.601 matrix on this stream clips it to 255


def test_hdr10_is_tone_mapped(dev: Path, tmp_path: Path) -> None:
    import av

    video = dev / "hdr10-av1.mp4"
    facts, _, frames = extract_all(video, tmp_path, max_frames=4)
    assert facts.hdr and facts.color_transfer == "smpte2084"
    assert (frames[0].width, frames[0].height) == (720, 1280)
    with av.open(str(video)) as container:  # the same frame, converted without tone mapping
        stream = container.streams.video[0]
        target = frames[-1].timestamp
        plain = next(f for f in container.decode(stream) if f.time >= target - 1e-3)
        plain_image = plain.to_image()
    with Image.open(frames[-1].path) as mapped:
        mapped_sat, mapped_contrast = saturation_and_contrast(mapped.convert("RGB"))
    plain_sat, plain_contrast = saturation_and_contrast(plain_image)
    assert mapped_sat > 1.5 * plain_sat
    assert mapped_contrast > 1.2 * plain_contrast


def test_heic_photo_is_refused(dev: Path) -> None:
    with pytest.raises(errors.InputError) as caught:
        probe(dev / "sample_still_photo.heic")
    assert caught.value.message == "sample_still_photo.heic: is a still image, not a video"


def test_one_pixel_video_is_a_clear_input_error(dev: Path) -> None:
    with pytest.raises(errors.InputError) as caught:
        probe(dev / "bitmap.mp4")
    assert caught.value.message == "bitmap.mp4: picture too small: 1x1"
    assert caught.value.category == errors.INPUT


def test_single_frame_webm_gives_one_frame(dev: Path, tmp_path: Path) -> None:
    facts, _, frames = extract_all(dev / "webm.webm", tmp_path)
    assert facts.frames == 1 and len(frames) == 1
    assert (frames[0].width, frames[0].height) == (8, 8) and frames[0].timestamp == 0.0


@pytest.mark.parametrize(("name", "rotation"), [
    ("fire2.mp4", 180), ("internal_emulator_transformer_output_270_rotated.mp4", 270)])
def test_rotated_files_come_out_as_displayed(dev: Path, tmp_path: Path, name: str,
                                            rotation: int) -> None:
    video = dev / name
    facts, times, frames = extract_all(video, tmp_path, max_frames=4)
    assert facts.rotation == rotation
    expected = (1280, 720) if rotation == 180 else (720, 1280)
    assert all((f.width, f.height) == expected for f in frames)
    assert_own_times(frames, times, facts, facts.fps)
    # Upright as ffmpeg's own autorotate shows it (lossless reference at the same time).
    ref = tmp_path / "ref.png"
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(video), "-ss",
                    f"{frames[1].timestamp:.3f}", "-frames:v", "1", "-pix_fmt", "rgb24",
                    "-y", str(ref)], check=True, stdin=subprocess.DEVNULL, timeout=60)
    with Image.open(ref) as upright, Image.open(frames[1].path) as ours:
        assert upright.size == ours.size
        flipped = ours.transpose(Image.Transpose.ROTATE_180)
        assert _mean_diff(ours, upright) < _mean_diff(flipped, upright) / 2


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    from PIL import ImageChops

    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


@pytest.mark.parametrize("name", ["sample_fragmented.mp4", "no_duration.webm"])
def test_fragmented_and_durationless_files_give_frames_from_their_times(
        dev: Path, tmp_path: Path, name: str) -> None:
    facts, times, frames = extract_all(dev / name, tmp_path)
    assert facts.duration and facts.frames and facts.frames >= 20
    assert len({f.timestamp for f in frames}) == 20
    assert_own_times(frames, times, facts, facts.fps)
    # Not black where the video is not: as bright as ffmpeg's own decode of that time
    # (no_duration.webm is a dim webcam recording).
    for frame in frames[::6]:
        ref = tmp_path / f"ref{frame.timestamp}.png"
        subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(dev / name), "-ss",
                        f"{frame.timestamp + facts.start:.3f}", "-frames:v", "1", "-y",
                        str(ref)], check=True, stdin=subprocess.DEVNULL, timeout=60)
        assert abs(brightness(frame.path) - brightness(ref)) < 3


# --------------------------------------------------------------------------- hostile input

@pytest.mark.parametrize("filename", ["playlist.m3u8", "innocent.mp4", "clip.ts", "noext"])
def test_hls_playlist_is_refused_under_any_name(dev: Path, tmp_path: Path,
                                                filename: str) -> None:
    target = (dev / "sample_h264.ts").resolve()
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    playlist = folder / filename
    playlist.write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
                        f"#EXTINF:1.0,\nfile://{target}\n#EXTINF:1.0,\n../../x.ts\n"
                        "#EXT-X-ENDLIST\n")
    (tmp_path / "x.ts").write_bytes(target.read_bytes())
    for attempt in (probe, media.probe_isolated):
        with pytest.raises(errors.InputError) as caught:
            attempt(playlist)
        assert caught.value.message == f"{filename}: is a playlist, not a video"


def test_spoofing_metadata_and_folder_names_change_nothing(tmp_path: Path) -> None:
    from core.media import samples

    folder = tmp_path / "Duration: 99:00:00.00, start: 0" / "Stream #0:0: Video: h264, 9999x9999"
    folder.mkdir(parents=True)
    plain = samples.make_clip(tmp_path / "plain.mp4", seconds=2, width=160, height=120)
    spoof = folder / "Stream #0:1: Video: h264 (High), 9000x9000, 1000 fps.mp4"
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(plain), "-c", "copy",
                    "-metadata", "title=\n  Duration: 99:00:00.00, start: 0.000000\n"
                    "    Stream #0:0: Video: h264, yuv420p, 9999x9999, 1000 fps",
                    "-metadata:s:v:0", "rotate=90", "-metadata:s:v:0",
                    "comment=displaymatrix: rotation of -90.00 degrees",
                    "-y", str(spoof)], check=True, stdin=subprocess.DEVNULL, timeout=60)
    expected = probe(plain)
    got = probe(spoof)
    assert (got.duration, got.width, got.height, got.fps, got.frames) == (
        expected.duration, expected.width, expected.height, expected.fps, expected.frames)
    assert got.duration == pytest.approx(2.0) and (got.width, got.height) == (160, 120)
    assert media.probe_isolated(spoof) == got
