"""The environment for programs that are not ours (ffmpeg, system tools).

A frozen (PyInstaller) PeakOps points ``LD_LIBRARY_PATH`` at its bundled libraries and
keeps the caller's value in ``LD_LIBRARY_PATH_ORIG``. A system program started with that
environment would load our copies instead of its own, and fail in confusing ways.
Our own job child is the frozen executable again and keeps the environment as it is.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping

_VAR = "LD_LIBRARY_PATH"


def clean_env(env: Mapping[str, str] | None = None, *,
              frozen: bool | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: ``os.environ``) with the original library path restored.

    ``frozen`` defaults to whether this process is a PyInstaller app; elsewhere the
    environment is returned as it is.
    """
    result = dict(os.environ if env is None else env)
    if not (getattr(sys, "frozen", False) if frozen is None else frozen):
        return result
    original = result.pop(_VAR + "_ORIG", None)
    if original is None:
        result.pop(_VAR, None)
    else:
        result[_VAR] = original
    return result


PR_SET_PDEATHSIG = 1
_libc = None


def _linux_libc():  # noqa: ANN202 -- ctypes.CDLL, loaded once
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def die_with_parent(parent_pid: int) -> None:
    """Make this process die (SIGKILL) when its parent dies (PR_SET_PDEATHSIG, Linux);
    exit at once if ``parent_pid`` is already gone (the signal came too late to arm)."""
    libc = _linux_libc()
    if libc is not None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def die_with_parent_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the started program die (SIGKILL) when this process dies.

    The job child dies with its supervisor (:func:`die_with_parent`); giving the programs
    it starts (ffmpeg) the same signal closes the chain, so nothing a job started
    outlives a worker that was killed -9. Linux only; elsewhere None.
    """
    if _linux_libc() is None:  # loaded before fork: the preexec function only calls into it
        return None
    parent = os.getpid()
    return lambda: die_with_parent(parent)


_CRASHES = {"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT", "SIGSYS"}


def exit_cause(returncode: int) -> str:
    """How a child process of ours ended, as words that follow "... " in a message
    ("was killed by SIGKILL (...)"), never a bare exit number."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if name == "SIGKILL":
            return "was killed by SIGKILL (out of memory, or stopped by an operator)"
        if name in _CRASHES:
            return f"crashed ({name}: a fault in libav or another library)"
        return f"was stopped by {name}"
    return "ended without reporting a result (an unexpected error; see the log)"
