"""One measured run of one approach on one video, each in a fresh scratch folder.

Approaches: ``baseline`` (bench.baseline), ``limit:<method>`` (bench.limit), ``peakops``
(``peakops process VIDEO --json`` end to end in a fresh home) and ``worker`` (``peakops
submit`` untimed, then ``peakops worker --burst`` timed: supervisor, job child and ffmpeg).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from bench.limit import METHODS
from bench.measure import Measurement, run_measured

REPO = Path(__file__).resolve().parents[1]
COUNT = 20
APPROACHES = ("baseline", *(f"limit:{m}" for m in METHODS), "peakops", "worker")
TIMEOUT_S = 1800.0


def peakops_env(home: Path) -> dict[str, str]:
    """The CLI's environment: a fresh home, no config file, defaults except the size cap
    (the long benchmark videos are larger than the 100 MB default of MAX_VIDEO_SIZE_MB)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PEAKOPS_", "MAX_", "CELERY_", "ENABLE_AWS"))}
    env.update({"PEAKOPS_HOME": str(home), "PEAKOPS_CONFIG": os.devnull,
                "PYTHONPATH": str(REPO), "PEAKOPS_MAX_VIDEO_SIZE_MB": "16384",
                "PEAKOPS_LOG_LEVEL": "warning"})
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def run(approach: str, video: Path, duration: float, workdir: Path, *,
        prefix: list[str] | None = None) -> tuple[Measurement, dict]:
    """Measure ``approach`` on ``video``; returns the measurement and what it produced.

    ``prefix`` wraps the measured command (``/usr/bin/time -v -o FILE``).
    """
    workdir.mkdir(parents=True)
    prefix = prefix or []
    try:
        if approach == "baseline":
            m = run_measured([*prefix, sys.executable, "-m", "bench.baseline", str(video),
                              str(workdir / "frames"), "--count", str(COUNT)],
                             cwd=REPO, timeout=TIMEOUT_S)
            return m, _check_json_line(m)
        if approach.startswith("limit:"):
            m = run_measured([*prefix, sys.executable, "-m", "bench.limit",
                              approach.split(":", 1)[1], str(video), str(workdir / "frames"),
                              "--duration", f"{duration:.3f}", "--count", str(COUNT)],
                             cwd=REPO, timeout=TIMEOUT_S)
            return m, _check_json_line(m)
        home = workdir / "home"
        env = peakops_env(home)
        if approach == "peakops":
            m = run_measured([*prefix, *cli("process", str(video), "--json")], env=env,
                             cwd=workdir, timeout=TIMEOUT_S)
            return m, _check_process(m)
        if approach == "worker":
            submitted = subprocess.run(cli("submit", str(video), "--json"), env=env, cwd=workdir,
                                       capture_output=True, text=True, timeout=TIMEOUT_S)
            if submitted.returncode != 0:
                raise RuntimeError(f"peakops submit failed: {submitted.stderr[-500:]}")
            upload_id = json.loads(submitted.stdout)[0]["upload_id"]
            m = run_measured([*prefix, *cli("worker", "--burst")], env=env, cwd=workdir,
                             timeout=TIMEOUT_S)
            return m, _check_worker(m, home, upload_id)
        raise ValueError(f"unknown approach {approach!r}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check_json_line(m: Measurement) -> dict:
    try:
        info = json.loads(m.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        info = {}
    info["ok"] = m.returncode == 0
    if not info["ok"]:
        info["error"] = m.stderr.strip()[-500:]
    return info


def _check_process(m: Measurement) -> dict:
    try:
        detail = json.loads(m.stdout)
    except json.JSONDecodeError:
        return {"ok": False, "error": (m.stderr or m.stdout).strip()[-500:]}
    upload = detail.get("upload", detail)  # `process --json` prints the upload's fields
    frames = len(detail.get("frames", []))
    return {"ok": m.returncode == 0 and upload["status"] == "DONE" and frames == COUNT,
            "status": upload["status"], "frames": frames,
            "error": upload.get("error_message")}


def _check_worker(m: Measurement, home: Path, upload_id: int) -> dict:
    with sqlite3.connect(home / "peakops.db", timeout=30) as db:
        status, peak = db.execute("SELECT status, peak_rss_kib FROM uploads WHERE id = ?",
                                  [upload_id]).fetchone()
        frames = db.execute("SELECT COUNT(*) FROM frames WHERE upload_id = ?",
                            [upload_id]).fetchone()[0]
    db.close()
    return {"ok": m.returncode == 0 and status == "DONE" and frames == COUNT, "status": status,
            "frames": frames, "supervisor_peak_kib": peak,
            "error": None if m.returncode == 0 else m.stderr.strip()[-500:]}
