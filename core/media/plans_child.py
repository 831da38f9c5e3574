"""Frames of one video under one selection plan, in a short-lived child process.

The side-by-side contact sheet (:mod:`core.results.compare`) needs frames the job did not
take; libav runs here, never in the caller. The child is the same program, started like
the probe and job children: ``python -m core.media.plans_child`` or the frozen app's
hidden ``_plans-child`` command, with ``HARD_KIB VIDEO FACTS_JSON PLAN COUNT MAX_WIDTH
OUTDIR``. Like the job child where no cgroup holds it, it caps its address space once
libav is loaded (:func:`core.jobs.cgroup.address_space_limit` of the worker's hard memory
limit), so a video that would need far more memory is one clear input error instead of
the operator's machine swapping. It writes ``OUTDIR/<slot>.jpg`` and prints one JSON line
per frame: slot, timestamp, stream frame, keyframe, focus, reason.
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
CHILD_COMMAND = "_plans-child"
_OUT_OF_MEMORY = ("MemoryError", "Cannot allocate memory", "failed to map segment")
_CAPPED_OUT = ("Cannot allocate memory", "Resource temporarily unavailable")
"""libav's words when the cap stops it: a failed allocation (ENOMEM) or a decode thread
whose stack could not be mapped (EAGAIN)."""


def child_argv(video: Path, facts: ProbeResult, plan: str, count: int, max_width: int,
               outdir: Path, hard_kib: int) -> list[str]:
    """argv that starts the plans child with this same program (frozen app or Python)."""
    args = [str(hard_kib), os.fspath(video), facts.to_json(), plan, str(count),
            str(max_width), os.fspath(outdir)]
    if getattr(sys, "frozen", False):
        return [sys.executable, CHILD_COMMAND, *args]
    return [sys.executable, "-m", "core.media.plans_child", *args]


def frames_in_child(video: Path, facts: ProbeResult, plan: str, count: int, max_width: int,
                    outdir: Path, *, name: str, hard_kib: int,
                    timeout: float = TIMEOUT_S) -> list[dict]:
    """The frames ``plan`` takes from ``video`` (images in ``outdir``), as dicts.

    ``hard_kib`` is the memory the child may use past what libav takes to load (the
    worker's hard limit, ``Settings.hard_memory_limit_kib``)."""
    argv = child_argv(Path(video).absolute(), facts, plan, count, max_width,
                      Path(outdir).absolute(), hard_kib)
    env = clean_env() if not getattr(sys, "frozen", False) else dict(os.environ)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, env=env, preexec_fn=die_with_parent_preexec())
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
        if done.returncode > 0 and any(sign in tail for sign in _OUT_OF_MEMORY):
            raise InputError(f"{name}: taking the {plan} frames {_over(hard_kib)}",
                             returncode=done.returncode, stderr_tail=tail)
        raise InternalError(f"{name}: the frame child failed (exit {done.returncode})",
                            returncode=done.returncode, stderr_tail=tail)
    return [a for a in answers if "slot" in a]


def _over(hard_kib: int) -> str:
    return f"needed more memory than the hard limit allows ({hard_kib // 1024} MB)"


def cap_memory(hard_kib: int) -> int:
    """Load libav and the picture code, then cap the address space; the cap in bytes
    (0 where there is no RLIMIT_AS: macOS, Windows)."""
    import core.media.decode  # noqa: F401  (mapped once, before the cap)
    import core.media.picture  # noqa: F401
    from core.jobs.cgroup import address_space_limit
    try:
        import resource

        with open("/proc/self/statm") as statm:
            vms_kib = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE") // 1024
        limit = address_space_limit(hard_kib, vms_kib)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        return limit
    except (ImportError, ValueError, OSError):
        return 0


def main(argv: list[str] | None = None) -> int:
    """Child side: take the frames and print their facts."""
    from core.media.decode import PyAVExtractor
    from core.media.plan import ExtractOptions

    hard_kib, video, facts_json, plan, count, max_width, outdir = (
        sys.argv[1:] if argv is None else argv)
    capped = cap_memory(int(hard_kib)) > 0
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
        refused = str(exc).removeprefix("video: ")
        if capped and any(sign in refused for sign in _CAPPED_OUT):
            refused = f"taking the {plan} frames {_over(int(hard_kib))}"
        print(json.dumps({"refused": refused}), flush=True)
    except MemoryError:
        print(json.dumps({"refused": f"taking the {plan} frames {_over(int(hard_kib))}"}),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
