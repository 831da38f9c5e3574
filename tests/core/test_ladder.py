"""The degrade ladder per decoder: what each level sets, and that a real decoder takes it
(PyAV on the real AV1 file from tests/media/dev and a generated H.264 clip)."""

from __future__ import annotations

import av
import pytest

from core.media import samples
from core.media.ladder import (
    DAV1D,
    DEGRADE_LEVELS,
    DecoderSetup,
    configure_decoder,
    decoder_setup,
    degrade_plan,
)
from tests.helpers import MEDIA_DEV


def setups(decoder: str, width: int, height: int) -> list[DecoderSetup]:
    return [decoder_setup(decoder, width, height, degrade_plan(level, 20)[1])
            for level in range(DEGRADE_LEVELS)]


def test_levels_bound_threads_and_keyframes_for_every_decoder() -> None:
    for decoder in ("h264", "hevc", "vp9", DAV1D):
        hd, uhd = setups(decoder, 1920, 1080), setups(decoder, 3840, 2160)
        assert [s.thread_count for s in hd] == [2, 1, 1]
        assert [s.thread_count for s in uhd] == [1, 1, 1]  # 4K: one thread from level 0
        assert [s.thread_type for s in hd] == ["AUTO", "SLICE", "SLICE"]
        assert [s.keyframes_only for s in hd] == [False, False, True]  # the last level only


def test_dav1d_gets_its_own_thread_pool_and_frame_delay() -> None:
    assert [dict(s.options) for s in setups(DAV1D, 1920, 1080)] == [
        {"threads": "2", "max_frame_delay": "2"}, {"threads": "1", "max_frame_delay": "1"},
        {"threads": "1", "max_frame_delay": "1"}]
    assert all(s.options == () for s in setups("h264", 1920, 1080))


def decode_all(path, level: int) -> tuple[int, dict, list[bool]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        configure_decoder(context, stream.width, stream.height, degrade_plan(level, 20)[1])
        keys = [frame.key_frame for frame in container.decode(stream)]
        return context.thread_count, dict(context.options), keys


def test_dav1d_takes_the_options_and_the_last_level_decodes_keyframes_only() -> None:
    clip = MEDIA_DEV / "hdr10-av1.mp4"
    threads, left, keys = decode_all(clip, 0)
    assert threads == 2 and left == {}  # dav1d consumed both of its options
    assert len(keys) > 1 and not all(keys)
    _, _, keys = decode_all(clip, DEGRADE_LEVELS - 1)
    assert keys and all(keys)


@pytest.mark.parametrize("level", range(DEGRADE_LEVELS))
def test_h264_levels(tmp_path, level: int) -> None:
    clip = samples.make_clip(tmp_path / "c.mp4", seconds=2, keyint=10)
    threads, _, keys = decode_all(clip, level)
    assert threads == (2 if level == 0 else 1)
    assert all(keys) == (level == DEGRADE_LEVELS - 1) and len(keys) == (
        5 if level == DEGRADE_LEVELS - 1 else 50)


# --------------------------------------------------------------------------- HEVC threads
# An HEVC stream coded with wavefronts (x265's default) or tiles decodes on slice threads,
# which hold no pictures of their own; one without gets what every decoder gets.

def _hevc(path, *params: str):
    import subprocess

    from core.media import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
                    "-c:v", "libx265", "-x265-params", ":".join(["log-level=error", *params]),
                    "-tag:v", "hvc1", str(path)],
                   stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=120)
    return path


def _extradata(path) -> bytes:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.extradata


@pytest.fixture(scope="module")
def hevc_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hevc")
    return {"wavefronts": _hevc(folder / "wpp.mp4"),
            "neither": _hevc(folder / "plain.mp4", "wpp=0")}


def test_the_picture_parameter_sets_say_whether_an_hevc_stream_decodes_in_slices(hevc_clips):
    from core.media.hevc import slice_parallel

    assert slice_parallel(_extradata(hevc_clips["wavefronts"])) is True
    assert slice_parallel(_extradata(hevc_clips["neither"])) is False
    # Phones' HEVC in the dev media: Android's HDR10 and Apple's spatial video.
    for name in ("hdr10-video-with-sdr-container.mp4", "water_180_mvhevc_5frames.mov"):
        assert slice_parallel(_extradata(MEDIA_DEV / name)) is True, name
    record = _extradata(hevc_clips["wavefronts"])
    pps = record.index(b"\x44\x01")  # the PPS NAL header (type 34)
    for broken in (None, b"", b"\x00\x00\x00\x01@\x01", record[:30], record[:pps + 3]):
        assert slice_parallel(broken) is False  # unreadable: not guessed


def test_hevc_in_slices_gets_slice_threads_at_any_size() -> None:
    def threads(parallel: bool, width: int, height: int) -> list[tuple[int, str]]:
        return [(s.thread_count, s.thread_type) for s in (
            decoder_setup("hevc", width, height, degrade_plan(level, 20)[1],
                          slice_parallel=parallel) for level in range(DEGRADE_LEVELS))]

    assert threads(True, 3840, 2160) == [(2, "SLICE"), (1, "SLICE"), (1, "SLICE")]
    assert threads(True, 1920, 1080) == [(2, "SLICE"), (1, "SLICE"), (1, "SLICE")]
    assert threads(False, 3840, 2160) == [(1, "SLICE")] * 3
    assert threads(False, 1920, 1080) == [(2, "AUTO"), (1, "SLICE"), (1, "SLICE")]
    # Only HEVC is judged by its parameter sets.
    assert decoder_setup("h264", 1920, 1080, degrade_plan(0, 20)[1],
                         slice_parallel=True).thread_type == "AUTO"


def test_a_real_hevc_decoder_takes_slice_threads_and_gives_the_same_pictures(hevc_clips):
    def decode(path, threads: int | None):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            context = stream.codec_context
            if threads is None:
                configure_decoder(context, stream.width, stream.height, degrade_plan(0, 20)[1])
            else:
                context.thread_count, context.thread_type = threads, "SLICE"
            setup = (context.thread_count, context.thread_type.name)
            return setup, [bytes(f.planes[0]) for f in container.decode(stream)]

    setup, pictures = decode(hevc_clips["wavefronts"], None)
    assert setup == (2, "SLICE")
    assert len(pictures) == 25 and pictures == decode(hevc_clips["wavefronts"], 1)[1]
    assert decode(hevc_clips["neither"], None)[0] == (2, "AUTO")
