"""What the decode walk holds while the decoder works (issue 22: a leaner job child).

Every frame Python holds when the decoder is asked for the next one is a picture the
decoder cannot reuse: at 4K, 12 MB more for the whole job. The walk may hold only the
latest frame (the decoder keeps it as a reference anyway); the ``sharpest`` candidate
waiting for a later frame is held as its finished image instead. Counted with the real
decoder on a clip whose sharpest frames are not the slots' own (motion blur on three
frames of five), with the large-picture threshold lowered so a small clip takes the
4K path.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path

import av
import pytest
from PIL import Image

import core.media.decode as decode
from core.media import probe
from core.media.decode import PyAVExtractor
from core.media.plan import ExtractOptions
from core.media.samples import make_scene


@pytest.fixture(scope="module")
def handheld(tmp_path_factory) -> Path:
    return make_scene(tmp_path_factory.mktemp("scene") / "handheld.mp4", "handheld-blur",
                      seconds=4.0)


def _live_frames() -> int:
    """Frames holding a decoded picture (PyAV keeps an empty one to decode into)."""
    return sum(isinstance(o, av.VideoFrame) and o.width > 0 for o in gc.get_objects())


def _take(video: Path, out: Path, selection: str, monkeypatch, *, large: int):
    monkeypatch.setattr(decode, "LARGE_PICTURE_PIXELS", large)
    held: list[int] = []
    original = decode.PyAVSource._timed_next

    def counting(self, began):
        held.append(_live_frames())
        return original(self, began)

    monkeypatch.setattr(decode.PyAVSource, "_timed_next", counting)
    options = replace(ExtractOptions(), selection=selection)
    out.mkdir()
    facts = probe(video)
    gc.collect()  # nothing left from before this walk (the probe's frame is in a cycle)
    with PyAVExtractor().open(video, facts, options) as source:
        source.plan(8)
        results = [r.frame for r in source.take(range(8), lambda s: out / f"{s}.jpg")]
    monkeypatch.undo()
    return results, held


@pytest.mark.parametrize("selection", ["sharpest", "even"])
def test_the_walk_holds_at_most_the_latest_frame_while_the_decoder_works(
        handheld, tmp_path, monkeypatch, selection):
    frames, held = _take(handheld, tmp_path / "out", selection, monkeypatch, large=0)
    assert len(frames) == 8 and all(frames)
    assert held and max(held) <= 1, f"frames held while decoding: {sorted(set(held))}"
    if selection == "sharpest":  # the clip makes it choose frames other than the slots'
        assert any(f.reason.startswith("sharpest") for f in frames)


def test_a_candidate_kept_as_its_image_is_the_same_picture(handheld, tmp_path, monkeypatch):
    kept, _ = _take(handheld, tmp_path / "kept", "sharpest", monkeypatch, large=0)
    held, _ = _take(handheld, tmp_path / "held", "sharpest", monkeypatch, large=10**9)
    assert [f.source_time for f in kept] == [f.source_time for f in held]
    for a, b in zip(kept, held, strict=True):
        assert Image.open(a.path).tobytes() == Image.open(b.path).tobytes()
