"""The job child and its supervisor: memory of the whole process tree, watched while it works.

The supervisor starts the child with the same executable (so a frozen app works too), in
its own process group, and samples the resident memory of the child and all its
descendants (ffmpeg included) every :data:`SAMPLE_INTERVAL_S`, every
:data:`FAST_SAMPLE_S` while it grows. During a job, a sample above the hard limit kills
the whole group at once (where a memory cgroup exists, the kernel enforces it first); after a job, a child above the soft
limit or past ``max_tasks_per_child`` is replaced. Every replacement is recorded.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from core.config import Settings
from core.jobs.cgroup import MemoryCage
from core.jobs.settle import JobOutcome
from core.procenv import exit_cause

logger = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.1
FAST_SAMPLE_S = 0.02
GROWING_FRACTION = 0.02
"""A sample this share of the hard limit above the one before counts as growing."""
READY_TIMEOUT_S = 60.0


def child_command() -> list[str]:
    """argv that starts a job child with this same program (frozen app or Python)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "_job-child"]
    return [sys.executable, "-m", "core.jobs.child"]


def tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, in KiB (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total // 1024


class JobChild:
    """One child process serving jobs over JSON lines."""

    def __init__(self, env: dict[str, str], settings: Settings,
                 cage: MemoryCage | None = None) -> None:
        """Without a ``cage``, the child limits its own address space (a backstop)."""
        env = {**env, "PEAKOPS_SUPERVISOR_PID": str(os.getpid())}
        self.proc = subprocess.Popen(
            child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=env, start_new_session=True, bufsize=1,
            preexec_fn=cage.preexec() if cage is not None else None)
        self.pid = self.proc.pid
        self.jobs_done = 0
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"child-{self.pid}-reader", daemon=True).start()
        start: dict[str, Any] = {"settings": settings.to_dict()}
        if cage is None:
            start["address_space_kib"] = settings.hard_memory_limit_kib
        self.send(start)
        ready = self.next_message(READY_TIMEOUT_S)
        if ready is None:  # its output ended: it died while starting, say how
            try:
                code = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = 0
            self.kill()
            raise RuntimeError(f"the job process {exit_cause(code)} while starting")
        if ready.get("event") != "ready":
            self.kill()
            raise RuntimeError(f"job child {self.pid} did not start (got {ready!r})")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("job child %s wrote a non-protocol line: %r", self.pid, line[:200])
        self.lines.put(None)  # EOF: the child is gone

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message, None at EOF; raises queue.Empty after ``timeout``."""
        return self.lines.get(timeout=timeout)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the child's whole process group (ffmpeg included) and reap it."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logger.error("job child %s did not die after SIGKILL", self.pid)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass

    def stop(self) -> None:
        """Close stdin so the child exits; kill it if it lingers."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


@dataclass(frozen=True)
class Limits:
    hard_kib: int
    job_timeout_s: float   # 0 = none
    stall_timeout_s: float  # 0 = none
    kernel: bool = False    # a memory cgroup enforces hard_kib: no kill by sampling


def watch_job(child: JobChild, job: dict[str, Any], limits: Limits, *,
              on_sample: Callable[[int, dict[str, Any] | None], None],
              should_stop: Callable[[], bool]) -> JobOutcome:
    """Send ``job`` to ``child`` and watch it until it reports, crosses a limit or dies.

    ``on_sample(rss_kib, progress)`` runs every sample (heartbeat, lease renewal);
    ``should_stop()`` returning True kills the job (shutdown, window end).
    """
    started = last_progress = time.monotonic()
    peak = 0
    started_epoch = time.time()
    previous_sample: tuple[float, int] | None = None  # (epoch, KiB), for the kill record
    interval = SAMPLE_INTERVAL_S
    child.send(job)
    while True:
        try:
            message = child.next_message(interval)
        except queue.Empty:
            message = {}
        now = time.monotonic()
        rss = tree_rss_kib(child.pid)
        sampled_at = time.time()
        peak = max(peak, rss)
        if message is None or (not message and not child.alive()):
            code = child.proc.wait()
            return JobOutcome("crash", message=f"the job process {exit_cause(code)}",
                           transient=True, category="internal", peak_kib=peak)
        if message.get("event") == "result" and message.get("out_of_memory"):
            child.kill()  # its heap may be half-built: a fresh child takes the retry
            return JobOutcome("hard-limit", category="memory", peak_kib=peak, message=(
                f"the job child ran out of address space ({message.get('message', '')}; "
                f"peak {peak} KiB, hard limit {limits.hard_kib} KiB)"))
        if message.get("event") == "result":
            return JobOutcome("result", ok=message["ok"], category=message.get("category"),
                           message=message.get("message", ""),
                           transient=message.get("transient", False), peak_kib=peak,
                           detail=message)
        if message.get("event") == "progress":
            last_progress = now
        on_sample(rss, message if message.get("event") == "progress" else None)
        # Tree RSS also counts shared library pages the cgroup does not charge again, so
        # under a kernel limit sampling only watches; the kernel stops the job exactly.
        if rss > limits.hard_kib and not limits.kernel:
            child.kill()
            # The crossing lies between the previous sample and this one: the figures that
            # bound how late the kill came (epoch seconds, comparable across processes).
            below_at, below_kib = previous_sample or (started_epoch, 0)
            logger.warning(
                "job child %s: hard limit %s KiB crossed: sample %.3f %s KiB over, previous "
                "sample %.3f %s KiB; tree killed at %.3f", child.pid, limits.hard_kib,
                sampled_at, rss, below_at, below_kib, time.time())
            return JobOutcome("hard-limit", category="memory", peak_kib=peak, message=(
                f"process tree reached {rss} KiB, over the hard limit of {limits.hard_kib} KiB "
                f"(peak {peak} KiB)"))
        if limits.job_timeout_s and now - started > limits.job_timeout_s:
            child.kill()
            return JobOutcome("timeout", category="timeout", transient=True, peak_kib=peak,
                           message=f"job ran longer than {limits.job_timeout_s:g} s")
        if limits.stall_timeout_s and now - last_progress > limits.stall_timeout_s:
            child.kill()
            return JobOutcome("stall", category="timeout", transient=True, peak_kib=peak,
                           message=f"no progress for {limits.stall_timeout_s:g} s")
        if should_stop():
            child.kill()
            return JobOutcome("stopped", peak_kib=peak, message="stopped by the worker")
        growing = previous_sample is not None and \
            rss - previous_sample[1] > limits.hard_kib * GROWING_FRACTION
        interval = FAST_SAMPLE_S if growing else SAMPLE_INTERVAL_S
        previous_sample = (sampled_at, rss)
