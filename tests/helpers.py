"""Helpers shared by tests: settings in a temp home, running the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from core.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
MEDIA_DEV = REPO / "tests" / "media" / "dev"
"""Real camera and phone files, with their sources and licences in MANIFEST.md there."""


def make_settings(home: Path, **overrides) -> Settings:
    return load_settings({"PEAKOPS_HOME": str(home)}, config_file=home.parent / "no-config.toml",
                         overrides=overrides)


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAKOPS_", "MAX_", "CELERY_"))}
    env.update({"PEAKOPS_HOME": str(home), "PEAKOPS_CONFIG": os.devnull,
                "PYTHONPATH": str(REPO)}, **extra)
    return env


def run_cli(home: Path, *args: str, timeout: float = 120, check: bool = False,
            **env: str) -> subprocess.CompletedProcess:
    """Run ``peakops ARGS`` as a real process with its home in ``home``."""
    proc = subprocess.run([sys.executable, "-m", "cli", *args], cwd=home.parent,
                          env=cli_env(home, **env), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"peakops {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def cli_json(home: Path, *args: str, **env: str):
    proc = run_cli(home, *args, "--json", check=True, **env)
    return json.loads(proc.stdout)


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition",
             interval: float = 0.05, logs: Iterable[Path] = ()) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; fail after
    ``timeout`` seconds naming ``what``, with the tail of each of ``logs`` (the processes
    the test started) to say why."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                            for p in map(Path, logs) if p.exists())
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{tails}")
        time.sleep(interval)


def console_settled(qtbot, window):
    """Wait until the console has no read or write in flight, then for one poll of the
    database made after that: what the table shows then is what every action left."""
    qtbot.waitUntil(lambda: window.runner.pending == 0, timeout=10000)
    with qtbot.waitSignal(window.uploads_loaded, timeout=10000):
        window.poll()


class HoldPoint:
    """The test's side of :mod:`core.holdpoint`: stop a job at a known frame, act on it
    while it surely runs (kill it, move the clock, pause the batch), then release it."""

    def __init__(self, folder: Path) -> None:
        from core.holdpoint import marker_for
        self.path = folder / "hold"
        self.marker = marker_for(self.path)

    @property
    def env(self) -> dict[str, str]:
        return {"PEAKOPS_HOLD_FILE": str(self.path)}

    def arm(self, after_frames: int = 0) -> None:
        """Hold the next job that reaches plan position ``after_frames``."""
        self.marker.unlink(missing_ok=True)
        self.path.write_text(str(after_frames))

    def wait_reached(self, timeout: float = 60.0) -> dict:
        """The held job's ``{"upload_id", "position", "pid"}`` once it waits."""
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"no job reached the hold point within {timeout:g} s")
            time.sleep(0.02)
        return json.loads(self.marker.read_text())

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
