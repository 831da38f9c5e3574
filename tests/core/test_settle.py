"""The worker's policy after a job, as a table: outcome x upload -> decision."""

from __future__ import annotations

import pytest

from core.jobs.settle import COMPLETE, FAIL, RELEASE, JobOutcome, replace_after_job, settle
from tests.helpers import make_settings


@pytest.fixture
def settings(tmp_path):
    # max_attempts 3, hard limit 50000 KiB, 3 degrade levels (passed in below)
    return make_settings(tmp_path / "home", max_attempts=3, max_memory_per_child=40000,
                         hard_memory_limit=50000, max_tasks_per_child=5, retry_backoff=10)


def row(attempts=1, level=0):
    return {"id": 7, "attempts": attempts, "degrade_level": level}


CASES = [
    # (name, outcome, row, held) -> (action, status, error category, degrade, restart)
    ("done", JobOutcome("result", ok=True, peak_kib=900, detail={"extracted": 4}), row(),
     None, (COMPLETE, "DONE", None, False, None)),
    ("bad input fails at once", JobOutcome("result", category="input", message="not a video"),
     row(), None, (FAIL, "FAILED", "input", False, None)),
    ("transient error retries", JobOutcome("result", category="storage", message="503",
                                           transient=True), row(1), None,
     (FAIL, "QUEUED", "storage", False, None)),
    ("transient error, attempts used", JobOutcome("result", category="storage", message="503",
                                                  transient=True), row(3), None,
     (FAIL, "FAILED", "storage", False, None)),
    ("hard limit degrades", JobOutcome("hard-limit", category="memory", message="tree 60000"),
     row(1, 0), None, (FAIL, "QUEUED", "memory", True, "hard-limit")),
    ("hard limit at the last level fails", JobOutcome("hard-limit", category="memory"),
     row(1, 2), None, (FAIL, "FAILED", "memory", True, "hard-limit")),
    ("hard limit ignores attempts", JobOutcome("hard-limit", category="memory"), row(3, 0),
     None, (FAIL, "QUEUED", "memory", True, "hard-limit")),
    ("timeout retries", JobOutcome("timeout", category="timeout", transient=True), row(1),
     None, (FAIL, "QUEUED", "timeout", False, "timeout")),
    ("stall, attempts used", JobOutcome("stall", category="timeout", transient=True), row(3),
     None, (FAIL, "FAILED", "timeout", False, "stall")),
    ("crash retries as internal", JobOutcome("crash", category="internal"), row(2), None,
     (FAIL, "QUEUED", "internal", False, "crash")),
    ("shutdown hands back to the queue", JobOutcome("stopped"), row(), None,
     (RELEASE, "QUEUED", None, False, None)),
    ("window end hands back to DEFERRED", JobOutcome("stopped"), row(), "window closed",
     (RELEASE, "DEFERRED", None, False, None)),
]


@pytest.mark.parametrize(("outcome", "upload", "held", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_settle(settings, outcome, upload, held, expected):
    decision = settle(outcome, upload, settings, held=held, degrade_levels=3)
    category = decision.error.category if decision.error else None
    assert (decision.action, decision.status, category, decision.degrade,
            decision.restart) == expected
    if decision.error is not None:
        assert decision.error.upload_id == 7


def test_settle_messages_carry_the_figures(settings):
    done = settle(JobOutcome("result", ok=True, peak_kib=900, detail={"extracted": 4}), row(),
                  settings)
    assert done.note == " (4 extracted in this run, peak tree memory 900 KiB)"
    last = settle(JobOutcome("hard-limit", category="memory", message="x", peak_kib=61000),
                  row(1, 2), settings, degrade_levels=3)
    assert last.error.message == ("needs more memory than the hard limit of 50000 KiB even at "
                                  "the lowest degrade level (peak 61000 KiB)")
    first = settle(JobOutcome("hard-limit", category="memory", message="tree at 60000 KiB"),
                   row(1, 0), settings, degrade_levels=3)
    assert first.error.message == "tree at 60000 KiB at degrade level 0"
    held = settle(JobOutcome("stopped"), row(), settings, held="window closed")
    assert held.reason == "window closed"


@pytest.mark.parametrize(("jobs_done", "rss", "expected"), [
    (1, 1000, None),
    (5, 1000, "tasks"),
    (2, 40001, "memory-after-job"),
    (5, 40001, "tasks"),   # the count is checked first
    (4, 40000, None),      # at the soft limit is not over it
])
def test_replace_after_job(settings, jobs_done, rss, expected):
    decided = replace_after_job(jobs_done, rss, settings)
    assert (decided[0] if decided else None) == expected


def test_a_lock_is_refunded_by_settle_and_keeps_its_category(settings):
    """Not the video's fault (``costs_attempt`` False): settle alone gives the attempt
    back, and the error rebuilt across the process boundary keeps its own category."""
    locked = JobOutcome("result", category="storage", message="state database locked",
                        transient=True, detail={"costs_attempt": False})
    decision = settle(locked, row(attempts=3), settings)
    assert (decision.status, decision.refund, decision.delay) == ("QUEUED", True, 10)
    assert decision.error.category == "storage" and not decision.error.costs_attempt
    assert type(decision.error).__name__ == "StorageError"
    plain = settle(JobOutcome("result", category="storage", message="503", transient=True),
                   row(attempts=2), settings)
    assert (plain.status, plain.refund, plain.delay) == ("QUEUED", False, 20)


def test_the_reaper_decides_through_settle(settings):
    from core.jobs.settle import abandoned
    running = {"id": 7, "status": "PROCESSING", "lease_owner": "w@h:1", "attempts": 1,
               "degrade_level": 1}
    decision = abandoned(running, max_attempts=3)
    assert (decision.status, decision.level, decision.error.category) == ("QUEUED", 1,
                                                                          "internal")
    assert abandoned({**running, "attempts": 3}, max_attempts=3).status == "FAILED"
    uploading = abandoned({**running, "status": "UPLOADING"}, max_attempts=3)
    assert (uploading.status, uploading.error.category) == ("FAILED", "storage")


@pytest.mark.parametrize("category", ["input", "storage", "analysis", "memory", "timeout",
                                      "internal"])
def test_from_category_keeps_the_category_of_an_error_that_costs_no_attempt(category):
    from core.errors import from_category
    error = from_category(category, "x", transient=True, costs_attempt=False)
    assert (error.category, error.transient, error.costs_attempt) == (category, True, False)
