"""Is a process still alive on this host? Used to judge leases and abandoned scratch files."""

from __future__ import annotations

import psutil


def pid_running(pid: int) -> bool:
    """Whether ``pid`` is a live process here.

    A zombie is dead: it has exited and waits to be reaped, which under a PID 1 that never
    reaps (some containers) is for ever, so ``psutil.pid_exists`` alone would keep a dead
    job's lease and scratch folder alive.
    """
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
