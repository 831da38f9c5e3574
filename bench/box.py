"""The 160 MiB box (issue 22 item 4): ``peakops worker --burst`` inside a real cgroup v1
memory group of 160 MiB, soft/hard limits 100000/125000 KiB, on 4K H.264, 1080p H.264,
4K AV1, HEVC 10-bit HLG and 8K H.264 (``python -m bench.box [--seconds S]``).

Pass: the worker is never killed by the kernel, everything up to 4K is DONE at level 0,
and the 8K clip is DONE at a lower level or FAILED with category memory. The test
(tests/reliability/test_box.py) runs the same with short clips.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.codec_clips import ensure_clip

MOUNT = Path("/sys/fs/cgroup/memory")
REPO = Path(__file__).resolve().parent.parent
BOX_KIB = 160 * 1024
SOFT_KIB, HARD_KIB = 100_000, 125_000
BOX_CLIPS = ("h264-4k", "h264-1080p", "av1-4k", "hevc10-hlg", "h264-8k")
UP_TO_4K = BOX_CLIPS[:-1]


class MemoryBox:
    """A cgroup v1 memory group of ``limit_kib`` (memory and memory+swap) at the mount's
    top, for a process started with :meth:`preexec` and everything it starts."""

    def __init__(self, limit_kib: int = BOX_KIB, name: str | None = None) -> None:
        self.group = MOUNT / (name or f"peakops-box-{os.getpid()}-{time.monotonic_ns()}")
        self.group.mkdir()  # OSError where no memory group can be made (no v1, not root)
        limit = str(limit_kib * 1024)
        (self.group / "memory.limit_in_bytes").write_text(limit)
        if (self.group / "memory.memsw.limit_in_bytes").exists():
            (self.group / "memory.memsw.limit_in_bytes").write_text(limit)

    def preexec(self):
        procs = str(self.group / "cgroup.procs")

        def enter() -> None:
            with open(procs, "w") as out:
                out.write("0")

        return enter

    def counter(self, name: str, key: str | None = None) -> int:
        text = (self.group / name).read_text()
        if key is None:
            return int(text)
        return int(dict(line.split() for line in text.splitlines())[key])

    def close(self) -> None:
        for child in self.group.glob("peakops-job-*"):
            child.rmdir()
        self.group.rmdir()


@dataclass
class BoxResult:
    worker_exit: int
    box_oom_kills: int      # the kernel's kills charged to the box itself
    box_peak_kib: int
    memory_kills: int = 0   # job children stopped at the hard limit (kernel or sampler)
    tree_peak_kib: int = 0  # the worker's whole tree (supervisor + job child), sampled RSS
    tree_pss_kib: int = 0   # the same as PSS: pages shared by the two counted once
    other_restarts: int = 0  # child replacements for any other cause (crash: a miss)
    uploads: dict[str, dict] = field(default_factory=dict)
    enforcement: str | None = None

    def verdict(self) -> list[str]:
        """What misses the target, empty when it is met."""
        misses = []
        if self.worker_exit != 0:
            misses.append(f"worker exit {self.worker_exit}")
        if self.other_restarts:
            misses.append(f"{self.other_restarts} job child crash(es) not from memory")
        for name, row in self.uploads.items():
            done0 = row["status"] == "DONE" and row["degrade_level"] == 0
            if name in UP_TO_4K and not done0:
                misses.append(f"{name}: {row['status']} at level {row['degrade_level']}")
            if name not in UP_TO_4K and not (
                    row["status"] == "DONE" or row["error_category"] == "memory"):
                misses.append(f"{name}: {row['status']} {row['error_category']}")
        return misses


def run_box(home: Path, clips: dict[str, Path], env: dict[str, str], *,
            timeout: float = 600) -> BoxResult:
    """Submit ``clips`` (outside the box), then run the worker in the box until idle."""
    import sqlite3

    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PEAKOPS_", "MAX_", "CELERY_"))}
    base.update(PEAKOPS_HOME=str(home), PEAKOPS_CONFIG=os.devnull, PYTHONPATH=str(REPO),
                PEAKOPS_RETRY_BACKOFF="0", PEAKOPS_MAX_VIDEO_SIZE_MB="2000",
                PEAKOPS_MAX_MEMORY_PER_CHILD=str(SOFT_KIB),
                PEAKOPS_HARD_MEMORY_LIMIT=str(HARD_KIB), **env)
    home.mkdir(parents=True, exist_ok=True)
    ids = {}
    for name, clip in clips.items():
        out = subprocess.run([sys.executable, "-m", "cli", "submit", str(clip)],
                             cwd=home.parent, env=base, capture_output=True, text=True,
                             timeout=120, check=True)
        ids[name] = int(out.stdout.split("\t")[0])
    box = MemoryBox()
    try:
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([sys.executable, "-m", "cli", "worker", "--burst"],
                                    cwd=home.parent, env=base, stdout=subprocess.DEVNULL,
                                    stderr=err, preexec_fn=box.preexec())
            tree_peak, tree_pss = _sample_tree(proc, timeout)
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        result = BoxResult(proc.returncode,
                           box.counter("memory.oom_control", "oom_kill"),
                           box.counter("memory.max_usage_in_bytes") // 1024,
                           tree_peak_kib=tree_peak, tree_pss_kib=tree_pss)
    finally:
        box.close()
    db = sqlite3.connect(home / "peakops.db")
    db.row_factory = sqlite3.Row
    for name, upload_id in ids.items():
        row = db.execute("SELECT status, degrade_level, peak_rss_kib, error_category, "
                         "error_message FROM uploads WHERE id = ?", [upload_id]).fetchone()
        result.uploads[name] = {"id": upload_id, **dict(row)}
    result.enforcement = db.execute("SELECT memory_enforcement FROM workers").fetchone()[0]
    causes = [r[0] for r in db.execute("SELECT cause FROM restarts")]
    result.memory_kills = causes.count("hard-limit")
    result.other_restarts = sum(c not in ("hard-limit", "memory-after-job", "tasks")
                                for c in causes)
    db.close()
    result.stderr = stderr  # type: ignore[attr-defined]
    return result


def _tree_pss_kib(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        pids = [pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for each in pids:
        try:
            with open(f"/proc/{each}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) for line in rollup
                              if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total


def _sample_tree(proc: subprocess.Popen, timeout: float) -> tuple[int, int]:
    """Wait for ``proc``; the peak RSS and PSS of its whole tree, every 20 ms."""
    from core.jobs.supervisor import tree_rss_kib

    peak = pss = 0
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            break
        peak = max(peak, tree_rss_kib(proc.pid))
        pss = max(pss, _tree_pss_kib(proc.pid))
        time.sleep(0.02)
    return peak, pss


def report(result: BoxResult) -> str:
    lines = [f"160 MiB box (soft/hard {SOFT_KIB}/{HARD_KIB} KiB, {result.enforcement}): "
             f"worker exit {result.worker_exit}, box peak {result.box_peak_kib} KiB, "
             f"kernel OOM kills charged to the box {result.box_oom_kills}, job children "
             f"stopped at the hard limit {result.memory_kills}, worker tree peak RSS "
             f"{result.tree_peak_kib / 1024:.1f} MB (PSS {result.tree_pss_kib / 1024:.1f} MB)"]
    for name, row in result.uploads.items():
        lines.append(f"  {name:<12} {row['status']:<7} level {row['degrade_level']}  peak "
                     f"{(row['peak_rss_kib'] or 0) / 1024:6.1f} MB  "
                     f"{row['error_category'] or ''}")
    misses = result.verdict()
    lines.append("  target met" if not misses else "  MISSED: " + "; ".join(misses))
    return "\n".join(lines)


TREE_TARGETS_KIB = {"h264-4k": 128 * 1024, "av1-4k": 140 * 1024, "hevc10-hlg": 140 * 1024}
"""Issue 22 item 2: the worker tree (supervisor + job child) at full quality."""


def measure(seconds: float, frames: int = 20, log=print) -> dict:
    """Run the box on cached clips (the 1080p one 2 minutes long) and log the report;
    then each clip with a tree target alone, in the box, for its worker tree peak."""
    clips = {name: ensure_clip(name, 120 if name == "h264-1080p" else seconds)
             for name in BOX_CLIPS}
    with tempfile.TemporaryDirectory() as tmp:
        result = run_box(Path(tmp) / "home", clips,
                         {"PEAKOPS_MAX_FRAMES_PER_VIDEO": str(frames)})
    log(report(result))
    figures = {"uploads": result.uploads, "worker_exit": result.worker_exit,
               "box_peak_kib": result.box_peak_kib, "memory_kills": result.memory_kills,
               "misses": result.verdict(), "tree_peak_kib": {}}
    log("worker tree (supervisor + job child) alone in the box, at the level it ran:")
    for name, target in TREE_TARGETS_KIB.items():
        with tempfile.TemporaryDirectory() as tmp:
            alone = run_box(Path(tmp) / "home", {name: clips[name]},
                            {"PEAKOPS_MAX_FRAMES_PER_VIDEO": str(frames)})
        row = alone.uploads[name]
        figures["tree_peak_kib"][name] = alone.tree_peak_kib
        figures.setdefault("tree_pss_kib", {})[name] = alone.tree_pss_kib
        verdict = "met" if alone.tree_peak_kib <= target and row["degrade_level"] == 0 \
            else "MISSED"
        log(f"  {name:<12} RSS {alone.tree_peak_kib / 1024:6.1f} MB, PSS "
            f"{alone.tree_pss_kib / 1024:6.1f} MB (target {target // 1024} MB at level 0; "
            f"ran at level {row['degrade_level']}, {row['status']}) [{verdict}]")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.box")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args(argv)
    measure(args.seconds, args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
