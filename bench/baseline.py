"""Baseline: what naive code does. Decode every frame in Python, keep the chosen ones.

``python -m bench.baseline VIDEO OUTDIR [--count 20]``: imageio-ffmpeg ``read_frames``
pipes every decoded RGB frame into this process; the frames at the middles of
``count`` equal slices are kept in memory and written as JPEGs at the end. No PeakOps
code is used. Prints one JSON line (frames kept, frames decoded).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import imageio_ffmpeg
from PIL import Image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("video", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)

    frames = imageio_ffmpeg.read_frames(str(args.video))
    meta = next(frames)
    width, height = meta["size"]
    times = [meta["duration"] * (i + 0.5) / args.count for i in range(args.count)]
    wanted = {int(t * meta["fps"]): i for i, t in enumerate(times)}
    kept: dict[int, bytes] = {}
    decoded = 0
    for number, frame in enumerate(frames):
        decoded = number + 1
        if number in wanted:
            kept[wanted[number]] = frame
    for i, frame in sorted(kept.items()):
        Image.frombytes("RGB", (width, height), frame).save(args.outdir / f"{i:04d}.jpg",
                                                           quality=90)
    print(json.dumps({"frames": len(kept), "decoded": decoded}))
    return 0 if len(kept) == args.count else 1


if __name__ == "__main__":
    raise SystemExit(main())
