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
