"""How far a fast-growing job gets past the hard memory limit before it is stopped.

Two guards: the supervisor's sampling (``core.jobs.supervisor``: tree RSS every
``SAMPLE_INTERVAL_S``, SIGKILL of the group when over), and the kernel's cgroup v2
``memory.max`` (``core.jobs.cgroup``), where this machine delegates one. A hog process
grows its memory at a fixed rate; its true peak is the kernel's ``ru_maxrss`` for it,
read with ``wait4`` after it is killed. Run: ``python -m bench.overshoot``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from core.jobs.cgroup import make_cage
from core.jobs.supervisor import SAMPLE_INTERVAL_S, tree_rss_kib

LIMIT_KIB = 60 * 1024            # the 60 MB of the report that found +51 %
RATES_MB_S = (50, 200, 800)      # how fast the job's memory grows
HOG = """
import sys, time
rate = float(sys.argv[1]) * 1024 * 1024
chunks, step, start = [], 1024 * 1024, time.monotonic()
while True:
    want = int((time.monotonic() - start) * rate)
    while len(chunks) * step < want:
        chunks.append(bytearray(step))  # bytearray(n) is zeroed: the pages are touched
    time.sleep(0.001)
"""


def start_hog(rate: float, preexec=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOG, str(rate)], start_new_session=True,
                            preexec_fn=preexec)


def reap(proc: subprocess.Popen) -> int:
    """The hog's true peak RSS in KiB (Linux reports ru_maxrss in KiB)."""
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = -1
    return usage.ru_maxrss


def by_sampling(rate: float) -> tuple[int, int]:
    proc = start_hog(rate)
    while True:
        time.sleep(SAMPLE_INTERVAL_S)
        rss = tree_rss_kib(proc.pid)
        if rss > LIMIT_KIB:
            os.killpg(proc.pid, signal.SIGKILL)
            return rss, reap(proc)


def by_kernel(rate: float) -> int | None:
    cage = make_cage(LIMIT_KIB)
    if cage is None:
        return None
    try:
        proc = start_hog(rate, cage.preexec())
        return reap(proc)
    finally:
        cage.remove()


def main() -> None:
    print(f"hard limit {LIMIT_KIB} KiB; sampling every {SAMPLE_INTERVAL_S:g} s")
    print(f"{'growth':>10}  {'sampled at kill':>16}  {'true peak':>10}  {'overshoot':>9}  "
          f"{'kernel peak':>11}")
    for rate in RATES_MB_S:
        sampled, peak = by_sampling(rate)
        kernel = by_kernel(rate)
        kernel_text = "n/a" if kernel is None else \
            f"{kernel} ({(kernel - LIMIT_KIB) * 100 / LIMIT_KIB:+.0f} %)"
        print(f"{rate:>6} MB/s  {sampled:>12} KiB  {peak:>6} KiB  "
              f"{(peak - LIMIT_KIB) * 100 / LIMIT_KIB:>+8.0f} %  {kernel_text:>11}")
    if make_cage(LIMIT_KIB) is None:
        print("kernel path: n/a, no delegated cgroup v2 memory controller on this machine; "
              "sampling is the only guard here")


if __name__ == "__main__":
    main()
