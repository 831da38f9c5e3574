"""The near-duplicate threshold against its calibration table (docs/near-duplicates.md),
and on clips filmed here: a tripod shot is all duplicates, a drone-like pan none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.analysis.local import NEAR_DUPLICATE_BITS, REVISIT_BITS, LocalAnalyzer
from core.media import ExtractOptions, probe
from core.media.decode import PyAVExtractor
from core.media.samples import make_scene
from tests.helpers import REPO

TABLE = REPO / "docs" / "near-duplicates.md"


def calibration_pairs() -> list[dict]:
    text = TABLE.read_text(encoding="utf-8").split("## Pairs", 1)[1]
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"\d+-\d+", cells[1]):
            rows.append({"clip": cells[0], "distance": int(cells[3]), "truth": cells[4],
                         "verdict": cells[5]})
    return rows


def test_the_table_is_the_threshold_in_force():
    rows = calibration_pairs()
    assert len(rows) >= 150 and {r["truth"] for r in rows} == {"same view", "moved"}
    for row in rows:
        expected = "duplicate" if row["distance"] <= NEAR_DUPLICATE_BITS else "distinct"
        assert row["verdict"] == expected, row


def test_no_moving_camera_or_new_scene_is_a_duplicate():
    moved = [r for r in calibration_pairs() if r["truth"] == "moved"]
    assert {"pan", "coast", "cuts", "fire2.mp4"} <= {r["clip"] for r in moved}
    assert min(r["distance"] for r in moved) > NEAR_DUPLICATE_BITS


def test_held_test_cards_and_tripod_shots_are_duplicates():
    held = [r for r in calibration_pairs() if r["clip"] in
            ("static", "smpte-2997.mp4", "sample_h263.ts", "hdr10-video-with-sdr-container.mp4")]
    assert len(held) == 4 * 19
    assert all(r["verdict"] == "duplicate" for r in held)


def analyse_clip(video: Path, folder: Path, count: int = 20):
    analyzer = LocalAnalyzer()
    with PyAVExtractor().open(video, probe(video), ExtractOptions()) as source:
        times = source.plan(count)
        frames = [r.frame for r in source.take(range(len(times)),
                                               lambda i: folder / f"{i:03d}.jpg")]
    hashes, results = [], []
    for frame in frames:
        result = analyzer.analyze(frame.path, hashes)
        hashes.append(result.metrics.dhash)
        results.append(result)
    return results


def test_a_tripod_shot_duplicates_the_frame_before(tmp_path):
    video = make_scene(tmp_path / "static.mp4", "static", seconds=4.0)
    results = analyse_clip(video, tmp_path)
    assert results[0].near_duplicate_of is None
    assert [r.near_duplicate_of for r in results[1:]] == list(range(len(results) - 1))
    assert all("near-duplicate" in {lb.name for lb in r.labels} for r in results[1:])


def test_a_drone_along_a_coast_has_no_duplicates(tmp_path):
    video = make_scene(tmp_path / "coast.mp4", "coast", seconds=12.0)
    results = analyse_clip(video, tmp_path)
    assert [r.near_duplicate_of for r in results] == [None] * len(results)


@pytest.mark.parametrize("earlier, expected", [(REVISIT_BITS, 0), (REVISIT_BITS + 1, None)])
def test_an_earlier_frame_counts_only_when_the_view_is_the_same_again(earlier, expected):
    from core.analysis.local import nearest_duplicate

    far = (1 << 40) - 1  # the frame just before is far away
    assert nearest_duplicate(0, [(1 << earlier) - 1, far]) == expected
