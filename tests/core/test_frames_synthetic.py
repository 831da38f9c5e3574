"""Frames by plan on clips made here with ffmpeg: variable frame rate, edit lists, an index
that promises frames the stream does not hold, an AVI header claiming more frames than
it has, a raw H.264 stream longer than any decode-from-start cap, and a 100,000 s gap.

Every case checks the same promises: timestamps strictly increasing and distinct, every
frame one a straight decode gives at that time, fewer frames (with the reason) rather
than a frame twice.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from core.media import ExtractOptions, ffmpeg_exe, samples
from core.media.decode import PyAVExtractor


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                   check=True, stdin=subprocess.DEVNULL, timeout=600)


def encode(dest: Path, *, seconds: float = 2, fps: int = 25, vf: str | None = None,
           keyint: int = 10, size: str = "160x120", extra: tuple[str, ...] = ()) -> Path:
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds:g}"]
    if vf:
        args += ["-vf", vf, "-fps_mode", "passthrough"]
    ffmpeg(*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           "-g", str(keyint), "-keyint_min", str(keyint), "-sc_threshold", "0", *extra,
           str(dest))
    return dest


def probe(video: Path):
    from core.media.probing import probe as probe_here  # loads libav: imported when used

    return probe_here(video)


def take(video: Path, dest: Path, max_frames: int = 20, slots=None, *, seek_cost=None,
         **options):
    kwargs = {} if seek_cost is None else {"seek_cost": seek_cost}
    with PyAVExtractor(**kwargs).open(video, probe(video), ExtractOptions(**options)) as source:
        times = source.plan(max_frames)
        wanted = range(len(times)) if slots is None else slots
        results = list(source.take(wanted, lambda i: dest / f"{i:03d}.jpg"))
        return times, results, source.index


def straight_decode(video: Path, start: float = 0.0) -> dict[float, Image.Image]:
    found = {}
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            stamp = round(float(frame.pts * stream.time_base) - start, 6)
            found[0.0 if -1e-3 < stamp <= 0 else stamp] = frame.to_image()
    return found


def assert_distinct_and_right(results, video: Path, start: float = 0.0) -> list[float]:
    frames = [r.frame for r in results if r.frame is not None]
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(set(stamps)), stamps
    reference = straight_decode(video, start)
    for frame in frames:
        assert frame.timestamp in reference, (frame.timestamp, sorted(reference)[:10])
        with Image.open(frame.path) as image:
            diff = ImageChops.difference(image.convert("RGB"), reference[frame.timestamp])
        assert max(ImageStat.Stat(diff).mean) <= 10, frame  # testsrc2's bars in a JPEG: <10
    return stamps


def test_variable_frame_rate_burst_gives_each_frame_once(tmp_path: Path) -> None:
    # Slow motion as phones write it: one frame, a pause, then a fast burst.
    video = encode(tmp_path / "vfr.mp4", seconds=0.4,
                   vf="setpts='if(eq(N,0),0,(0.3+N*0.005)/TB)'")
    times, results, index = take(video, tmp_path, 20)
    assert len(index) == 10 and len(times) == 10
    stamps = assert_distinct_and_right(results, video)
    assert stamps == sorted(straight_decode(video))  # all ten, each once
    assert stamps[1] - stamps[0] > 0.25 > stamps[-1] - stamps[1]


@pytest.mark.parametrize("seek_cost", [None, 0])
def test_edit_list_hides_frames_and_none_repeats(tmp_path: Path, seek_cost) -> None:
    base = encode(tmp_path / "base.mp4", seconds=2)
    video = tmp_path / "edit.mp4"
    ffmpeg("-ss", "0.5", "-i", str(base), "-c", "copy", str(video))  # an edit list at 0.44 s
    times, results, index = take(video, tmp_path, 40, seek_cost=seek_cost)
    facts = probe(video)
    assert len(index) < facts.frames  # the index lists frames the edit list hides
    assert len(times) == len(index) and all(r.frame for r in results)
    stamps = assert_distinct_and_right(results, video, facts.start)
    shown = sorted(t for t in straight_decode(video, facts.start) if t >= 0)
    assert stamps == shown  # 40 slots, fewer frames shown: every shown frame once
    assert any("hidden by an edit list" in note for note in index.notes)


def test_keyframes_only_level_on_an_edit_list_takes_the_nearest_keyframes(tmp_path: Path) -> None:
    base = encode(tmp_path / "base.mp4", seconds=2)
    video = tmp_path / "edit.mp4"
    ffmpeg("-ss", "0.5", "-i", str(base), "-c", "copy", str(video))
    from core.media import degrade_plan

    slots, options = degrade_plan(2, 20)
    assert options.keyframes_only
    _, results, index = take(video, tmp_path, 20, slots, **{
        "max_width": options.max_width, "threads": options.threads, "keyframes_only": True})
    taken = [r for r in results if r.frame]
    keys = sorted(index.seconds(k) for k in index.keys)
    assert [r.frame.timestamp for r in taken] == keys  # each keyframe once, the nearest
    assert all(r.note == "no keyframe left for this slot" for r in results if not r.frame)
    assert_distinct_and_right(results, video, probe(video).start)


def test_index_promising_frames_that_do_not_decode(tmp_path: Path) -> None:
    # Five indexed frames; the data of the last three is overwritten, so two decode.
    video = encode(tmp_path / "five.mp4", seconds=0.2, keyint=1)
    with av.open(str(video)) as container:
        entries = [(e.pos, e.size) for e in container.streams.video[0].index_entries]
    assert len(entries) == 5
    data = bytearray(video.read_bytes())
    for pos, size in entries[2:]:
        data[pos:pos + size] = bytes(size)
    video.write_bytes(bytes(data))
    times, results, _ = take(video, tmp_path, 20)
    got = [r for r in results if r.frame]
    assert [r.frame.timestamp for r in got] == [0.0, 0.04]
    assert [r.note for r in results if not r.frame] == [
        f"the frame at {t:.3f} s did not decode and no frame near it was left"
        for t in times[2:]]


def _claim_frames(avi: Path, claimed: int) -> None:
    """Write ``claimed`` into the AVI header's frame counts (avih, strh, dmlh)."""
    data = bytearray(avi.read_bytes())
    for tag, offset in ((b"avih", 16), (b"strh", 32), (b"dmlh", 0)):
        at = data.find(tag)
        if at >= 0:
            struct.pack_into("<I", data, at + 8 + offset, claimed)
    avi.write_bytes(bytes(data))


@pytest.mark.parametrize("seek_cost", [None, 0])
def test_avi_whose_header_claims_a_large_length(tmp_path: Path, seek_cost) -> None:
    # H.264 with B-frames in AVI (58 frames), its header claiming a million. AVI stores no
    # presentation times: libav numbers packets in decode order, so the decoder's output
    # carries times out of order; the n-th frame shown is the n-th frame in time.
    video = encode(tmp_path / "long.avi", seconds=2.32, keyint=12,
                   extra=("-preset", "medium", "-bf", "3"))
    _claim_frames(video, 1_000_000)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.frames == 1_000_000
        shown = [frame.to_image() for frame in container.decode(stream)]
    assert len(shown) == 58
    planned, results, index = take(video, tmp_path, 20, seek_cost=seek_cost)
    assert len(index) == 58 and all(r.frame for r in results)
    stamps = [r.frame.timestamp for r in results]
    assert stamps == planned and stamps == sorted(set(stamps))
    order = [index.seconds(p) for p in index.pts]  # in time: the order frames are shown
    for result in results:
        with Image.open(result.frame.path) as image:
            reference = shown[order.index(result.frame.timestamp)]
            diff = ImageChops.difference(image.convert("RGB"), reference)
        assert max(ImageStat.Stat(diff).mean) <= 10, result


def test_raw_h264_longer_than_any_from_start_cap_gives_no_duplicates(tmp_path: Path) -> None:
    # #23 item 10: past 20,000 frames the old decode-from-start cap repeated frames.
    video = samples.make_clip(tmp_path / "long.h264", seconds=500, width=128, height=96,
                              fps=50, keyint=250)
    beats: list[int] = []
    with PyAVExtractor().open(video, probe(video), ExtractOptions()) as source:
        source.heartbeat_s = 0.0  # every decoded frame: the job sees a long read move
        times = source.plan(6)
        results = list(source.take(range(6), lambda i: tmp_path / f"{i}.jpg",
                                   heartbeat=beats.append))
        index = source.index
    assert len(beats) > 20_000 and beats == sorted(beats)
    assert len(index) == 25_000 and not index.seekable
    stamps = [r.frame.timestamp for r in results]
    assert stamps == sorted(set(stamps)) and len(stamps) == 6
    # A raw stream carries no times: frame n is at n / the rate its header gives.
    fps = probe(video).fps
    assert stamps == pytest.approx([(i + 0.5) * 25_000 / fps / 6 for i in range(6)],
                                   abs=1 / fps)
    assert stamps == times
    # The last slot is the picture the straight decode gives at that place, not one a
    # second before or after (testsrc2 shows a running clock).
    wanted = round(stamps[-1] * fps)
    near = {wanted - round(fps): None, wanted: None, wanted + round(fps): None}
    with av.open(str(video)) as container:
        for n, frame in enumerate(container.decode(container.streams.video[0])):
            if n in near:
                near[n] = frame.to_image()
    with Image.open(results[-1].frame.path) as image:
        diffs = {n: max(ImageStat.Stat(ImageChops.difference(image.convert("RGB"), ref)).mean)
                 for n, ref in near.items()}
    assert diffs[wanted] <= 10 and diffs[wanted] == min(diffs.values()), diffs


def test_a_huge_gap_gives_distinct_frames_and_says_so(tmp_path: Path) -> None:
    # #23 item 11: a 100,000 s gap gave fps 0 and six identical frames.
    video = encode(tmp_path / "gap.mp4", seconds=2,
                   vf="setpts='if(lt(N,3),N*0.04/TB,(100000+N*0.04)/TB)'")
    _, results, index = take(video, tmp_path, 6)
    stamps = assert_distinct_and_right(results, video)
    assert len(stamps) == 6 and stamps[0] < 1 and stamps[-1] > 100_000
    assert index.notes == ("a gap of 100000 s between two frames (usual spacing 40 ms)",)
    facts = probe(video)
    assert (facts.frames, facts.fps) == (50, 25.0)  # the frames' rate, not 50 / 100,002 s


def test_an_index_declaring_two_billion_frames_is_checked(tmp_path: Path) -> None:
    # #23 item 11: an stts entry declaring 2^31-1 frames was recorded as the frame count.
    video = encode(tmp_path / "claims.mp4", seconds=2)
    data = bytearray(video.read_bytes())
    at = data.find(b"stts")
    assert struct.unpack_from(">I", data, at + 8)[0] == 1  # one entry: (count, delta)
    struct.pack_into(">I", data, at + 12, 2**31 - 1)
    video.write_bytes(bytes(data))
    with av.open(str(video)) as container:
        assert container.streams.video[0].frames == 2**31 - 1
    facts = probe(video)
    assert (facts.frames, facts.fps, facts.duration) == (50, 25.0, 2.0)
    _, results, index = take(video, tmp_path, 6)
    assert len(index) == 50
    assert len(assert_distinct_and_right(results, video)) == 6


def test_the_seek_cost_is_measured_on_the_video_being_read(tmp_path: Path) -> None:
    from core.media.plan import SEEK_COST_FRAMES

    video = encode(tmp_path / "ten.mp4", seconds=10, keyint=25)
    with PyAVExtractor().open(video, probe(video), ExtractOptions()) as source:
        assert source.seek_cost() == SEEK_COST_FRAMES  # nothing timed yet: the estimate
        times = source.plan(4)
        results = list(source.take(range(4), lambda i: tmp_path / f"{i}.jpg"))
        assert source.restarts >= 1 and source._frame_s and source._seek_s is not None
        assert source.seek_cost() == max(1, min(1000, round(source._seek_s / source._frame_s)))
    assert [r.frame.timestamp for r in results] == times
    with PyAVExtractor(seek_cost=0).open(video, probe(video), ExtractOptions()) as source:
        assert source.seek_cost() == 0  # given: never measured over
