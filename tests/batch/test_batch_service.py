"""``peakops batch`` as real processes: windows under a shifted clock (libfaketime), soft
and hard window end, pause after the current video, run-now.

The shifted clock comes from Debian's ``faketime`` (scripts/ensure-system-deps.sh
installs it). ``FAKETIME_DONT_RESET=1`` lets the job children continue the service's
clock instead of starting again at the given time.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core import samples
from core.windows import DAYS
from tests.helpers import REPO, cli_env, cli_json, run_cli

SHIM = Path(__file__).parent / "faketime_shim"
FAST = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "4", "PEAKOPS_DISPATCH_INTERVAL": "1",
        "PEAKOPS_RETRY_BACKOFF": "0", "TZ": "UTC"}
NIGHTS = "tue 22:00-06:00"


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def faketime_env(start: str) -> dict[str, str]:
    """Environment that runs a process (and its children) on a clock from ``start``."""
    assert shutil.which("faketime"), "faketime missing: run scripts/ensure-system-deps.sh"
    libraries = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    assert libraries, "libfaketime missing: run scripts/ensure-system-deps.sh"
    return {"LD_PRELOAD": str(libraries[0]), "FAKETIME": f"@{start}",
            "FAKETIME_DONT_RESET": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": f"{SHIM}:{REPO}", "TZ": "UTC"}


class Batch:
    """A running ``peakops batch``; ``fake_start`` runs it under libfaketime."""

    def __init__(self, home: Path, fake_start: str | None = None, **env: str) -> None:
        self.home = home
        self.log = home.parent / f"{home.name}-batch.log"
        env = cli_env(home, **{**FAST, **env})
        argv = [sys.executable, "-m", "cli", "batch"]
        if fake_start:
            # The library directly, not the `faketime` wrapper: SIGTERM must reach the service.
            env.update(faketime_env(fake_start))
        self.started = time.monotonic()
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(argv, cwd=home.parent, env=env,
                                         stdout=subprocess.DEVNULL, stderr=log)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def wait_elapsed(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds - self.elapsed()))

    def stop(self) -> str:
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        text = self.log.read_text()
        assert code == 0, text[-3000:]
        return text


def submit(home: Path, *clips: Path, **env: str) -> list[int]:
    proc = run_cli(home, "submit", "--off-peak", *map(str, clips), check=True,
                   **{**FAST, **env})
    ids = [int(line.split("\t")[0]) for line in proc.stdout.splitlines()]
    assert len(ids) == len(clips)
    return ids


def rows(home: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(home / "peakops.db", timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def status(home: Path) -> dict[int, str]:
    return dict(rows(home, "SELECT id, status FROM uploads"))


def events(home: Path, upload_id: int, kind: str) -> list[tuple[float, str]]:
    return rows(home, "SELECT at, message FROM events WHERE upload_id = ? AND kind = ? "
                "ORDER BY id", [upload_id, kind])


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def idle(home: Path) -> bool:
    return not rows(home, "SELECT 1 FROM uploads WHERE status IN ('QUEUED', 'PROCESSING')")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, list[Path]]:
    folder = tmp_path_factory.mktemp("batch-clips")
    return {
        "short": [samples.make_clip(folder / f"short-{i}.mp4", seconds=2 + i, width=160,
                                    height=120) for i in range(3)],
        "medium": [samples.make_clip(folder / f"medium-{i}.mp4", seconds=10 + i, width=320,
                                     height=240) for i in range(5)],
        "long": [samples.make_clip(folder / f"long-{i}.mp4", seconds=20 + i, width=320,
                                   height=240) for i in range(3)],
    }


@pytest.fixture(scope="module")
def slow_clip(tmp_path_factory) -> Path:
    """Cheap by the estimate (30 s at 640x360: ~3.5 s at the default rate), slow to do:
    one GOP, so each of 60 frames decodes from the start (~15 s in all, here)."""
    folder = tmp_path_factory.mktemp("batch-slow")
    return samples.make_clip(folder / "one-gop.mp4", seconds=30, width=640, height=360,
                             keyint=750)


def test_faketime_reaches_the_service_and_its_job_children(tmp_path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c",
         "import subprocess, sys, time; time.sleep(0.2); print(time.time()); "
         "print(subprocess.run([sys.executable, '-c', 'import time; print(time.time())'], "
         "capture_output=True, text=True).stdout)"],
        env={**cli_env(tmp_path / "home"), **faketime_env("2026-12-01 21:59:50")},
        capture_output=True, text=True, timeout=30, check=True)
    parent, child = map(float, probe.stdout.split())
    start = epoch("2026-12-01T21:59:50")
    assert start + 0.2 <= parent < start + 10  # the clock runs on from the given time
    assert parent <= child < start + 10  # children continue it (FAKETIME_DONT_RESET)


def test_window_opens_at_22_and_dispatch_stops_at_06(tmp_path, clips) -> None:
    """Two services side by side: one from Tue 21:59:52, one from Wed 05:59:54."""
    evening, morning = tmp_path / "evening", tmp_path / "morning"
    early = submit(evening, *clips["short"])
    late = submit(morning, *clips["medium"], PEAKOPS_MAX_FRAMES_PER_VIDEO="20")
    opens, closes = epoch("2026-12-01T22:00:00"), epoch("2026-12-02T06:00:00")
    first = Batch(evening, "2026-12-01 21:59:52", PEAKOPS_OFFPEAK_WINDOWS=NIGHTS)
    second = Batch(morning, "2026-12-02 05:59:54", PEAKOPS_OFFPEAK_WINDOWS=NIGHTS,
                   PEAKOPS_MAX_FRAMES_PER_VIDEO="20")
    try:
        first.wait_elapsed(5.5)  # 21:59:57 for the evening service
        assert set(status(evening).values()) == {"DEFERRED"}
        wait_for(lambda: set(status(evening).values()) == {"DONE"}, 60, "evening DONE")
        second.wait_elapsed(9)  # 06:00:03
        wait_for(lambda: idle(morning), 60, "the morning's running video to finish")
        time.sleep(2)
        morning_status = status(morning)
    finally:
        evening_log, morning_log = first.stop(), second.stop()
    for upload_id in early:
        [(at, message)] = events(evening, upload_id, "dispatched")
        assert opens <= at < opens + 60, (at, message)  # the service saw the shifted clock
        assert "window until Wed 06:00" in message
    assert "next opens 2026-12-01T22:00:00+00:00" in evening_log
    assert "window opened (window) until 2026-12-02T06:00:00+00:00" in evening_log
    assert "dispatched 1 upload(s)" in evening_log
    done = [i for i in late if morning_status[i] == "DONE"]
    deferred = [i for i in late if morning_status[i] == "DEFERRED"]
    assert done and deferred and len(done) + len(deferred) == len(late), morning_status
    dispatched = [at for i in late for at, _ in events(morning, i, "dispatched")]
    assert dispatched and max(dispatched) < closes  # nothing dispatched after 06:00
    for upload_id in deferred:
        assert not events(morning, upload_id, "claimed")
    assert "window closed (outside the schedule); next opens 2026-12-08T22:00" in morning_log


def test_soft_and_hard_window_end(tmp_path, clips, slow_clip) -> None:
    """At 06:00 the soft service finishes its video; the hard one hands it back."""
    closes = epoch("2026-12-02T06:00:00")
    homes = {"soft": tmp_path / "soft", "hard": tmp_path / "hard"}
    ids = {policy: submit(home, slow_clip, clips["short"][0],
                          PEAKOPS_MAX_FRAMES_PER_VIDEO="60")
           for policy, home in homes.items()}
    services = {policy: Batch(home, "2026-12-02 05:59:50", PEAKOPS_OFFPEAK_WINDOWS=NIGHTS,
                              PEAKOPS_WINDOW_END_POLICY=policy,
                              PEAKOPS_MAX_FRAMES_PER_VIDEO="60")
                for policy, home in homes.items()}
    try:
        services["soft"].wait_elapsed(12)  # 06:00:02
        for home in homes.values():
            wait_for(lambda h=home: idle(h), 60, "both services to settle after 06:00")
        time.sleep(1.5)
        final = {policy: status(home) for policy, home in homes.items()}
    finally:
        logs = {policy: service.stop() for policy, service in services.items()}
    soft, hard = homes["soft"], homes["hard"]
    (long_soft, short_soft), (long_hard, short_hard) = ids["soft"], ids["hard"]
    # Soft: the long video started before 06:00 and finished after it.
    assert final["soft"] == {long_soft: "DONE", short_soft: "DEFERRED"}, logs["soft"][-3000:]
    started, finished = rows(soft, "SELECT started_at, finished_at FROM uploads WHERE id = ?",
                             [long_soft])[0]
    assert started < closes < finished
    assert events(soft, short_soft, "withdrawn") and not events(soft, short_soft, "claimed")
    # Hard: stopped at 06:00, back to DEFERRED with its checkpointed frames.
    assert final["hard"] == {long_hard: "DEFERRED", short_hard: "DEFERRED"}, \
        logs["hard"][-3000:]
    [(at, message)] = events(hard, long_hard, "released")
    assert closes <= at < closes + 5
    assert "window end policy hard" in message and message.endswith("back to DEFERRED")
    frames = rows(hard, "SELECT COUNT(*) FROM frames WHERE upload_id = ?", [long_hard])[0][0]
    assert 0 < frames < 60
    assert rows(hard, "SELECT attempts FROM uploads WHERE id = ?", [long_hard]) == [(0,)]
    assert not events(hard, short_hard, "claimed")


def always_open(**env: str) -> dict[str, str]:
    return {"PEAKOPS_OFFPEAK_WINDOWS": "daily 00:00-24:00", **env}


def test_pause_after_current_then_resume(tmp_path, clips) -> None:
    home = tmp_path / "home"
    running, waiting = submit(home, clips["long"][1], clips["short"][1],
                              PEAKOPS_MAX_FRAMES_PER_VIDEO="24")
    service = Batch(home, **always_open(PEAKOPS_MAX_FRAMES_PER_VIDEO="24"))
    try:
        wait_for(lambda: rows(home, "SELECT COUNT(*) FROM frames WHERE upload_id = ?",
                              [running])[0][0] >= 2, 60, "the first video to be extracting")
        run_cli(home, "pause", "--after-current", check=True)
        wait_for(lambda: status(home)[running] == "DONE", 60, "the current video to finish")
        time.sleep(2.5)
        assert status(home)[waiting] == "DEFERRED"
        assert not events(home, waiting, "claimed")
        assert cli_json(home, "windows")["paused"].startswith("batch paused after the current")
        run_cli(home, "resume", check=True)
        wait_for(lambda: status(home)[waiting] == "DONE", 60, "the next video after resume")
    finally:
        service.stop()
    assert not events(home, running, "released")  # the current one was never interrupted


def test_run_now_opens_a_closed_schedule(tmp_path, clips) -> None:
    home = tmp_path / "home"
    later = datetime.now(UTC) + timedelta(hours=12)
    closed = f"{DAYS[later.weekday()]} {later:%H:%M}-{later + timedelta(minutes=1):%H:%M}"
    env = {"PEAKOPS_OFFPEAK_WINDOWS": closed}
    [upload_id] = submit(home, clips["short"][2], **env)
    service = Batch(home, **env)
    try:
        time.sleep(2.5)
        assert status(home)[upload_id] == "DEFERRED"
        until = (datetime.now(UTC) + timedelta(hours=2)).strftime("%H:%M")
        run_cli(home, "run-now", "--until", until, check=True, **env)
        report = cli_json(home, "windows", **env)
        assert report["open"] is True and report["source"] == "run-now"
        assert report["run_now_until"].startswith(
            (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
        wait_for(lambda: status(home)[upload_id] == "DONE", 60, "run-now to process it")
        [(_, message)] = events(home, upload_id, "dispatched")
        assert message.startswith("dispatched in run-now until ") and until in message
        run_cli(home, "run-now", "--cancel", check=True, **env)
        assert cli_json(home, "windows", **env)["open"] is False
    finally:
        service.stop()
