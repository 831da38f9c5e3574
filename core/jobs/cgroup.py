"""The hard memory limit enforced by the kernel: a memory cgroup around the job child.

Sampling every 0.1 s lets a fast-growing job overshoot the limit before the kill (+51 %
was measured, see ``bench/overshoot.py``). Where this process sits in a delegated cgroup
v2 hierarchy with the memory controller available, the job child runs in a child group
whose ``memory.max`` is the hard limit (swap off, ``memory.oom.group`` on): the kernel
stops the job at the limit and kills the group. Without cgroup v2, the cgroup v1 memory
controller does the same (``memory.limit_in_bytes``, and ``memory.memsw.limit_in_bytes``
so swap does not stretch it), in a group under the supervisor's own memory group. Where
neither exists :func:`make_cage` returns None: the supervisor samples (faster while memory
grows) and the job child runs under an address-space limit as a backstop
(:func:`address_space_limit`).

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
    version: int = 2

    def describe(self) -> str:
        """Which enforcement is active, for ``status`` and the worker's log."""
        knob = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        return f"kernel (cgroup v{self.version} {knob} {self.limit_kib} KiB)"

    def add(self, pid: int) -> None:
        """Move ``pid`` into the cage; what it starts afterwards is caged too."""
        (self.group / "cgroup.procs").write_text(str(pid))

    def preexec(self):
        """A ``preexec_fn`` that enters the cage before the program starts, so that all
        its memory is charged here (cgroup v2 does not move charges with a process)."""
        procs = str(self.group / "cgroup.procs").encode()

        def enter() -> None:
            _prefer_as_oom_victim()
            fd = os.open(procs, os.O_WRONLY | os.O_TRUNC)  # as `echo 0 >` opens it
            try:
                os.write(fd, b"0")  # "0": the writing process itself
            finally:
                os.close(fd)

        return enter

    def oom_kills(self) -> int:
        """How many times the kernel has killed in the cage for memory."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.group / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def peak_kib(self) -> int | None:
        """The cage's peak memory (v2 ``memory.peak``, Linux 5.19+; v1
        ``memory.max_usage_in_bytes``), if the kernel keeps it."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.group / name).read_text()) // 1024
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
    except OSError as exc:
        logger.info("memory limit by sampling only (no /proc/self/cgroup: %s)", exc)
        return None
    try:
        cage = _v2_cage(limit_kib, root, proc_cgroup, pid)
    except OSError as v2:
        try:
            cage = _v1_cage(limit_kib, root, proc_cgroup, pid)
        except OSError as v1:
            logger.info("memory limit by sampling only (no cgroup v2 memory.max: %s; "
                        "no cgroup v1 memory controller: %s)", v2, v1)
            return None
    logger.info("job memory capped by the kernel: %s = %s KiB", cage.group, limit_kib)
    return cage


def _v2_cage(limit_kib: int, root: Path, proc_cgroup: str, pid: int) -> MemoryCage:
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
    return MemoryCage(group, limit_kib, 2)


def v1_group(proc_cgroup: str, root: Path) -> Path | None:
    """This process's cgroup v1 memory group (a folder under ``root/memory``), if any."""
    mount = root / "memory"
    if not (mount / "memory.limit_in_bytes").is_file():
        return None
    for line in proc_cgroup.splitlines():
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            group = mount / path.strip().lstrip("/")
            return group if group.is_dir() else mount  # another namespace's path: the mount
    return mount


def _v1_cage(limit_kib: int, root: Path, proc_cgroup: str, pid: int) -> MemoryCage:
    base = v1_group(proc_cgroup, root)
    if base is None:
        raise OSError(f"no cgroup v1 memory controller at {root / 'memory'}")
    _remove_stale(base)
    group = base / f"peakops-job-{pid}"
    group.mkdir(exist_ok=True)
    limit = str(limit_kib * 1024)
    memsw = group / "memory.memsw.limit_in_bytes"
    try:  # memory first when lowering, memsw (memory + swap) first when raising
        (group / "memory.limit_in_bytes").write_text(limit)
        if memsw.exists():
            memsw.write_text(limit)
    except OSError:
        memsw.write_text(limit)
        (group / "memory.limit_in_bytes").write_text(limit)
    return MemoryCage(group, limit_kib, 1)


def _remove_stale(base: Path) -> None:
    """Remove the empty cages of supervisors that died without removing theirs."""
    for group in base.glob("peakops-job-*"):
        pid = group.name.rpartition("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            try:
                group.rmdir()
            except OSError:
                pass  # still holds a process, or not ours to remove


def _prefer_as_oom_victim() -> None:
    """In a job child before exec: when memory runs out around it, the kernel kills it
    first, never the supervisor beside it."""
    try:
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
    except OSError:
        pass


SAMPLING = "sampled every 0.1 s (every 0.02 s while memory grows), address-space backstop"


def available(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> str:
    """Which enforcement a worker here would get, read without creating anything (doctor)."""
    try:
        if proc_cgroup is None:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
    except OSError as exc:
        return f"{SAMPLING} (no /proc/self/cgroup: {exc.strerror})"
    base = own_group(proc_cgroup, root)
    if base is not None and base != root and (base / "cgroup.controllers").is_file() \
            and "memory" in _words(base / "cgroup.controllers"):
        return f"kernel (cgroup v2 memory.max under {base})"
    v1 = v1_group(proc_cgroup, root)
    if v1 is not None and os.access(v1, os.W_OK):
        return f"kernel (cgroup v1 memory.limit_in_bytes under {v1})"
    return f"{SAMPLING} (no writable cgroup v2 or v1 memory controller)"


def address_space_limit(hard_kib: int, vms_kib: int) -> int:
    """RLIMIT_AS in bytes for a job child without a cage, set once it has loaded its
    libraries (``vms_kib`` then): room for the hard limit twice over (thread stacks and
    allocator arenas reserve address space they do not use), so the allocation that would
    run far past the limit fails instead of the machine swapping."""
    return (vms_kib + 2 * hard_kib) * 1024
