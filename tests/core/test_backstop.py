"""Without a memory cgroup: the job child caps its own address space once libav is
loaded, so a runaway allocation fails in the child (a memory outcome) instead of running
far past the sampled limit; the supervisor samples faster while memory grows."""

from __future__ import annotations

import os
import subprocess
import sys

from core.config import load_settings
from core.jobs.cgroup import address_space_limit
from core.jobs.supervisor import JobChild


def address_space(pid: int) -> str:
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max address space"):
            return line.split()[3]
    raise AssertionError("no address-space line")


def test_child_without_cage_caps_its_address_space(tmp_path):
    settings = load_settings({"PEAKOPS_HOME": str(tmp_path / "home"),
                              "PEAKOPS_HARD_MEMORY_LIMIT": "150000",
                              "PEAKOPS_MAX_MEMORY_PER_CHILD": "120000"})
    child = JobChild(dict(os.environ), settings, cage=None)
    try:
        cap = int(address_space(child.pid))
        assert cap >= 2 * 150_000 * 1024
        with open(f"/proc/{child.pid}/statm") as statm:
            vms_kib = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE") // 1024
        assert cap <= address_space_limit(150_000, vms_kib)
    finally:
        child.stop()


def test_allocation_past_the_cap_fails_in_the_child():
    code = ("from core.jobs.child import limit_address_space\n"
            "limit_address_space(100_000)\n"
            "try:\n    bytearray(1024 ** 3)\nexcept MemoryError:\n    print('MemoryError')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "MemoryError", done.stderr[-500:]
