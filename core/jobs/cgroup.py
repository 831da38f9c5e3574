"""The hard memory limit enforced by the kernel: a cgroup v2 ``memory.max`` for the job child.

Sampling every 0.1 s lets a fast-growing job overshoot the limit before the kill (+51 %
was measured, see ``bench/overshoot.py``). Where this process sits in a delegated cgroup
v2 hierarchy with the memory controller available, the job child runs in a child group
whose ``memory.max`` is the hard limit (swap off, ``memory.oom.group`` on): the kernel
stops the job at the limit and kills the group. Elsewhere :func:`make_cage` returns None
and the supervisor's sampling is the only guard, as before.

cgroup v2 allows processes only in leaf groups, so the supervisor first moves itself
into a leaf (``peakops-supervisor``) of its own group, then enables the memory controller
for the group's children.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
SUPERVISOR_LEAF = "peakops-supervisor"


def own_group(proc_cgroup: str, root: Path) -> Path | None:
    """This process's cgroup v2 folder, from the text of ``/proc/self/cgroup``."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return root / line[3:].strip().lstrip("/")
    return None


def _words(path: Path) -> set[str]:
    return set(path.read_text().split())


@dataclass
class MemoryCage:
    """A cgroup holding the job child (and all it starts) under ``memory.max``."""

    group: Path
    limit_kib: int

    def add(self, pid: int) -> None:
        """Move ``pid`` into the cage; what it starts afterwards is caged too."""
        (self.group / "cgroup.procs").write_text(str(pid))

    def preexec(self):
        """A ``preexec_fn`` that enters the cage before the program starts, so that all
        its memory is charged here (cgroup v2 does not move charges with a process)."""
        procs = str(self.group / "cgroup.procs").encode()

        def enter() -> None:
            fd = os.open(procs, os.O_WRONLY | os.O_TRUNC)  # as `echo 0 >` opens it
            try:
                os.write(fd, b"0")  # "0": the writing process itself
            finally:
                os.close(fd)

        return enter

    def oom_kills(self) -> int:
        """How many times the kernel has killed in the cage for memory."""
        try:
            for line in (self.group / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def peak_kib(self) -> int | None:
        """The cage's peak memory (``memory.peak``, Linux 5.19+), if the kernel keeps it."""
        try:
            return int((self.group / "memory.peak").read_text()) // 1024
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        try:
            self.group.rmdir()
        except OSError as exc:
            logger.debug("cgroup %s not removed: %s", self.group, exc)


def make_cage(limit_kib: int, *, root: Path = CGROUP_ROOT,
              proc_cgroup: str | None = None, pid: int | None = None) -> MemoryCage | None:
    """A memory cage of ``limit_kib`` where the OS allows one; None means sampling only."""
    pid = os.getpid() if pid is None else pid
    try:
        if proc_cgroup is None:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        base = own_group(proc_cgroup, root)
        if base is None or not (base / "cgroup.controllers").is_file():
            raise OSError("no cgroup v2 hierarchy at " + str(root))
        if base == root:
            raise OSError("this process is in the root cgroup, not in a delegated group")
        if "memory" not in _words(base / "cgroup.controllers"):
            raise OSError(f"the memory controller is not delegated to {base}")
        if base.name != SUPERVISOR_LEAF:
            leaf = base / SUPERVISOR_LEAF
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(pid))
        else:  # a restarted worker in the leaf its predecessor made
            base = base.parent
        subtree = base / "cgroup.subtree_control"
        if "memory" not in _words(subtree):
            subtree.write_text("+memory")
        group = base / f"peakops-job-{pid}"
        group.mkdir(exist_ok=True)
        (group / "memory.max").write_text(str(limit_kib * 1024))
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            if (group / name).exists():
                (group / name).write_text(value)
    except OSError as exc:
        logger.info("memory limit by sampling only (no cgroup v2 memory.max: %s)", exc)
        return None
    logger.info("job memory capped by the kernel: %s/memory.max = %s KiB", group, limit_kib)
    return MemoryCage(group, limit_kib)
