"""Is a process still alive on this host? Used to judge leases and abandoned scratch files."""

from __future__ import annotations

import functools
import os
from pathlib import Path


def pid_running(pid: int) -> bool:
    """Whether ``pid`` is a live process here.

    A zombie is dead: it has exited and waits to be reaped, which under a PID 1 that never
    reaps (some containers) is for ever, so ``psutil.pid_exists`` alone would keep a dead
    job's lease and scratch folder alive. psutil is imported here, not at the top: the
    job child loads this module (through core.app) but never judges a pid.
    """
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id",
                     "/proc/sys/kernel/random/boot_id")


@functools.lru_cache(maxsize=1)
def machine_id() -> str:
    """A short id of this machine: ``/etc/machine-id``, else the kernel's boot id (a
    container without a machine id), else empty. Two clones of one image share a
    hostname but not this."""
    for name in _MACHINE_ID_FILES:
        try:
            text = Path(name).read_text().strip().replace("-", "")
        except OSError:
            continue
        if text:
            return text[:8]
    return ""


def host_id() -> str:
    """This host as lease owner names carry it: ``hostname`` or ``hostname.<machine id>``.

    A worker judges a lease owner by its process only when the owner's host id is its
    own; any other owner is judged by lease expiry alone.
    """
    mid = machine_id()
    name = os.uname().nodename  # gethostname() itself, without loading socket in a job child
    return f"{name}.{mid}" if mid else name


def owner_alive(owner: str) -> bool:
    """Whether the process named in a lease owner (``role@host:pid``) still runs here.

    An owner on another host (or in a form this code does not know) answers True: not
    ours to judge, its lease expiry decides.
    """
    try:
        host, pid = owner.rsplit("@", 1)[1].rsplit(":", 1)
        pid_number = int(pid)
    except (IndexError, ValueError):
        return True
    if host != host_id():
        return True
    return pid_running(pid_number)
