"""Starting and stopping the local worker service (``peakops batch`` or ``peakops worker``).

The console never imports ``batch``: it runs ``peakops batch`` with the same executable as
a separate process (argv list, no shell) on its own home and config file, and stops it
by its pid.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from core.config import Settings

logger = logging.getLogger(__name__)


def peakops_argv(*args: str) -> list[str]:
    """argv that runs ``peakops ARGS`` with this same interpreter or frozen executable."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "cli", *args]


def _global_args(settings: Settings) -> list[str]:
    args = ["--home", str(settings.home)]
    if settings.config_file is not None and settings.config_file.exists():
        args = ["--config", str(settings.config_file), *args]
    return args


def service_command(settings: Settings) -> list[str]:
    """``peakops batch`` (worker + off-peak scheduler) on this console's home and config."""
    return peakops_argv(*_global_args(settings), "batch")


def running_worker(workers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first worker with a fresh heartbeat that is not stopped, if any."""
    for w in workers:
        if not w["stale"] and w["state"] != "stopped":
            return w
    return None


def start_service(settings: Settings) -> subprocess.Popen:
    """Start the service in the background; its output goes to ``HOME/logs/service.log``."""
    argv = service_command(settings)
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "service.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=str(settings.home), start_new_session=True)
    logger.info("started the worker service, pid %s: %s", proc.pid, " ".join(argv))
    return proc


def stop_pid(pid: int, host: str | None) -> str:
    """Ask a local worker to stop (SIGTERM: it finishes the current step and exits)."""
    if host and host != socket.gethostname():
        return f"worker pid {pid} runs on {host}; stop it there"
    try:
        proc = psutil.Process(pid)
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return f"worker pid {pid} is not running"
    if "-m cli" not in cmdline and "peakops" not in cmdline and not getattr(
            sys, "frozen", False):
        return f"pid {pid} is not a PeakOps worker ({cmdline[:60]})"
    os.kill(pid, signal.SIGTERM)
    return f"asked worker pid {pid} to stop"


def log_path(settings: Settings) -> Path:
    return settings.home / "logs" / "service.log"
