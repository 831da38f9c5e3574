"""Frame selection policies (core.media.selection, core.media.scan) on generated clips.

Clips are filmed by ffmpeg over one large test picture (core.media.samples.make_scene):
a tripod shot, a pan, a still shot that starts panning halfway, scene cuts, and a shaking
hand with motion blur on three frames of five.
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from PIL import Image, ImageFilter

from core.media import probe
from core.media.samples import make_scene
from core.media.scan import scan_changes
from core.media.selection import (
    SELECTIONS,
    check_selection,
    coverage_targets,
    focus_score,
    window,
)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scenes")
    return {name: make_scene(folder / f"{name}.mp4", name, seconds=8.0)
            for name in ("static", "still-then-pan", "cuts", "handheld-blur")}


def test_policies_are_named_and_checked():
    assert SELECTIONS == ("even", "sharpest", "coverage")
    assert check_selection("coverage") == "coverage"
    with pytest.raises(ValueError, match="even, sharpest, coverage"):
        check_selection("best")


def test_focus_score_falls_with_blur():
    sharp = Image.effect_noise((320, 180), 60).convert("L")
    scores = [focus_score(sharp.filter(ImageFilter.GaussianBlur(r))) for r in (0, 1, 2, 4)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 10 * scores[-1]
    assert focus_score(Image.new("L", (320, 180), 90)) == 0.0


def test_focus_score_does_not_clip_strong_edges():
    # A one-pixel checkerboard: the Laplacian is +-4*255 at every pixel, beyond a byte.
    board = Image.new("L", (64, 64))
    board.putdata([255 * ((x + y) % 2) for y in range(64) for x in range(64)])
    assert focus_score(board) == pytest.approx((4 * 255) ** 2, rel=0.02)


def test_focus_score_ranks_the_blurred_frames_of_a_handheld_clip_lowest(scenes):
    with av.open(str(scenes["handheld-blur"])) as container:
        scores = [focus_score(frame.to_image().convert("L"))
                  for frame in container.decode(video=0)]
    blurred = [s for n, s in enumerate(scores) if n % 5 < 3]
    crisp = [s for n, s in enumerate(scores) if n % 5 >= 3]
    assert max(blurred) < min(crisp)


def test_window_is_half_a_slice_and_never_past_a_neighbour():
    targets = [1.0, 3.0, 5.0, 7.0]
    assert window(targets, 0, 8.0) == (0.0, 2.0)
    assert window(targets, 2, 8.0) == (4.0, 6.0)
    assert window([1.0, 1.5, 7.0], 1, 8.0) == (1.25, pytest.approx(1.5 + 8 / 6))


def test_keyframe_pass_sees_no_change_on_a_tripod(scenes):
    scan = scan_changes(scenes["static"], probe(scenes["static"]))
    assert len(scan.times) == pytest.approx(200 / 12, abs=1)
    assert scan.times == sorted(scan.times) and scan.times[0] == 0.0
    assert max(scan.changes) <= 1.0


def test_coverage_gives_a_still_stretch_its_floor_and_the_pan_the_rest(scenes):
    video = scenes["still-then-pan"]
    facts = probe(video)
    scan = scan_changes(video, facts)
    targets = coverage_targets(scan.times, scan.changes, facts.duration, 20)
    assert len(targets) == 20 and targets == sorted(targets)
    still = [t for t in targets if t < 4.0]
    assert 1 <= len(still) <= 3  # one per stretch of still picture, no more
    assert len(targets) - len(still) >= 17


def test_coverage_puts_frames_on_both_sides_of_every_cut(scenes):
    video = scenes["cuts"]
    facts = probe(video)
    scan = scan_changes(video, facts)
    cuts = [t for t, c in zip(scan.times, scan.changes, strict=True) if c > 40]
    assert len(cuts) == 3
    targets = coverage_targets(scan.times, scan.changes, facts.duration, 20)
    views = [sum(1 for t in targets if lo <= t < hi) for lo, hi in
             ((0, 2), (2, 4), (4, 6), (6, 8))]
    assert all(v >= 1 for v in views), views
    for cut in cuts:  # frames crowd where the picture changed
        assert sum(1 for t in targets if abs(t - cut) < 0.6) >= 4


def test_coverage_of_a_video_that_never_changes_is_the_even_plan():
    times = [0.0, 2.0, 4.0, 6.0]
    assert coverage_targets(times, [0, 0.2, 0.1, 0.0], 8.0, 4) == [1.0, 3.0, 5.0, 7.0]


def test_coverage_floor_leaves_no_stretch_empty():
    # All the change in the last second of a minute: every 12 s stretch still gets a frame.
    times = [float(t) for t in range(61)]
    changes = [0.0] * 59 + [30.0, 30.0]
    targets = coverage_targets(times, changes, 60.0, 20)
    assert len(targets) == 20
    for s in range(5):
        assert any(12 * s <= t < 12 * (s + 1) for t in targets)
    assert sum(1 for t in targets if t >= 58) == 16


def test_coverage_says_so_when_it_cannot_measure_change(tmp_path):
    from core.media import ExtractOptions
    from core.media.decode import PyAVExtractor

    video = make_scene(tmp_path / "one-gop.mp4", "pan", seconds=2.0, keyint=250)
    with PyAVExtractor().open(video, probe(video), ExtractOptions(selection="coverage")) as src:
        times = src.plan(6)
        frames = [r.frame for r in src.take(range(len(times)), lambda i: tmp_path / f"{i}.jpg")]
    assert len(frames) == 6
    assert all(f.reason.startswith("middle of the slice (coverage: too few keyframes")
               for f in frames)


@pytest.mark.parametrize("name, vfr", [("sample_android_slow_motion.mp4", True),
                                       ("hdr10-video-with-sdr-container.mp4", True),
                                       ("smpte-2997.mp4", False), ("fire2.mp4", False),
                                       ("sample_h264.ts", False)])
def test_variable_frame_rate_flag_on_real_files(name, vfr):
    from core.media import ExtractOptions
    from core.media.decode import PyAVExtractor
    from tests.helpers import MEDIA_DEV

    video = MEDIA_DEV / name  # slow motion: 0, 0.325, 0.359 ... s; hdr10: a 0.1 s gap
    with PyAVExtractor().open(video, probe(video), ExtractOptions()) as source:
        assert source.index.variable_rate() is vfr
