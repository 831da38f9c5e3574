"""Under ``peakops batch`` the next off-peak upload is dispatched when the previous job
ends, not at the next periodic tick (issue 16). The scheduler and the worker's hold run
on a clock the test sets; the periodic tick is an hour apart, so only the end-of-job hook
can have dispatched the second upload in time, and its dispatch event says so."""

from __future__ import annotations

import logging
import threading

import pytest

from batch.hold import hold_for
from batch.scheduler import OffPeakScheduler, Runtime
from batch.worker import Worker
from core.config import load_settings
from core.media import samples
from core.schedule import offpeak
from tests.batch.test_batch_service import ALWAYS, FAST, Clock, at
from tests.batch.test_scheduler import NIGHTS, TUE_0550, TUE_2300, TWICE_REALTIME, row
from tests.helpers import cli_env, cli_json, run_cli, wait_for

HOUR = {"PEAKOPS_DISPATCH_INTERVAL": "3600"}


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("job-end-clips")
    return [samples.make_clip(folder / f"short-{i}.mp4", seconds=2 + i, width=160, height=120)
            for i in range(2)]


def test_next_upload_is_dispatched_when_the_previous_job_ends(tmp_path, two_clips, caplog):
    caplog.set_level(logging.INFO, logger="batch.scheduler")
    home = tmp_path / "home"
    env = cli_env(home, **FAST, **ALWAYS, **HOUR)
    settings = load_settings(env)
    proc = run_cli(home, "submit", "--off-peak", *map(str, two_clips), check=True,
                   **{k: v for k, v in env.items() if k.startswith("PEAKOPS_")})
    first, second = (int(line.split("\t")[0]) for line in proc.stdout.splitlines())
    clock = Clock(at("2026-12-02T12:00:00"))
    scheduler = OffPeakScheduler(settings, clock)
    ended: list[tuple[int, str]] = []

    def after_job(upload_id: int, status: str) -> None:
        ended.append((upload_id, status))
        scheduler.job_ended(upload_id, status)

    made: list[Worker] = []
    ready = threading.Event()

    def run() -> None:  # the worker opens its database in its own thread
        try:
            made.append(Worker(settings, child_env=env, hold=hold_for(settings, clock=clock),
                               after_job=after_job))
        finally:
            ready.set()
        made[0].run()

    scheduler.start()  # its first tick at start dispatches one upload (lookahead 1)
    thread = threading.Thread(target=run, name="worker")
    thread.start()
    ready.wait(timeout=60)
    [worker] = made
    try:
        wait_for(lambda: {u["id"]: u["status"] for u in cli_json(home, "list")}
                 == {first: "DONE", second: "DONE"}, timeout=120,
                 what="both uploads to be done")
    finally:
        worker.request_stop()
        thread.join(timeout=60)
        scheduler.shutdown()
    assert not thread.is_alive()
    assert ended[:2] == [(first, "DONE"), (second, "DONE")]
    events = {u: [e for e in cli_json(home, "show", str(u))["events"]
                  if e["kind"] == "dispatched"] for u in (first, second)}
    assert [e["message"] for e in events[first]] == [
        f"dispatched in window until {events[first][0]['message'].split('until ')[1]}"]
    [dispatched] = events[second]
    assert f" as upload {first} ended " in dispatched["message"], dispatched
    assert dispatched["at"] == clock.now.timestamp()  # decided on the scheduler's clock
    assert f"dispatched 1 upload(s) [{second}] as upload {first} ended" in caplog.text


def test_the_log_says_what_an_undispatched_upload_waits_for(caplog):
    """A 'waits until the worker is free' decision is not logged as 'the next window'."""
    plan = offpeak.plan(NIGHTS, offpeak.Control(), deferred=[row(1, duration=60.0),
                                                             row(2, duration=60.0)],
                        running=[], queued=[], history=TWICE_REALTIME, lookahead=1,
                        now=TUE_2300)
    assert [(d.action, d.waits_for) for d in plan.decisions] == [
        ("dispatch", ""), ("wait", offpeak.WORKER)]
    # Ten minutes left and ~8 min ahead: a 4-minute job is checked again when that ends.
    running = row(8, duration=300.0, started_at=TUE_0550.timestamp() - 120)
    busy = offpeak.plan(NIGHTS, offpeak.Control(), deferred=[row(3, duration=120.0)],
                        running=[running], queued=[], history=TWICE_REALTIME, lookahead=1,
                        now=TUE_0550)
    [decision] = busy.decisions
    assert decision.action == "defer" and decision.waits_for == offpeak.WORKER
    assert "checked again when the work ahead ends, else it waits for the next window " \
           "(Wed 22:00)" in decision.reason
    # Too long for what is left even with nothing ahead: that one waits for the next window.
    [too_long] = offpeak.plan(NIGHTS, offpeak.Control(), deferred=[row(4)], running=[],
                              queued=[], history=TWICE_REALTIME, lookahead=1,
                              now=TUE_0550).decisions
    assert too_long.waits_for == offpeak.NEXT_WINDOW

    caplog.set_level(logging.INFO, logger="batch.scheduler")
    Runtime._log_waiting({(d.upload_id, d.waits_for): d.reason for d in plan.decisions
                          if d.action != "dispatch"})
    assert "1 upload(s) wait in this window until the worker is free: upload 2: fits" \
        in caplog.text
    assert "next window" not in caplog.text
