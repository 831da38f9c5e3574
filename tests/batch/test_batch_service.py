"""The off-peak batch with a real worker and real clips, on a clock the test sets.

The scheduler's runtime and the worker's hold take the clock as a parameter, so a window
opens at 22:00 and closes at 06:00 because the test says what time it is, not because
the machine happened to be at that point; a running video is met at a hold point the test
controls. One smoke test runs the real ``peakops batch`` process in a window that is
always open and asserts only outcomes.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from batch.hold import hold_for
from batch.scheduler import Runtime
from batch.worker import Worker
from core.config import Settings, load_settings
from core.media import samples
from core.schedule import offpeak
from core.store import state
from tests.helpers import HoldPoint, cli_env, cli_json, run_cli, wait_for

FAST = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "6", "PEAKOPS_RETRY_BACKOFF": "0", "TZ": "UTC"}
NIGHTS = {"PEAKOPS_OFFPEAK_WINDOWS": "tue 22:00-06:00"}
ALWAYS = {"PEAKOPS_OFFPEAK_WINDOWS": "daily 00:00-24:00"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Clock:
    """The time the scheduler and the worker's hold see: whatever the test set last."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Home:
    """A home folder, its environment and settings, its runtime (the scheduler's jobs)."""

    def __init__(self, path: Path, clock: Clock, **env: str) -> None:
        self.path, self.clock = path, clock
        self.env = cli_env(path, **{**FAST, **env})
        self.settings: Settings = load_settings(self.env)
        self.runtime = Runtime(self.settings, BackgroundScheduler(timezone="UTC"), clock)

    def submit(self, *clips: Path) -> list[int]:
        proc = run_cli(self.path, "submit", "--off-peak", *map(str, clips), check=True,
                       **{k: v for k, v in self.env.items() if k.startswith("PEAKOPS_")})
        ids = [int(line.split("\t")[0]) for line in proc.stdout.splitlines()]
        assert len(ids) == len(clips)
        return ids

    def tick(self, when: datetime | None = None) -> offpeak.Plan:
        if when is not None:
            self.clock.now = when
        return self.runtime.tick(self.clock())

    def rows(self, sql: str, params=()) -> list[tuple]:
        conn = sqlite3.connect(self.path / "peakops.db", timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def status(self) -> dict[int, str]:
        return dict(self.rows("SELECT id, status FROM uploads"))

    def events(self, upload_id: int, kind: str) -> list[tuple[float, str]]:
        return self.rows("SELECT at, message FROM events WHERE upload_id = ? AND kind = ? "
                         "ORDER BY id", [upload_id, kind])

    def _start_worker(self, *, burst: bool) -> tuple[threading.Thread, list[Worker]]:
        """The batch service's worker in a thread (it opens its database there), held by
        the window on ``clock``; its job child is a real process."""
        made: list[Worker] = []
        ready = threading.Event()

        def run() -> None:
            try:
                worker = Worker(self.settings, burst=burst, child_env=self.env,
                                hold=hold_for(self.settings, clock=self.clock))
                made.append(worker)
            finally:
                ready.set()
            worker.run()

        thread = threading.Thread(target=run, name="worker")
        thread.start()
        ready.wait(timeout=60)
        assert made, "the worker did not start"
        return thread, made

    def burst(self) -> None:
        """Run what is QUEUED, then return (``peakops worker --burst`` on our clock)."""
        thread, _ = self._start_worker(burst=True)
        thread.join(timeout=180)
        assert not thread.is_alive(), "the burst worker did not finish"

    @contextmanager
    def worker(self) -> Iterator[Worker]:
        """A worker that runs until the block ends."""
        thread, [worker] = self._start_worker(burst=False)
        try:
            yield worker
        finally:
            worker.request_stop()
            thread.join(timeout=60)
            assert not thread.is_alive(), "the worker did not stop"

    def close(self) -> None:
        self.runtime.close()


@pytest.fixture
def homes(tmp_path) -> Iterator[callable]:
    made: list[Home] = []

    def make(name: str, now: str, **env: str) -> Home:
        home = Home(tmp_path / name, Clock(at(now)), **env)
        made.append(home)
        return home

    yield make
    for home in made:
        home.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, list[Path]]:
    folder = tmp_path_factory.mktemp("batch-clips")
    return {
        "short": [samples.make_clip(folder / f"short-{i}.mp4", seconds=2 + i, width=160,
                                    height=120) for i in range(3)],
        "long": [samples.make_clip(folder / f"long-{i}.mp4", seconds=10 + i, width=320,
                                   height=240) for i in range(2)],
    }


def test_window_opens_at_22_and_dispatch_stops_at_06(homes, clips, caplog) -> None:
    caplog.set_level(logging.INFO, logger="batch.scheduler")
    evening = homes("evening", "2026-12-01T21:59:57", **NIGHTS)
    ids = evening.submit(*clips["short"])
    opens, closes = at("2026-12-01T22:00:00"), at("2026-12-02T06:00:00")
    assert not evening.tick().open
    assert set(evening.status().values()) == {"DEFERRED"}
    assert "next opens 2026-12-01T22:00:00+00:00" in caplog.text
    moment = opens
    while set(evening.status().values()) != {"DONE"}:
        assert moment < opens + timedelta(minutes=5), evening.status()
        assert evening.tick(moment).open
        evening.burst()
        moment += timedelta(seconds=30)
    assert "window opened (window) until 2026-12-02T06:00:00+00:00" in caplog.text
    assert "dispatched 1 upload(s)" in caplog.text
    for upload_id in ids:
        [(when, message)] = evening.events(upload_id, "dispatched")
        assert opens.timestamp() <= when < opens.timestamp() + 300, (when, message)
        assert "window until Wed 06:00" in message

    morning = homes("morning", "2026-12-02T05:59:54", **NIGHTS)
    late = morning.submit(*clips["long"])
    assert morning.tick().open
    [first] = [i for i in late if morning.status()[i] == "QUEUED"]  # lookahead 1
    morning.burst()
    plan = morning.tick(at("2026-12-02T06:00:03"))
    assert not plan.open and plan.to_dispatch() == []
    morning.burst()
    assert morning.status() == {i: "DONE" if i == first else "DEFERRED" for i in late}
    for upload_id in late:
        for when, _ in morning.events(upload_id, "dispatched"):
            assert when < closes.timestamp()
        if upload_id != first:
            assert not morning.events(upload_id, "claimed")
    assert "window closed (outside the schedule); next opens 2026-12-08T22:00" in caplog.text


@pytest.mark.parametrize("policy", ["soft", "hard"])
def test_soft_and_hard_window_end(homes, clips, tmp_path, policy) -> None:
    """At 06:00 a soft end lets the running video finish; a hard end hands it back."""
    hold = HoldPoint(tmp_path)
    home = homes(policy, "2026-12-02T05:59:50", **NIGHTS, PEAKOPS_WINDOW_END_POLICY=policy,
                 **hold.env)
    running, waiting = home.submit(clips["long"][0], clips["short"][0])
    home.tick()
    assert home.status() == {running: "QUEUED", waiting: "DEFERRED"}
    hold.arm(after_frames=2)
    try:
        with home.worker():
            assert hold.wait_reached()["upload_id"] == running
            assert not home.tick(at("2026-12-02T06:00:02")).open
            if policy == "soft":
                hold.release()
                wait_for(lambda: home.status()[running] == "DONE", what="the video to finish")
            else:
                wait_for(lambda: home.status()[running] == "DEFERRED",
                         what="the hard window end to hand the video back")
                hold.release()
    finally:
        hold.release()
    assert home.status()[waiting] == "DEFERRED"
    assert not home.events(waiting, "claimed")
    if policy == "soft":
        assert not home.events(running, "released")
        return
    [(_, message)] = home.events(running, "released")
    assert "window end policy hard" in message and message.endswith("back to DEFERRED")
    frames = home.rows("SELECT COUNT(*) FROM frames WHERE upload_id = ?", [running])
    assert frames == [(2,)]  # checkpointed before the hold point: the next window resumes
    assert home.rows("SELECT attempts FROM uploads WHERE id = ?", [running]) == [(0,)]


def test_pause_after_current_then_resume(homes, clips, tmp_path) -> None:
    hold = HoldPoint(tmp_path)
    home = homes("home", "2026-12-02T12:00:00", **ALWAYS, **hold.env)
    running, waiting = home.submit(clips["long"][1], clips["short"][1])
    home.tick()
    hold.arm(after_frames=2)
    try:
        with home.worker():
            assert hold.wait_reached()["upload_id"] == running
            run_cli(home.path, "pause", "--after-current", check=True)
            hold.release()
            wait_for(lambda: home.status()[running] == "DONE", what="the current video")
            plan = home.tick(at("2026-12-02T12:01:00"))
            assert plan.pause.startswith("batch paused after the current")
            assert plan.to_dispatch() == [] and home.status()[waiting] == "DEFERRED"
            report = cli_json(home.path, "windows", "--at", "2026-12-02T12:01:00")
            assert report["paused"].startswith("batch paused after the current")
            run_cli(home.path, "resume", check=True)
            home.tick(at("2026-12-02T12:02:00"))
            wait_for(lambda: home.status()[waiting] == "DONE", what="the next video")
    finally:
        hold.release()
    assert not home.events(running, "released")  # the current one was never interrupted
    [(when, _)] = home.events(waiting, "dispatched")
    assert when == at("2026-12-02T12:02:00").timestamp()  # only after the resume


def test_run_now_opens_a_closed_schedule(homes, clips) -> None:
    home = homes("home", "2026-12-02T12:00:00", **NIGHTS)  # Wednesday noon: closed
    [upload_id] = home.submit(clips["short"][2])
    assert not home.tick().open and home.status()[upload_id] == "DEFERRED"
    until = at("2026-12-02T14:00:00")
    state.put(home.runtime.app.db, offpeak.RUN_NOW_UNTIL, until.timestamp())  # what run-now writes
    plan = home.tick(at("2026-12-02T12:00:05"))
    assert plan.open and plan.opening.source == "run-now"
    with home.worker():
        wait_for(lambda: home.status()[upload_id] == "DONE", what="run-now to process it")
    [(_, message)] = home.events(upload_id, "dispatched")
    assert message.startswith("dispatched in run-now until Wed 14:00")
    run_cli(home.path, "run-now", "--cancel", check=True)
    assert not home.tick(at("2026-12-02T12:01:00")).open


def test_batch_service_smoke_in_an_always_open_window(tmp_path, clips) -> None:
    """The real ``peakops batch`` process: the backlog is done, SIGTERM stops it cleanly."""
    home = tmp_path / "home"
    env = {**FAST, **ALWAYS, "PEAKOPS_DISPATCH_INTERVAL": "1"}
    proc = run_cli(home, "submit", "--off-peak", *map(str, clips["short"][:2]), check=True,
                   **env)
    ids = [int(line.split("\t")[0]) for line in proc.stdout.splitlines()]
    log = tmp_path / "batch.log"
    with log.open("w") as out:
        service = subprocess.Popen([sys.executable, "-m", "cli", "batch"],
                                   cwd=tmp_path, env=cli_env(home, **env),
                                   stdout=subprocess.DEVNULL, stderr=out)
    try:
        wait_for(lambda: {u["id"]: u["status"] for u in cli_json(home, "list")}
                 == dict.fromkeys(ids, "DONE"), timeout=120, what="the backlog to be done")
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    for upload_id in ids:
        kinds = [e["kind"] for e in cli_json(home, "show", str(upload_id))["events"]]
        assert kinds.count("dispatched") == 1 and kinds.count("done") == 1, kinds
    text = log.read_text()
    assert "Traceback" not in text
    # One line per job, not APScheduler's two lines per tick (every second here).
    assert "executed successfully" not in text and "Running job" not in text, text[-2000:]
    assert sum("job ended DONE" in line for line in text.splitlines()) == len(ids), text[-3000:]
