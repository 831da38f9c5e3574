"""Frames of one video under one selection plan, in a short-lived child process.

The side-by-side contact sheet (:mod:`core.results.compare`) needs frames the job did not
take; libav runs here, never in the caller (``python -m core.media.plans_child VIDEO
FACTS_JSON PLAN COUNT MAX_WIDTH OUTDIR``). The child writes ``OUTDIR/<slot>.jpg`` and
prints one JSON line per frame: slot, timestamp, stream frame, keyframe, focus, reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.errors import InputError, InternalError
from core.media.facts import ProbeResult
from core.procenv import clean_env, die_with_parent_preexec

TIMEOUT_S = 600.0


def frames_in_child(video: Path, facts: ProbeResult, plan: str, count: int, max_width: int,
                    outdir: Path, *, name: str, timeout: float = TIMEOUT_S) -> list[dict]:
    """The frames ``plan`` takes from ``video`` (images in ``outdir``), as dicts."""
    argv = [sys.executable, "-m", "core.media.plans_child", os.fspath(video), facts.to_json(),
            plan, str(count), str(max_width), os.fspath(outdir)]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, env=clean_env(),
                              preexec_fn=die_with_parent_preexec())
    except subprocess.TimeoutExpired:
        raise InputError(f"{name}: taking the {plan} frames took longer than {timeout:g} s",
                         timeout=timeout) from None
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    answers = [json.loads(line) for line in lines if line.startswith("{")]
    refused = [a["refused"] for a in answers if "refused" in a]
    if refused:
        raise InputError(f"{name}: {refused[0]}")
    if done.returncode != 0:
        tail = "\n".join(done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:])
        raise InternalError(f"{name}: the frame child failed (exit {done.returncode})",
                            returncode=done.returncode, stderr_tail=tail)
    return [a for a in answers if "slot" in a]


def main(argv: list[str] | None = None) -> int:
    """Child side: take the frames and print their facts."""
    from core.media.decode import PyAVExtractor
    from core.media.plan import ExtractOptions

    video, facts_json, plan, count, max_width, outdir = sys.argv[1:] if argv is None else argv
    facts = ProbeResult.from_json(facts_json)
    options = ExtractOptions(max_width=int(max_width), selection=plan)
    try:
        with PyAVExtractor().open(Path(video), facts, options, name="video") as source:
            times = source.plan(int(count))
            for result in source.take(range(len(times)),
                                      lambda i: Path(outdir) / f"{i:04d}.jpg"):
                frame = result.frame
                if frame is None:
                    continue
                print(json.dumps({"slot": result.slot, "path": str(frame.path),
                                  "timestamp": frame.timestamp, "stream_frame": frame.number,
                                  "keyframe": frame.keyframe, "focus": frame.focus,
                                  "reason": frame.reason}), flush=True)
    except InputError as exc:
        print(json.dumps({"refused": str(exc).removeprefix("video: ")}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
