"""The degrade ladder, measured: codec x level -> peak memory of a process extracting a
level's frames (``python -m bench.ladder [--seconds S] [--frames N] [codec ...]``).

Each cell is a fresh process that opens the clip with the level's options and takes the
level's frames of an ``--frames`` plan, as the job child does: with the facts probed
beforehand (the job child reads them from the upload's row; probing here would add the
probe's own peak to every level); its peak is the
kernel's own high-water mark of its resident memory (``ru_maxrss`` from ``wait4``), so
nothing is missed between samples. Target (issue 22): every level at least 25 % below
the one before, for every codec.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.codec_clips import LADDER_CODECS, ensure_clip

STEP_TARGET = 0.25
DEFAULT_FRAMES = 8


def child(clip: Path, level: int, frames: int) -> None:
    from core.media import ProbeResult, degrade_plan
    from core.media.decode import PyAVExtractor

    facts = ProbeResult.from_json(os.environ["PEAKOPS_BENCH_FACTS"])
    indices, options = degrade_plan(level, frames)
    with tempfile.TemporaryDirectory() as out, \
            PyAVExtractor().open(clip, facts, options) as source:
        source.plan(frames)
        taken = [r for r in source.take(indices, lambda s: Path(out) / f"{s}.jpg") if r.frame]
    print(json.dumps({"frames": len(taken)}))


def probed(clip: Path) -> str:
    """The clip's facts as JSON, probed beforehand as the job child gets them, in a process
    of its own: a child's maxrss counts its parent's peak at the fork (vfork) and exec."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from core.media import probe; "
         "print(probe(sys.argv[1]).to_json())", str(clip)],
        capture_output=True, text=True, check=True).stdout


def measure(clip: Path, level: int, frames: int, facts: str) -> dict:
    """Peak KiB and frames taken for one cell, in a fresh process."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.ladder", "--child", str(clip),
                             str(level), str(frames)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PEAKOPS_BENCH_FACTS": facts})
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"peak_kib": usage.ru_maxrss, "error": f"exit {proc.returncode}"}
    return {"peak_kib": usage.ru_maxrss, **json.loads(out.strip().splitlines()[-1])}


def table(codecs: list[str], seconds: float, frames: int, log=print) -> dict:
    from core.media import DEGRADE_LEVELS

    results: dict[str, list[dict]] = {}
    for name in codecs:
        clip = ensure_clip(name, seconds)
        facts = probed(clip)
        results[name] = [measure(clip, level, frames, facts) for level in range(DEGRADE_LEVELS)]
        log(row(name, results[name]))
    return results


def row(name: str, cells: list[dict]) -> str:
    parts, misses = [], []
    for level, cell in enumerate(cells):
        mb = cell["peak_kib"] / 1024
        text = f"L{level} {mb:6.1f} MB ({cell.get('frames', cell.get('error'))} fr)"
        if level:
            drop = 1 - cell["peak_kib"] / cells[level - 1]["peak_kib"]
            text += f" {-drop:+.0%}"
            if drop < STEP_TARGET:
                misses.append(f"L{level} only {drop:.0%} below L{level - 1}")
        parts.append(text)
    verdict = "met" if not misses else "MISSED: " + "; ".join(misses)
    return f"{name:<14} " + "  ".join(parts) + f"  [{verdict}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ladder")
    parser.add_argument("--child", nargs=3, metavar=("CLIP", "LEVEL", "FRAMES"))
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("codecs", nargs="*", default=list(LADDER_CODECS))
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), int(args.child[1]), int(args.child[2]))
        return 0
    print(f"codec x level: peak process memory taking {args.frames} frames of a "
          f"{args.seconds:g} s clip (target: each level >= {STEP_TARGET:.0%} below the one "
          "before)")
    table(args.codecs, args.seconds, args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
