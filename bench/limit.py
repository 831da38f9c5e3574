"""The limit: the fastest bare extraction of the same frames, none of PeakOps' machinery.

``python -m bench.limit METHOD VIDEO OUTDIR --duration SECONDS [--count 20]``, where
METHOD is one of:

- ``pyav``: the exact-frame reference of issue 13: one process, PyAV with one decode
  thread; for each time, seek back to the keyframe, decode forward to the frame at that
  time, scale to at most 1280 px and write a JPEG with Pillow;
- ``seek``: one ffmpeg per frame, ``-ss`` before ``-i`` (jump to the keyframe, decode
  up to the exact frame), scaled to at most 1280 px wide like PeakOps' frames;
- ``seek-key``: the same but keyframes only (``-skip_frame nokey -noaccurate_seek``):
  the keyframe at or before each time, no decoding between keyframes;
- ``key-pass``: one ffmpeg over the whole file decoding keyframes only, keeping the
  first keyframe of each slice (fewer than ``count`` when keyframes are sparse).

The duration is given, not probed: the limit gets that for free. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import imageio_ffmpeg

SCALE = "scale='min(1280,iw)':-2"
METHODS = ("pyav", "seek", "seek-key", "key-pass")


def _ffmpeg(args: list[str]) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin",
                    "-loglevel", "error", "-y", *args], check=True, stdin=subprocess.DEVNULL)


def _pyav(video: str, outdir: Path, duration: float, count: int) -> None:
    import av

    with av.open(video) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        tb, start = stream.time_base, stream.start_time or 0
        width = min(1280, stream.width)
        height = max(2, round(stream.height * width / stream.width / 2) * 2)
        for i in range(count):
            target = start + int(duration * (i + 0.5) / count / tb)
            container.seek(target, stream=stream, backward=True)
            chosen = None
            for frame in container.decode(stream):
                if chosen is not None and frame.pts is not None and frame.pts > target:
                    break
                chosen = frame
            image = chosen.reformat(width=width, height=height, format="rgb24").to_image()
            image.save(outdir / f"{i:04d}.jpg", quality=89)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("method", choices=METHODS)
    parser.add_argument("video")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    video = "file:" + str(Path(args.video).absolute())
    slice_s = args.duration / args.count
    if args.method == "pyav":
        _pyav(video, args.outdir, args.duration, args.count)
    elif args.method == "key-pass":
        pick = f"select='isnan(prev_selected_t)*gte(t,{slice_s / 2:.3f})" \
               f"+gte(t-prev_selected_t,{slice_s:.3f})'"
        _ffmpeg(["-skip_frame", "nokey", "-i", video, "-vf", f"{pick},{SCALE}",
                 "-fps_mode", "passthrough", "-frames:v", str(args.count), "-q:v", "3",
                 str(args.outdir / "%04d.jpg")])
    else:
        keyframes = ["-skip_frame", "nokey", "-noaccurate_seek"] \
            if args.method == "seek-key" else []
        for i in range(args.count):
            _ffmpeg([*keyframes, "-ss", f"{slice_s * (i + 0.5):.3f}", "-i", video,
                     "-frames:v", "1", "-vf", SCALE, "-fps_mode", "passthrough", "-q:v", "3",
                     "-update", "1", str(args.outdir / f"{i:04d}.jpg")])
    frames = len(list(args.outdir.glob("*.jpg")))
    print(json.dumps({"method": args.method, "frames": frames}))
    return 0 if frames else 1


if __name__ == "__main__":
    raise SystemExit(main())
