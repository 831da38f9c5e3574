"""Off-peak dispatch with explicit ``now``: estimate, fit-before-close, order, pause,
run-now, the worker's hold, the scheduler lock and ``peakops windows``."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from batch.scheduler import Runtime, acquire_lock
from core.app import open_app
from core.errors import StateError
from core.schedule import offpeak
from core.schedule.estimate import History, estimate_seconds, history_from, load_history
from core.schedule.offpeak import Control, hold_reason, open_interval, plan
from core.schedule.windows import parse_windows
from core.store import lifecycle, queries, state
from tests.helpers import cli_env, cli_json, make_settings, run_cli, wait_for

NIGHTS = parse_windows("mon-fri 22:00-06:00")  # UTC
TUE_0550 = datetime(2026, 12, 2, 5, 50, tzinfo=UTC)  # Wednesday 05:50: 10 min left
TUE_2300 = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
WED_1200 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # closed
TEN_MIN_HD = {"duration": 600.0, "width": 1280, "height": 720}


def row(upload_id: int, **fields) -> dict:
    return {"id": upload_id, "original_name": f"v{upload_id}.mp4", "mode": "off-peak",
            "frames_done": 0, **TEN_MIN_HD, **fields}


def done_row(took: float, **fields) -> dict:
    return {"started_at": 1000.0, "finished_at": 1000.0 + took, **TEN_MIN_HD, **fields}


TWICE_REALTIME = history_from([done_row(1200.0)])  # a 10-minute video took 20 minutes


# --------------------------------------------------------------------------- estimate


def test_estimate_learns_from_history_and_scales_with_duration_and_resolution() -> None:
    assert estimate_seconds(row(1), TWICE_REALTIME) == pytest.approx(1200.0)
    assert estimate_seconds(row(1, duration=300.0), TWICE_REALTIME) == pytest.approx(600.0)
    assert estimate_seconds(row(1, width=640, height=360), TWICE_REALTIME) == \
        pytest.approx(300.0)
    mixed = history_from([done_row(1200.0), done_row(600.0, duration=300.0)])
    assert mixed.rate == pytest.approx(TWICE_REALTIME.rate) and mixed.samples == 2


def test_estimate_without_history_and_for_unknown_duration_and_checkpoints() -> None:
    empty = history_from([])
    assert empty == History(rate=None, samples=0, median_seconds=None)
    assert estimate_seconds(row(1), empty) == pytest.approx(600 * 0.9216 * 0.5)
    assert estimate_seconds(row(1, duration=None), TWICE_REALTIME) == 1200.0
    half_done = row(1, frames_planned=20)
    assert estimate_seconds(half_done, TWICE_REALTIME, frames_done=10) == pytest.approx(600.0)


def test_history_is_read_from_done_uploads(tmp_path) -> None:
    app = open_app(make_settings(tmp_path / "home"))
    try:
        done = add_upload(app, "old.mp4")
        app.db.execute("UPDATE uploads SET status = 'DONE', started_at = 100, "
                       "finished_at = 1300 WHERE id = ?", [done])
        add_upload(app, "waiting.mp4")
        history = load_history(app.db)
        assert history.samples == 1 and history.median_seconds == 1200.0
        assert estimate_seconds(row(9), history) == pytest.approx(1200.0)
    finally:
        app.close()


# --------------------------------------------------------------------------- plan


def test_fit_before_close_defers_what_does_not_fit_and_says_why() -> None:
    result = plan(NIGHTS, Control(), deferred=[row(1)], running=[], queued=[],
                  history=TWICE_REALTIME, lookahead=1, now=TUE_0550)
    [decision] = result.decisions
    assert result.open and not decision.fits and decision.action == "defer"
    assert "needs ~20 min" in decision.reason and "only 10 min left" in decision.reason
    assert "Wed 22:00" in decision.reason  # the next window
    early = plan(NIGHTS, Control(), deferred=[row(1)], running=[], queued=[],
                 history=TWICE_REALTIME, lookahead=1, now=TUE_0550 - timedelta(minutes=15))
    assert [d.action for d in early.decisions] == ["dispatch"]


def test_dispatch_order_lookahead_and_work_ahead() -> None:
    deferred = [row(3, priority=5, duration=60.0), row(1, duration=60.0), row(2, duration=60.0)]
    result = plan(NIGHTS, Control(), deferred=deferred, running=[], queued=[],
                  history=TWICE_REALTIME, lookahead=1, now=TUE_2300)
    assert [(d.upload_id, d.action) for d in result.decisions] == \
        [(3, "dispatch"), (1, "wait"), (2, "wait")]
    queued = plan(NIGHTS, Control(), deferred=[row(1, duration=60.0)], running=[],
                  queued=[row(7, duration=60.0)], history=TWICE_REALTIME, lookahead=2,
                  now=TUE_2300)
    assert [d.action for d in queued.decisions] == ["dispatch"]
    # 10 min left, a running job with ~8 min to go: a 2-minute job (4 min estimated)
    # no longer fits after it.
    running = row(8, duration=300.0, started_at=TUE_0550.timestamp() - 120)
    busy = plan(NIGHTS, Control(), deferred=[row(1, duration=120.0)], running=[running],
                queued=[], history=TWICE_REALTIME, lookahead=1, now=TUE_0550)
    assert busy.ahead_s == pytest.approx(480.0)
    assert busy.decisions[0].action == "defer" and "ahead of it" in busy.decisions[0].reason


def test_an_upload_longer_than_any_window_starts_early_in_an_empty_window() -> None:
    short = parse_windows("daily 22:00-23:00")
    huge = row(1, duration=3600.0)  # estimate 2 h
    at_start = plan(short, Control(), deferred=[huge], running=[], queued=[],
                    history=TWICE_REALTIME, lookahead=1, now=datetime(2026, 12, 1, 22, 5,
                                                                       tzinfo=UTC))
    assert at_start.decisions[0].action == "dispatch"
    late = plan(short, Control(), deferred=[huge], running=[], queued=[],
                history=TWICE_REALTIME, lookahead=1, now=datetime(2026, 12, 1, 22, 45,
                                                                   tzinfo=UTC))
    assert late.decisions[0].action == "defer"


def test_closed_pause_and_run_now() -> None:
    closed = plan(NIGHTS, Control(), deferred=[row(1)], running=[], queued=[],
                  history=TWICE_REALTIME, lookahead=1, now=WED_1200)
    assert not closed.open and closed.decisions[0].action == "defer"
    assert closed.decisions[0].fits and "next window Wed" in closed.decisions[0].reason
    paused = Control(pause_until=TUE_2300.timestamp() + 1800)
    result = plan(NIGHTS, paused, deferred=[row(1)], running=[], queued=[],
                  history=TWICE_REALTIME, lookahead=1, now=TUE_2300)
    assert not result.open and "paused until" in result.decisions[0].reason
    assert plan(NIGHTS, paused, deferred=[row(1)], running=[], queued=[],
                history=TWICE_REALTIME, lookahead=1,
                now=TUE_2300 + timedelta(hours=1)).open
    run_now = Control(run_now_until=WED_1200.timestamp() + 3600)
    opening = open_interval(NIGHTS, run_now, WED_1200)
    assert opening is not None and opening.source == "run-now"
    assert opening.left(WED_1200) == 3600
    assert open_interval(NIGHTS, run_now, WED_1200 + timedelta(hours=1)) is None
    # Run-now until 22:30 merges with the window opening at 22:00.
    evening = Control(run_now_until=datetime(2026, 12, 2, 22, 30, tzinfo=UTC).timestamp())
    merged = open_interval(NIGHTS, evening, datetime(2026, 12, 2, 21, 0, tzinfo=UTC))
    assert merged is not None and merged.end == datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    assert not plan(NIGHTS, Control(pause_after_current=True, run_now_until=run_now
                                    .run_now_until), deferred=[], running=[], queued=[],
                    history=TWICE_REALTIME, lookahead=1, now=WED_1200).open


@pytest.mark.parametrize(("control", "opening_at", "policy", "starting", "held"), [
    (Control(), TUE_2300, "soft", True, False),
    (Control(), WED_1200, "soft", True, True),       # window closed before it started
    (Control(), WED_1200, "soft", False, False),     # soft end: the running one finishes
    (Control(), WED_1200, "hard", False, True),      # hard end: stopped
    (Control(pause_after_current=True), TUE_2300, "soft", False, False),
    (Control(pause_after_current=True), TUE_2300, "soft", True, True),
    (Control(pause_until=TUE_2300.timestamp() + 60), TUE_2300, "soft", False, True),
])
def test_hold_reason(control, opening_at, policy, starting, held) -> None:
    opening = open_interval(NIGHTS, control, opening_at)
    reason = hold_reason(row(1), control, opening, policy=policy, now=opening_at,
                         starting=starting)
    assert (reason is not None) == held
    assert hold_reason(row(1, mode="now"), Control(pause_until=1e12), None, policy="hard",
                       now=opening_at, starting=starting) is None


# --------------------------------------------------------------------------- dispatch tick


def add_upload(app, name: str, *, priority: int = 0, duration: float = 600.0) -> int:
    upload_id = lifecycle.create_upload(app.db, original_name=name, sha256=name, size=1,
                                   mode="off-peak", owner="test", lease_seconds=60,
                                   priority=priority)
    lifecycle.mark_stored(app.db, upload_id, storage_key=f"videos/{name}",
                     probe={"duration": duration, "width": 1280, "height": 720})
    return upload_id


@pytest.fixture
def runtime(tmp_path):
    settings = make_settings(tmp_path / "home", offpeak_windows="mon-fri 22:00-06:00")
    rt = Runtime(settings, BackgroundScheduler(timezone="UTC"))
    yield rt
    rt.close()


def statuses(app) -> dict[int, str]:
    return dict(app.db.execute("SELECT id, status FROM uploads").fetchall())


def test_tick_dispatches_in_order_fits_before_close_and_withdraws_when_closed(runtime) -> None:
    app = runtime.app
    old = add_upload(app, "history.mp4")
    app.db.execute("UPDATE uploads SET status = 'DONE', started_at = 0, finished_at = 1200 "
                   "WHERE id = ?", [old])
    a, b = add_upload(app, "a.mp4"), add_upload(app, "b.mp4", priority=1)
    runtime.tick(WED_1200)
    assert statuses(app) == {old: "DONE", a: "DEFERRED", b: "DEFERRED"}
    assert runtime.tick(TUE_0550).deferred()  # 10 min left: a 20-minute job waits
    assert statuses(app)[a] == statuses(app)[b] == "DEFERRED"
    runtime.tick(TUE_2300)
    assert statuses(app) == {old: "DONE", a: "DEFERRED", b: "QUEUED"}  # priority, lookahead 1
    assert runtime.queue.pending_upload_ids() == {b}
    events = [e["message"] for e in queries.detail(app.db, b).events]
    assert events[-1].startswith("dispatched in window until Wed 06:00 (estimate 20 min)")
    runtime.tick(TUE_2300 + timedelta(seconds=30))
    assert statuses(app)[a] == "DEFERRED"  # b still waits in the queue
    runtime.tick(WED_1200)  # closed with b unclaimed: back to DEFERRED
    assert statuses(app) == {old: "DONE", a: "DEFERRED", b: "DEFERRED"}
    assert queries.detail(app.db, b).events[-1]["kind"] == "withdrawn"
    job = runtime.scheduler.get_job("boundary")
    assert job is not None and job.trigger.run_date == datetime(2026, 12, 2, 22, 0, tzinfo=UTC)


def test_tick_respects_pause_and_run_now(runtime) -> None:
    app = runtime.app
    a = add_upload(app, "a.mp4", duration=60.0)
    state.put(app.db, offpeak.PAUSE_UNTIL, TUE_2300.timestamp() + 600)
    assert not runtime.tick(TUE_2300).open and statuses(app)[a] == "DEFERRED"
    job = runtime.scheduler.get_job("boundary")
    assert job.trigger.run_date == TUE_2300 + timedelta(minutes=10)  # the pause ends
    state.delete(app.db, offpeak.PAUSE_UNTIL)
    state.put(app.db, offpeak.RUN_NOW_UNTIL, WED_1200.timestamp() + 600)
    assert runtime.tick(WED_1200).opening.source == "run-now"
    assert statuses(app)[a] == "QUEUED"


# --------------------------------------------------------------------------- lock and CLI


def test_lock_is_exclusive_per_home(tmp_path) -> None:
    home = tmp_path / "home"
    first = acquire_lock(home)
    with pytest.raises(StateError, match="another scheduler is already running"):
        acquire_lock(home)
    first.close()
    acquire_lock(home).close()


def test_second_scheduler_process_exits_1_with_a_clear_message(tmp_path) -> None:
    home = tmp_path / "home"
    first = subprocess.Popen([sys.executable, "-m", "cli", "scheduler"],
                             cwd=tmp_path, env=cli_env(home), stderr=subprocess.PIPE,
                             text=True)
    try:
        lock = home / "scheduler.lock"
        wait_for(lambda: first.poll() is not None or (
            lock.exists() and lock.read_text().strip() == str(first.pid)),
            timeout=30, what="the first scheduler's lock")
        assert first.poll() is None, "the first scheduler exited without taking the lock"
        for command in ("scheduler", "batch"):
            second = run_cli(home, command, timeout=30)
            assert second.returncode == 1, second.stderr
            assert "another scheduler is already running" in second.stderr
            assert str(first.pid) in second.stderr
    finally:
        first.terminate()
        assert first.wait(timeout=30) == 0


def test_windows_json_open_and_fit_before_close_reason(tmp_path) -> None:
    home = tmp_path / "home"
    app = open_app(make_settings(home))
    try:
        old = add_upload(app, "history.mp4")
        app.db.execute("UPDATE uploads SET status = 'DONE', started_at = 0, "
                       "finished_at = 1200 WHERE id = ?", [old])
        waiting = add_upload(app, "ten-minutes.mp4")
    finally:
        app.close()
    env = {"PEAKOPS_OFFPEAK_WINDOWS": "mon-fri 22:00-06:00"}
    report = cli_json(home, "windows", "--at", "2026-12-02T05:50:00+00:00", **env)
    assert report["open"] is True and report["closes_at"] == "2026-12-02T06:00:00+00:00"
    [entry] = report["deferred"]
    assert entry["id"] == waiting and entry["fits"] is False and entry["action"] == "defer"
    assert "needs ~20 min, only 10 min left" in entry["reason"]
    assert report["history"]["samples"] == 1
    closed = cli_json(home, "windows", "--at", "2026-12-02T12:00", **env)
    assert closed["open"] is False and closed["next_open"] == "2026-12-02T22:00:00+00:00"
    text = run_cli(home, "windows", "--at", "2026-12-02T05:50", check=True, **env).stdout
    assert "only 10 min left" in text and "OPEN" in text
    bad = run_cli(home, "windows", **{"PEAKOPS_OFFPEAK_WINDOWS": "mon-fry 22:00-06:00"})
    assert bad.returncode == 1 and "column 5" in bad.stderr


def test_windows_says_how_long_the_next_window_is_and_how_soon_it_opens(tmp_path) -> None:
    """`for 50 h, opens in 10 h 46 min`, never a bare `(50.0 h)` read as a countdown."""
    weekend = parse_windows("fri 22:00-24:00; sat,sun 00:00-24:00")
    friday_1114 = datetime(2026, 12, 4, 11, 14, tzinfo=UTC)
    assert offpeak.window_ahead(weekend, weekend.next_open(friday_1114), friday_1114) == \
        "Fri 2026-12-04 22:00, for 50 h, opens in 10 h 46 min"
    result = plan(weekend, Control(), deferred=[row(1)], running=[], queued=[],
                  history=TWICE_REALTIME, lookahead=1, now=friday_1114)
    assert "next window Fri 2026-12-04 22:00, for 50 h, opens in 10 h 46 min; needs ~" in \
        result.decisions[0].reason and "(50.0 h)" not in result.decisions[0].reason
    assert (offpeak.fmt_length(8.5 * 3600), offpeak.fmt_length(45 * 60)) == ("8 h 30 min",
                                                                           "45 min")
    home = tmp_path / "home"
    env = {"PEAKOPS_OFFPEAK_WINDOWS": "fri 22:00-24:00; sat,sun 00:00-24:00"}
    text = run_cli(home, "windows", "--at", "2026-12-04T11:14", check=True, **env).stdout
    assert "next open Fri 2026-12-04 22:00, for 50 h, opens in 10 h 46 min" in text.splitlines()
    report = cli_json(home, "windows", "--at", "2026-12-04T11:14", **env)
    assert report["next_window"] == "Fri 2026-12-04 22:00, for 50 h, opens in 10 h 46 min"


def test_pause_resume_run_now_write_the_shared_keys(tmp_path) -> None:
    home = tmp_path / "home"
    run_cli(home, "pause", "--for", "30m", check=True)
    report = cli_json(home, "windows")
    assert report["paused"].startswith("batch paused until") and report["open"] is False
    run_cli(home, "pause", "--after-current", check=True)
    run_cli(home, "resume", check=True)
    run_cli(home, "run-now", "--until", "07:00", check=True)
    app = open_app(make_settings(home))
    try:
        assert state.get(app.db, offpeak.PAUSE_UNTIL) is None
        assert state.get(app.db, offpeak.PAUSE_AFTER_CURRENT) is None
        until = state.get(app.db, offpeak.RUN_NOW_UNTIL)
        assert 0 < until - time.time() <= 86400
        assert datetime.fromtimestamp(until, UTC).strftime("%H:%M") == "07:00"
    finally:
        app.close()
    assert cli_json(home, "windows")["open"] is True
    assert run_cli(home, "pause", "--for", "soon").returncode == 2
