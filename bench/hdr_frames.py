"""``python -m bench.hdr_frames [--runs N] [video]``: frames of a short HDR clip vs bare PyAV.

Issue #21 item 9: ``hdr10-av1.mp4`` (AV1 10-bit PQ, 4.2 s, 127 frames) took 11-13 s for
20 frames while bare PyAV decodes and converts all 127 in about 1.3 s. The target is
within 2x of that. Both sides run in this process, alternating, medians of ``--runs``:

- bare: open, decode every frame, ``to_image()`` each (swscale to RGB, no tone mapping);
- PeakOps: the job's own path (plan 20 slots, take them, tone-mapped JPEGs written).

Prints one line per side and writes ``bench/results/hdr-frames.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "tests" / "media" / "dev" / "hdr10-av1.mp4"


def bare(video: Path) -> tuple[float, int]:
    import av

    start = time.perf_counter()
    count = 0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 2
        stream.codec_context.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_image()
            count += 1
    return time.perf_counter() - start, count


def peakops(video: Path, frames: int) -> tuple[float, int, int, float]:
    from core.media import ExtractOptions
    from core.media.decode import PyAVExtractor
    from core.media.probing import probe

    facts = probe(video)  # recorded at submit in a job: not part of the job's time
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, \
            PyAVExtractor().open(video, facts, ExtractOptions()) as source:
        convert, spent = source.picture.image, []

        def timed(frame):  # the picture (colour, tone map, shape) apart from the walk
            began = time.perf_counter()
            try:
                return convert(frame)
            finally:
                spent.append(time.perf_counter() - began)

        source.picture.image = timed
        times = source.plan(frames)
        taken = [r for r in source.take(range(len(times)), lambda i: Path(folder) / f"{i}.jpg")
                 if r.frame]
        decoded = source.decoded_count
    return time.perf_counter() - start, len(taken), decoded, sum(spent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hdr-frames.json")
    args = parser.parse_args(argv)
    load_before = [round(x, 2) for x in os.getloadavg()]
    bare_s, ours_s, pictures_s = [], [], []
    for _ in range(args.runs):
        seconds, count = bare(args.video)
        bare_s.append(seconds)
        seconds, taken, decoded, pictures = peakops(args.video, args.frames)
        ours_s.append(seconds)
        pictures_s.append(pictures)
    result = {"video": args.video.name, "runs": args.runs,
              "bare_pyav_all_frames_s": round(statistics.median(bare_s), 3),
              "bare_frames": count,
              "peakops_s": round(statistics.median(ours_s), 3),
              "peakops_frames": taken, "peakops_decoded": decoded,
              "peakops_pictures_s": round(statistics.median(pictures_s), 3)}
    result["load_average"] = {"start": load_before,
                              "end": [round(x, 2) for x in os.getloadavg()]}
    result["ratio"] = round(result["peakops_s"] / result["bare_pyav_all_frames_s"], 2)
    print(f"bare PyAV, all {count} frames decoded and converted: "
          f"{result['bare_pyav_all_frames_s']:.2f} s (median of {args.runs})")
    print(f"PeakOps, {taken} frames planned and written ({decoded} decoded): "
          f"{result['peakops_s']:.2f} s = {result['ratio']:.2f}x, of which "
          f"{result['peakops_pictures_s']:.2f} s turning frames into tone-mapped pictures "
          f"(core.media.picture) and {result['peakops_s'] - result['peakops_pictures_s']:.2f} s "
          "reading, decoding and writing")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
