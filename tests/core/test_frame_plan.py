"""The plan by frames (core.media.plan, no libav): slots resolved to distinct frames."""

from __future__ import annotations

from fractions import Fraction

import pytest

from core.media.plan import FrameIndex, resolve_slots, seek_pays

MS = Fraction(1, 1000)


def index(pts: list[int], keys: list[int] | None = None, *, seekable: bool = True) -> FrameIndex:
    return FrameIndex(pts=pts, keys=frozenset(keys if keys is not None else pts[:1]),
                      time_base=MS, start=pts[0] / 1000, seekable=seekable)


def test_each_slot_takes_its_nearest_frame_when_frames_are_dense() -> None:
    times = [i / 25 for i in range(250)]
    chosen = resolve_slots(times, [0.25, 5.01, 9.99])
    assert [times[i] for i in chosen] == pytest.approx([0.24, 5.0, 9.96])


def test_slots_never_share_a_frame_and_stay_in_order() -> None:
    # Slow motion: one frame, a long pause, then a burst (sample_android_slow_motion.mp4).
    times = [0.0, 0.325, 0.359, 0.392, 0.425, 0.459, 0.492, 0.6, 0.7]
    targets = [0.03 * (i + 0.5) for i in range(8)]
    chosen = resolve_slots(times, targets)
    assert chosen == sorted(set(chosen)) and len(chosen) == 8
    assert chosen[0] == 0  # the first slot keeps its own frame


def test_slots_give_way_backwards_at_the_end() -> None:
    times = [0.0, 1.0, 2.0, 3.0]
    assert resolve_slots(times, [2.9, 2.95, 3.0]) == [1, 2, 3]
    with pytest.raises(ValueError):
        resolve_slots(times, [0, 1, 2, 3, 4])


def test_fewer_frames_than_slots_gives_every_frame_once() -> None:
    pts = [0, 325, 359, 392, 425, 459, 492]
    assert index(pts).plan(20) == pts


def test_plan_spreads_over_the_frames_span() -> None:
    pts = [40 * i for i in range(100)]  # 4.0 s at 25 fps
    planned = index(pts).plan(4)
    assert planned == [480, 1480, 2480, 3480]


def test_a_huge_gap_gives_distinct_frames_not_copies() -> None:
    # #23 item 11: a 100,000 s gap used to give six identical frames.
    pts = [0, 40, 80, 120, 100_000_000, 100_000_040, 100_000_080]
    planned = index(pts).plan(6)
    assert len(set(planned)) == 6 and planned == sorted(planned)


def test_keyframes_only_takes_the_nearest_keyframe_not_taken() -> None:
    pts = [40 * i for i in range(100)]
    frames = index(pts, keys=[0, 1000, 2000, 3000])
    assert frames.nearest_keys([480, 1480, 2480, 3480]) == [0, 1000, 2000, 3000]
    assert frames.nearest_keys([1480, 2480], taken=[2000]) == [1000, 3000]
    # More slots than keyframes: each keyframe once, the other slots get none.
    assert frames.nearest_keys([0, 40, 80, 2000, 2040], taken=[1000, 3000]) == [
        0, None, None, 2000, None]


def test_seek_or_read_on_by_cost() -> None:
    pts = list(range(0, 10_000, 40))  # 10 s at 25 fps, a keyframe every 2 s
    frames = index(pts, keys=list(range(0, 10_000, 2000)))
    assert seek_pays(frames, None, 5000)                 # nothing running: start
    assert not seek_pays(frames, 4000, 4400)             # 10 frames on: read on
    assert seek_pays(frames, 200, 9960)                  # far: seek to 8.0 s
    assert not seek_pays(frames, 6000, 7960)             # same GOP: read on
    assert seek_pays(frames, 5000, 4000)                 # behind us: only a seek goes back
    raw = index(pts, keys=[0], seekable=False)
    assert not seek_pays(raw, 200, 9960)                 # a raw stream only reads on
    # Keyframes only (the ladder's last level) restarts even at the very next keyframe:
    # the seek's flush frees the keyframe shown last (issue 22), at any seek cost.
    assert seek_pays(frames, 2000, 4000, keys_only=True, seek_cost=1000)
    assert not seek_pays(raw, 0, 4000, keys_only=True)   # unless it cannot seek
