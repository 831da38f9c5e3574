"""Frames by plan on the real camera files (tests/media/dev, MANIFEST.md there).

The reference test decodes every file straight through with bare PyAV (no seek, every
frame) and checks each frame the extractor took against the reference frame at the same
timestamp, both turned into pictures by the same :class:`core.media.picture.Picture`:
what it proves is that the walk (seek or read on, keyframe start, corrupt frames
dropped, slots resolved to frames) lands on the right frame. Colour, shape and tone
mapping have their own tests in test_media_real.py.
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from core import errors
from core.media import ExtractOptions, probe
from core.media.decode import PyAVExtractor
from tests.helpers import MEDIA_DEV

REFUSED = {
    "bitmap.mp4": "picture too small: 1x1",
    "sample_still_photo.heic": "is a still image, not a video",
}
FILES = sorted(p.name for p in MEDIA_DEV.iterdir() if p.suffix != ".md")
MAX_MEAN_DIFF = 4.0
"""Per channel, 0..255: a JPEG at quality 92 of the same frame differs by about 1."""


def take_all(video: Path, dest: Path, max_frames: int = 20, *, seek_cost: int | None = None,
             **options):
    facts = probe(video)
    kwargs = {} if seek_cost is None else {"seek_cost": seek_cost}
    with PyAVExtractor(**kwargs).open(video, facts, ExtractOptions(**options)) as source:
        times = source.plan(max_frames)
        results = list(source.take(range(len(times)), lambda i: dest / f"{i:03d}.jpg"))
        cost = (source.decoded_count, source.restarts)
    assert [r.slot for r in results] == list(range(len(times)))
    return facts, times, [r.frame for r in results], cost


def reference_frames(video: Path, facts, stamps: set[float], max_width: int) -> dict:
    """Every frame of a straight decode from the start, as pictures, by timestamp."""
    from core.media.picture import Picture

    picture = Picture(facts, max_width)
    found = {}
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            stamp = round(float(frame.pts * stream.time_base) - facts.start, 6)
            stamp = 0.0 if -1e-3 < stamp <= 0 else stamp
            if stamp in stamps:
                found[stamp] = picture.image(frame)
    return found


def mean_diff(path: Path, reference: Image.Image) -> float:
    with Image.open(path) as image:
        diff = ImageChops.difference(image.convert("RGB"), reference.convert("RGB"))
        return max(ImageStat.Stat(diff).mean)


@pytest.mark.parametrize(("max_frames", "seek_cost"), [(20, None), (5, 0)],
                         ids=["20-cheapest", "5-seeking-whenever-nearer"])
@pytest.mark.parametrize("name", FILES)
def test_every_frame_matches_a_straight_decode(name: str, max_frames: int,
                                               seek_cost: int | None, tmp_path: Path) -> None:
    video = MEDIA_DEV / name
    if name in REFUSED:
        with pytest.raises(errors.InputError) as caught:
            probe(video)
        assert caught.value.message == f"{name}: {REFUSED[name]}"
        return
    facts, times, frames, _ = take_all(video, tmp_path, max_frames, seek_cost=seek_cost)
    assert frames and all(f is not None for f in frames)
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(set(stamps)), stamps  # strictly increasing: never one twice
    assert stamps == times
    reference = reference_frames(video, facts, set(stamps), ExtractOptions().max_width)
    assert set(reference) == set(stamps), f"not frames of a straight decode: {stamps}"
    for frame in frames:
        assert (frame.width, frame.height) == reference[frame.timestamp].size
        assert mean_diff(frame.path, reference[frame.timestamp]) <= MAX_MEAN_DIFF, frame


def test_android_slow_motion_gives_its_seven_frames_once(tmp_path: Path) -> None:
    _, _, frames, _ = take_all(MEDIA_DEV / "sample_android_slow_motion.mp4", tmp_path)
    assert [f.timestamp for f in frames] == pytest.approx(
        [0.0, 0.325, 0.359, 0.392, 0.425, 0.459, 0.492], abs=1e-3)


def slide(path: Path) -> tuple[float, float]:
    with Image.open(path) as image:
        stat = ImageStat.Stat(image.convert("L"))
        return stat.mean[0], stat.stddev[0]


@pytest.mark.parametrize(("max_frames", "seek_cost"), [(20, None), (3, 0)])
def test_h263_frames_are_all_the_slide_not_grey(tmp_path: Path, max_frames: int,
                                                seek_cost: int | None) -> None:
    video = MEDIA_DEV / "sample_h263.ts"
    _, _, frames, (_, restarts) = take_all(video, tmp_path, max_frames, seek_cost=seek_cost)
    if seek_cost == 0:
        assert restarts > 1  # the keyframes at 0.48 and 0.96 s were reached by seeking
    # The white "ExoPlayer ad test" slide: bright with dark text. Flat grey is ~128, ~0.
    for frame in frames:
        mean, stddev = slide(frame.path)
        assert mean > 230 and stddev > 20, (frame, mean, stddev)
    # Fresh sources asked for single late frames seek first, and still show the slide.
    facts = probe(video)
    for at in (0.3, 0.5, 0.9):
        with PyAVExtractor().open(video, facts, ExtractOptions()) as source:
            frame = source.extract(at, tmp_path / f"at{at}.jpg")
            assert source.restarts >= 1
        assert at - 0.041 < frame.timestamp <= at
        mean, stddev = slide(frame.path)
        assert mean > 230 and stddev > 20, (frame, mean, stddev)
