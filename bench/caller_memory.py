"""Where a library call's video memory goes: ``core.process`` through the job runner
versus the pipeline in the caller's own process (what ``core.process`` did before the one
job path, and what ``pipeline.process_now`` still does for tests and tools).

Each way runs in a fresh interpreter on the same generated 4K H.264 clip (2 s, 25 fps,
5 frames planned), in its own fresh home. Printed: the caller's peak RSS (its own
``ru_maxrss``) and the peak of its children (the job child and probe child), and the
wall time. One run each; run it a few times on a quiet machine before quoting it.

    python -m bench.caller_memory [WORKDIR]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from core.media import samples

SCRIPT = """
import json, resource, sys, time
from pathlib import Path
mode, clip, home = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
started = time.monotonic()
if mode == "runner":
    import core
    status = core.process(clip, home=home, max_frames_per_video=5).status
else:
    from core.app import open_app, process_owner
    from core.config import load_settings
    from core.intake import submit_file
    from core.jobs.pipeline import process_now
    app = open_app(load_settings(overrides={"home": home, "max_frames_per_video": 5}))
    status = process_now(app, submit_file(app, clip).upload_id, process_owner("bench"))
print(json.dumps({"mode": mode, "status": status, "seconds": time.monotonic() - started,
                  "caller_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_peak_mb":
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def measure(workdir: Path) -> list[dict]:
    clip = samples.make_clip(workdir / "uhd.mp4", seconds=2, width=3840, height=2160, fps=25)
    rows = []
    for mode in ("runner", "in-caller"):
        out = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(clip),
                              str(workdir / f"home-{mode}")], capture_output=True, text=True,
                             check=True, env={"PEAKOPS_LOG_LEVEL": "warning",
                                              "PATH": "/usr/bin:/bin"}).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def main() -> int:
    workdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(
        prefix="peakops-caller-memory-"))
    for row in measure(workdir):
        print(f"{row['mode']:<10} {row['status']:<6} caller peak {row['caller_peak_mb']:5.0f} MB"
              f"  children peak {row['children_peak_mb']:5.0f} MB  {row['seconds']:5.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
