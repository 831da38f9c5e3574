"""HDR10 tone mapping keeps hues (issue #21 item 3), against a real zscale chain.

The references in tests/media/reference/ were made by Debian 12's ffmpeg 5.1 (which has
``zscale``) with ``zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,
tonemap=tonemap=hable,zscale=t=bt709:m=bt709:r=pc`` and an area downscale; the exact
commands are in that folder's README.md. PeakOps' picture of the same frame is compared
by hue block by block, and its highlights by how many pixels clip.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from core.media import ExtractOptions, probe
from core.media.decode import PyAVExtractor
from core.media.picture import Picture
from core.media.tonemap import hable, pq_to_linear, tone_map
from tests.helpers import MEDIA_DEV, REPO

REFERENCE = REPO / "tests" / "media" / "reference"
BLOCK = 8
MAX_HUE_DEGREES = 10.0


def decoded_picture(name: str, width: int, number: int) -> Image.Image:
    """Frame ``number`` (in decode order, as ffmpeg's ``select=eq(n,...)``) as PeakOps shows it."""
    video = MEDIA_DEV / name
    facts = probe(video)
    assert facts.color_transfer == "smpte2084" and facts.color_primaries == "bt2020"
    with av.open(str(video)) as container:
        for n, frame in enumerate(container.decode(container.streams.video[0])):
            if n == number:
                return Picture(facts, width).image(frame)
    raise AssertionError(f"{name} has no frame {number}")


def reference(name: str) -> Image.Image:
    with Image.open(REFERENCE / f"{Path(name).stem}.hable.png") as image:
        return image.convert("RGB")


def block_hsv(image: Image.Image) -> list[tuple[float, float, float]]:
    """Hue (degrees), saturation, value of each BLOCK x BLOCK block's mean colour."""
    small = image.resize((image.width // BLOCK, image.height // BLOCK), Image.BOX)
    hsv = []
    for r, g, b in small.get_flattened_data():
        h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        hsv.append((h * 360, s, v))
    return hsv


def hue_gap(a: float, b: float) -> float:
    return min(abs(a - b), 360 - abs(a - b))


def clipped(image: Image.Image) -> float:
    """The share of pixels with a channel at 255 (a highlight cut flat)."""
    return sum(1 for p in image.get_flattened_data() if max(p) >= 255) / (image.width * image.height)


@pytest.mark.parametrize(("name", "width", "number"), [
    ("hdr10-video-with-sdr-container.mp4", 384, 0),  # a roof under a deep-blue sky
    ("hdr10-av1.mp4", 216, 64),  # roofs, a crane and clouds in a paler sky
])
def test_tone_mapped_hues_match_the_zscale_hable_chain(name: str, width: int,
                                                       number: int) -> None:
    ours, theirs = decoded_picture(name, width, number), reference(name)
    assert ours.size == theirs.size
    coloured = [(o, t) for o, t in zip(block_hsv(ours), block_hsv(theirs), strict=True)
                if t[1] > 0.25 and t[2] > 0.15]  # hue means something there
    assert len(coloured) > 50
    gaps = sorted(hue_gap(o[0], t[0]) for o, t in coloured)
    assert gaps[int(len(gaps) * 0.95)] <= MAX_HUE_DEGREES, gaps[-10:]
    assert max(ImageStat.Stat(ImageChops.difference(ours, theirs)).mean) <= 3.0
    # Highlights roll off as in the reference, not cut flat at white.
    assert clipped(ours) <= clipped(theirs) + 0.002


def test_the_deep_blue_sky_stays_blue(tmp_path: Path) -> None:
    """Issue #21 item 3: swscale's perceptual intent gave (135,105,155), magenta, in the
    upper right of the sky, where the zscale chain gives deep blue. Through the job's
    own extractor, every frame taken."""
    video = MEDIA_DEV / "hdr10-video-with-sdr-container.mp4"
    facts = probe(video)
    with PyAVExtractor().open(video, facts, ExtractOptions(max_width=384)) as source:
        times = source.plan(6)
        frames = [r.frame for r in source.take(range(len(times)), lambda i: tmp_path / f"{i}.jpg")]
    assert len(frames) == 6
    sky = reference("hdr10-video-with-sdr-container.mp4").crop((230, 10, 330, 40))
    sky_hue, _, _ = block_hsv(sky.resize((BLOCK, BLOCK)))[0]
    assert 200 <= sky_hue <= 225  # the reference: a deep blue
    for frame in frames:
        with Image.open(frame.path) as image:
            hue, saturation, _ = block_hsv(image.convert("RGB").crop((230, 10, 330, 40))
                                           .resize((BLOCK, BLOCK)))[0]
        assert hue_gap(hue, sky_hue) <= MAX_HUE_DEGREES and saturation > 0.5, (frame, hue)


def test_the_chain_pieces_are_the_published_curves() -> None:
    """PQ's reference points (ST 2084) and the mapped white, from the formulas' own numbers."""
    assert pq_to_linear(0.0) == 0.0
    assert pq_to_linear(1.0) == pytest.approx(100.0)  # 10,000 nits
    assert pq_to_linear(0.5081) == pytest.approx(1.0, rel=2e-3)  # 100 nits
    white = tone_map(1.0, 1.0, 1.0, 100.0)  # the brightest PQ white at a 10,000-nit peak
    assert white == pytest.approx((1.0, 1.0, 1.0), abs=1e-6)
    grey = tone_map(0.5081, 0.5081, 0.5081, 10.0)  # 100 nits at a 1000-nit peak: grey
    expected = (hable(1.0) / hable(10.0)) ** (1 / 2.4)
    assert grey == pytest.approx((expected,) * 3, abs=2e-3)


def test_a_scratch_folder_with_filter_syntax_in_its_name_is_fine(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """The table goes to ``lut3d`` by file name, inside a filter's argument string."""
    import tempfile

    odd = tmp_path / "scratch:it's"
    odd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(odd))
    ours = decoded_picture("hdr10-video-with-sdr-container.mp4", 384, 0)
    theirs = reference("hdr10-video-with-sdr-container.mp4")
    assert max(ImageStat.Stat(ImageChops.difference(ours, theirs)).mean) <= 3.0
    assert list(odd.iterdir()) == []  # the table was removed once read
