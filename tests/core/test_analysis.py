"""LocalAnalyzer on real images made with Pillow."""

from __future__ import annotations

import random

import pytest
from PIL import Image, ImageDraw, ImageFilter

from core.analysis.local import (
    NEAR_DUPLICATE_BITS,
    Analyzer,
    LocalAnalyzer,
    dhash,
    hamming,
    measure,
    nearest_duplicate,
)
from core.errors import AnalysisError


def scene(path, *, seed=1, brightness=1.0, blur=0, size=(640, 360)):
    rng = random.Random(seed)
    image = Image.new("RGB", size, (90, 110, 100))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        color = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle([x, y, x + rng.randrange(10, 90), y + rng.randrange(10, 90)], fill=color)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if brightness != 1.0:
        image = image.point(lambda v: min(255, int(v * brightness)))
    image.save(path, quality=90)
    return path


def names(analysis):
    return {label.name for label in analysis.labels}


def test_implements_the_protocol():
    assert isinstance(LocalAnalyzer(), Analyzer)


def test_sharp_well_exposed_frame(tmp_path):
    result = LocalAnalyzer().analyze(scene(tmp_path / "a.jpg"))
    assert names(result) == {"sharp", "well-exposed"}
    assert (result.metrics.width, result.metrics.height) == (640, 360)
    assert all(0 < label.confidence <= 100 and label.source == "local" for label in result.labels)


def test_blurry_dark_and_overexposed(tmp_path):
    analyzer = LocalAnalyzer()
    assert "blurry" in names(analyzer.analyze(scene(tmp_path / "b.jpg", blur=4)))
    assert "sharp" in names(analyzer.analyze(scene(tmp_path / "s.jpg", brightness=0.3)))
    assert "dark" in names(analyzer.analyze(scene(tmp_path / "d.jpg", brightness=0.15)))
    assert "overexposed" in names(analyzer.analyze(scene(tmp_path / "o.jpg", brightness=6)))


def test_near_duplicates_are_flagged_and_different_scenes_are_not(tmp_path):
    analyzer = LocalAnalyzer()
    first = analyzer.analyze(scene(tmp_path / "1.jpg", seed=1))
    again = analyzer.analyze(scene(tmp_path / "1b.jpg", seed=1, brightness=1.05),
                             [first.metrics.dhash])
    other = analyzer.analyze(scene(tmp_path / "2.jpg", seed=2), [first.metrics.dhash])
    assert "near-duplicate" in names(again) and again.near_duplicate_of == 0
    assert "near-duplicate" not in names(other) and other.near_duplicate_of is None


def test_dhash_is_64_bits_and_stable(tmp_path):
    path = scene(tmp_path / "h.jpg")
    with Image.open(path) as image:
        value = dhash(image)
    assert 0 <= value < 2 ** 64
    assert measure(path).dhash == measure(path).dhash
    assert hamming(0b1011, 0b0001) == 2
    assert nearest_duplicate(0, [(1 << 20) - 1, 0b111]) == 1
    assert nearest_duplicate(0, [2 ** (NEAR_DUPLICATE_BITS + 1) - 1]) is None


def test_unreadable_frame_is_an_analysis_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(AnalysisError, match="bad.jpg"):
        LocalAnalyzer().analyze(bad)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (4, 4), (1280, 4), (4, 1280), (8, 8)])
def test_tiny_and_thin_pictures_are_measured_without_a_crash(tmp_path, size):
    path = tmp_path / "tiny.jpg"
    image = Image.new("RGB", size, (200, 40, 40))
    image.putpixel((0, 0), (0, 0, 0))
    image.save(path)
    metrics = measure(path)
    assert (metrics.width, metrics.height) == size
    assert 0 <= metrics.brightness <= 255 and metrics.sharpness >= 0
    analysis = LocalAnalyzer().analyze(path)
    assert analysis.labels
