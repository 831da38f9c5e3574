"""Wall time and peak resident memory of a command's whole process tree.

A sampler thread walks the tree (the command and every descendant, found again at each
sample, so short-lived ffmpeg processes are counted while they live) every
:data:`SAMPLE_INTERVAL_S` and sums their RSS. Every command runs in its own session so
that it, and anything it leaves behind, can be killed as a group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SAMPLE_INTERVAL_S = 0.05

_seen: dict[int, psutil.Process] = {}
"""Every process this benchmark started or saw in a measured tree (psutil checks a pid
was not reused before it signals one)."""


@dataclass
class Measurement:
    wall_s: float
    returncode: int
    peak_tree_kib: int = 0
    peak_single_kib: int = 0          # largest single process (what getrusage reports)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, tree KiB)
    stdout: str = ""
    stderr: str = ""

    @property
    def peak_tree_mb(self) -> float:
        return self.peak_tree_kib / 1024


class TreeSampler(threading.Thread):
    """Samples the RSS of ``pid`` and its descendants until :meth:`stop`."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL_S) -> None:
        super().__init__(name=f"rss-sampler-{pid}", daemon=True)
        self.pid, self.interval = pid, interval
        self.t0 = time.perf_counter()
        self.samples: list[tuple[float, int]] = []
        self.peak_tree_kib = self.peak_single_kib = 0
        self._done = threading.Event()
        self._procs: dict[int, psutil.Process] = {}

    def _tree(self) -> list[psutil.Process]:
        try:
            if self.pid not in self._procs:
                self._procs[self.pid] = psutil.Process(self.pid)
            root = self._procs[self.pid]
            found = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        # Keep Process objects so a pid reused by the OS is not mistaken for ours.
        procs = [self._procs.setdefault(p.pid, p) for p in found]
        for proc in procs:
            _seen.setdefault(proc.pid, proc)
        return procs

    def sample(self) -> None:
        total = 0
        for proc in self._tree():
            try:
                rss = proc.memory_info().rss // 1024
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total += rss
            self.peak_single_kib = max(self.peak_single_kib, rss)
        if total:
            self.samples.append((time.perf_counter() - self.t0, total))
            self.peak_tree_kib = max(self.peak_tree_kib, total)

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def run_measured(argv: list[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, timeout: float = 900.0,
                 capture: bool = True) -> Measurement:
    """Run ``argv`` to completion and measure it; kill its session after ``timeout``."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    start_epoch = time.time() - 1.0
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=out, text=True, errors="replace", start_new_session=True)
    track(proc.pid)
    sampler = TreeSampler(proc.pid)
    sampler.t0 = start
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # not reaped yet: the group id is still ours
        stdout, stderr = proc.communicate()
        stderr = (stderr or "") + f"\n[bench] killed after {timeout:g} s"
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): stop the command, then stop
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        wall = time.perf_counter() - start
        sampler.stop()
        kill_group(proc.pid, since=start_epoch)  # nothing it started may outlive it
    return Measurement(wall_s=wall, returncode=proc.returncode,
                       peak_tree_kib=sampler.peak_tree_kib,
                       peak_single_kib=sampler.peak_single_kib, samples=sampler.samples,
                       stdout=stdout or "", stderr=stderr or "")


def kill_group(pgid: int, *, since: float) -> int:
    """SIGKILL what is left of process group ``pgid`` (members created after ``since``).

    Looked up member by member, so a group id reused after the leader was reaped
    can never hit somebody else's processes.
    """
    killed = 0
    for proc in psutil.process_iter(["create_time"]):
        try:
            if proc.info["create_time"] < since or os.getpgid(proc.pid) != pgid:
                continue
            proc.kill()
            killed += 1
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return killed


def kill_leftovers() -> int:
    """SIGKILL every process this benchmark started or measured that still runs."""
    killed = 0
    for proc in list(_seen.values()):
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()
                killed += 1
        except psutil.NoSuchProcess:
            continue
    return killed


def track(pid: int) -> psutil.Process | None:
    """Remember a process we started, for :func:`kill_leftovers`."""
    try:
        return _seen.setdefault(pid, psutil.Process(pid))
    except psutil.NoSuchProcess:
        return None
