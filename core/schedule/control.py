"""Operator control of the off-peak batch: pause, pause after current, resume, run now.

One module for the command line and the console, so a button and a command leave the
same state behind. Every function takes ``now``; the keys and their meaning are
described in :mod:`core.schedule.offpeak`, which reads them.

A pause withdraws the off-peak uploads already QUEUED (back to DEFERRED, as the
scheduler would at its next tick), so nothing new starts after the operator paused.
Run-now ends any pause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from core.schedule.offpeak import (
    PAUSE_AFTER_CURRENT,
    PAUSE_FOREVER,
    PAUSE_UNTIL,
    RUN_NOW_UNTIL,
    fmt_duration,
    offpeak_rows,
)
from core.schedule.windows import Schedule
from core.store import lifecycle, state
from core.store.sqldb import SqlDatabase

RUN_NOW_MAX = timedelta(hours=12)
"""A run-now without an end runs until the next regular opening, at most this long."""


@dataclass(frozen=True)
class Change:
    """What a control operation did: one line for the operator, and uploads withdrawn."""

    message: str
    withdrawn: list[int] = field(default_factory=list)


def _withdraw_queued(db: SqlDatabase, reason: str, now: float) -> list[int]:
    return [r["id"] for r in offpeak_rows(db, lifecycle.QUEUED)
            if lifecycle.withdraw(db, r["id"], reason=reason, now=now)]


def pause(db: SqlDatabase, *, now: datetime, for_seconds: float | None = None,
          after_current: bool = False, origin: str = "") -> Change:
    """Pause the off-peak batch: until resumed, for ``for_seconds``, or (``after_current``)
    once the running video has finished. Queued off-peak uploads go back to DEFERRED."""
    if after_current:
        state.put(db, PAUSE_AFTER_CURRENT, True)
        message = "batch paused after the current video (until `peakops resume`)"
    else:
        until = now.timestamp() + for_seconds if for_seconds else PAUSE_FOREVER
        state.put(db, PAUSE_UNTIL, until)
        message = (f"batch paused for {fmt_duration(for_seconds)}" if for_seconds
                   else "batch paused (until `peakops resume`)")
    withdrawn = _withdraw_queued(db, "batch paused", now.timestamp())
    lifecycle.record_event(db, None, "paused", message + origin, now=now.timestamp())
    return Change(message, withdrawn)


def resume(db: SqlDatabase, *, now: datetime, origin: str = "") -> Change:
    """End any pause (timed, until resumed, or after the current video)."""
    state.delete(db, PAUSE_UNTIL)
    state.delete(db, PAUSE_AFTER_CURRENT)
    lifecycle.record_event(db, None, "resumed", "batch resumed" + origin, now=now.timestamp())
    return Change("batch resumed")


def default_run_now_end(schedule: Schedule | None, now: datetime) -> datetime:
    """Until the next regular opening, at most :data:`RUN_NOW_MAX` from ``now``."""
    until = now + RUN_NOW_MAX
    if schedule is not None and not schedule.is_open(now):
        nxt = schedule.next_open(now)
        if nxt is not None:
            until = min(until.astimezone(UTC), nxt.astimezone(UTC))
    return until


def run_now(db: SqlDatabase, *, until: datetime, now: datetime,
            origin: str = "") -> Change:
    """Run the deferred backlog as if a window were open until ``until``; ends a pause."""
    state.put(db, RUN_NOW_UNTIL, until.timestamp())
    state.delete(db, PAUSE_UNTIL)  # the operator wants it running
    state.delete(db, PAUSE_AFTER_CURRENT)
    lifecycle.record_event(db, None, "run-now", f"batch runs now until {until.isoformat()}" + origin,
                      now=now.timestamp())
    return Change(f"batch runs now until {until:%a %Y-%m-%d %H:%M %Z}")


def cancel_run_now(db: SqlDatabase, *, now: datetime, origin: str = "") -> Change:
    """End a run-now override; the regular windows apply again."""
    state.delete(db, RUN_NOW_UNTIL)
    lifecycle.record_event(db, None, "run-now", "run-now override cancelled" + origin,
                      now=now.timestamp())
    return Change("run-now cancelled")


def next_clock_time(hour: int, minute: int, now: datetime) -> datetime:
    """The next ``hour:minute`` on the wall clock of ``now``'s zone, after ``now``."""
    for days in range(3):
        day = now.date() + timedelta(days=days)
        moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=now.tzinfo)
        # Round-trip through UTC so a time inside a DST gap lands after the gap.
        moment = moment.astimezone(UTC).astimezone(now.tzinfo)
        if moment.timestamp() > now.timestamp():
            return moment
    raise AssertionError("unreachable: a wall time recurs within 3 days")
