"""The worker's off-peak hold and the clock it reads, without APScheduler.

``peakops worker`` and ``peakops batch`` hold off-peak uploads to their windows the same
way; the worker alone must not load the scheduler (APScheduler, tzlocal and asyncio: about
5 MB of a supervisor that runs beside a 4K job child), so the hold lives here and
:mod:`batch.scheduler` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from core.config import Settings
from core.jobs.runner import Hold
from core.schedule import offpeak
from core.schedule.windows import Schedule, parse_windows
from core.store import lifecycle

Clock = Callable[[], datetime]
"""What time it is, as an aware datetime. Entry points pass the wall clock; tests pass
their own, so window decisions never depend on when a test happens to run."""


def wall_clock() -> datetime:
    return datetime.now(UTC)


def hold_for(settings: Settings, *, clock: Clock = wall_clock,
             schedule: Schedule | None = None) -> Hold:
    """The worker's hold for the batch service: off-peak uploads run only while open.
    ``schedule``: the windows already parsed (else parsed from the settings here)."""
    if schedule is None:
        schedule = parse_windows(settings.offpeak_windows, settings.timezone)

    def hold(db: Any, row: dict[str, Any], starting: bool) -> str | None:
        if row.get("mode") != lifecycle.MODE_OFFPEAK:
            return None
        now = clock()
        control = offpeak.read_control(db)
        return offpeak.hold_reason(row, control, offpeak.open_interval(schedule, control, now),
                                   policy=settings.window_end_policy, now=now,
                                   starting=starting)
    return hold
