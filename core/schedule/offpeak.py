"""Off-peak policy: may the batch run now, and which deferred uploads go next.

Pure apart from :func:`read_control` / :func:`load_plan` (which read the state
database): every decision takes ``now``. The scheduler and ``peakops windows`` use the
same :func:`plan`, so what the CLI says is what dispatch does.

Operator control lives in the ``state`` table under three keys, written by the CLI and
the console alike:

- ``scheduler.pause_until``: epoch seconds or null. While in the future nothing
  off-peak runs: the running off-peak video is handed back to DEFERRED (it resumes from
  its checkpoint). ``pause`` without a duration writes :data:`PAUSE_FOREVER`.
- ``scheduler.pause_after_current``: bool. The running video finishes; nothing
  off-peak starts until ``resume``.
- ``scheduler.run_now_until``: epoch seconds or null. Until then the batch runs as if a
  window were open (a scheduled window that continues past it extends it).

A pause wins over run-now. Uploads submitted to process now are never held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.schedule.estimate import History, estimate_seconds, load_history
from core.schedule.windows import Schedule
from core.store import lifecycle, queries, state
from core.store.sqldb import SqlDatabase

PAUSE_UNTIL = "scheduler.pause_until"
PAUSE_AFTER_CURRENT = "scheduler.pause_after_current"
RUN_NOW_UNTIL = "scheduler.run_now_until"
PAUSE_FOREVER = 253402300799.0
"""9999-12-31T23:59:59Z: the ``pause_until`` of a pause without a duration."""


def fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def countdown(delta: timedelta) -> str:
    """Time until something, to the minute: ``10 h 46 min``, ``1 d 0 h 00 min``."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s"


def fmt_length(seconds: float) -> str:
    """A window's length: ``50 h``, ``8 h 30 min``, ``45 min``."""
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def window_ahead(schedule: Schedule, upcoming: datetime, now: datetime) -> str:
    """``Fri 2026-12-04 22:00, for 50 h, opens in 10 h 46 min``: when, how long, how soon."""
    intervals = schedule.intervals(upcoming, upcoming + timedelta(seconds=1))
    length = ((_utc(intervals[0][1]) - _utc(intervals[0][0])).total_seconds()
              if intervals else 0.0)
    return (f"{upcoming:%a %Y-%m-%d %H:%M}, for {fmt_length(length)}, "
            f"opens in {countdown(_utc(upcoming) - _utc(now))}")


def _utc(moment: datetime) -> datetime:
    # Same-zone datetimes compare by wall time; compare and subtract in UTC.
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Control:
    """The operator's pause and run-now settings (epoch seconds)."""

    pause_until: float | None = None
    pause_after_current: bool = False
    run_now_until: float | None = None

    def timed_pause(self, now: datetime) -> bool:
        return self.pause_until is not None and now.timestamp() < self.pause_until

    def pause_reason(self, now: datetime, tz: Any = UTC) -> str | None:
        if self.timed_pause(now):
            assert self.pause_until is not None
            if self.pause_until >= PAUSE_FOREVER:
                return "batch paused by the operator (until resumed)"
            until = datetime.fromtimestamp(self.pause_until, tz)
            return f"batch paused until {until:%a %Y-%m-%d %H:%M}"
        if self.pause_after_current:
            return "batch paused after the current video (until resumed)"
        return None

    def run_now(self, now: datetime) -> bool:
        return self.run_now_until is not None and now.timestamp() < self.run_now_until

    def as_dict(self) -> dict[str, Any]:
        return {"pause_until": self.pause_until, "pause_after_current": self.pause_after_current,
                "run_now_until": self.run_now_until}


def read_control(db: SqlDatabase) -> Control:
    return Control(pause_until=state.get(db, PAUSE_UNTIL),
                   pause_after_current=bool(state.get(db, PAUSE_AFTER_CURRENT, False)),
                   run_now_until=state.get(db, RUN_NOW_UNTIL))


@dataclass(frozen=True)
class Opening:
    """An open stretch for the batch: a scheduled window or a run-now override."""

    start: datetime
    end: datetime
    source: str  # "window" or "run-now"

    def left(self, now: datetime) -> float:
        return (_utc(self.end) - _utc(now)).total_seconds()

    def length(self) -> float:
        return (_utc(self.end) - _utc(self.start)).total_seconds()


def open_interval(schedule: Schedule, control: Control, now: datetime) -> Opening | None:
    """The stretch the batch may run in at ``now`` (ignoring pauses), or None if closed."""
    current = schedule.current_interval(now)
    if control.run_now(now):
        assert control.run_now_until is not None
        end = datetime.fromtimestamp(control.run_now_until, UTC)
        start = _utc(current[0]) if current else _utc(now)
        # A scheduled window open at (or touching) the end of the override extends it.
        for s, e in schedule.intervals(now, end + timedelta(seconds=1)):
            if _utc(s) <= end:
                end = max(end, _utc(e))
        return Opening(start.astimezone(schedule.tz), end.astimezone(schedule.tz),
                       "window" if current else "run-now")
    if current is None:
        return None
    return Opening(current[0], current[1], "window")


def hold_reason(row: dict[str, Any], control: Control, opening: Opening | None, *,
                policy: str, now: datetime, starting: bool) -> str | None:
    """Why the off-peak upload ``row`` must not start (``starting``) or go on running.

    None means carry on. A timed pause stops a running video; ``pause_after_current``
    and a closed window only stop one from starting, except that a ``hard`` window end
    also stops the running one.
    """
    if row.get("mode") != lifecycle.MODE_OFFPEAK:
        return None
    if control.timed_pause(now):
        return control.pause_reason(now)
    if starting and control.pause_after_current:
        return control.pause_reason(now)
    if opening is None and starting:
        return "off-peak window closed before it started"
    if opening is None and policy == "hard":
        return "off-peak window closed (window end policy hard)"
    return None


WORKER = "worker"
"""A decision that waits for the worker: dispatch checks it again when the job ahead ends."""
NEXT_WINDOW = "next window"


@dataclass(frozen=True)
class Decision:
    """What dispatch does with one DEFERRED upload, and why."""

    upload_id: int
    name: str
    estimate_s: float
    action: str  # "dispatch" (now), "wait" (fits; the queue is full), "defer"
    window: str  # "current" or "next"
    fits: bool
    reason: str
    waits_for: str = NEXT_WINDOW  # what it waits for unless dispatched: WORKER or NEXT_WINDOW

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.upload_id, "name": self.name, "estimate_s": round(self.estimate_s, 1),
                "action": self.action, "window": self.window, "fits": self.fits,
                "reason": self.reason, "waits_for": self.waits_for}


@dataclass(frozen=True)
class Plan:
    now: datetime
    opening: Opening | None
    pause: str | None
    next_open: datetime | None
    ahead_s: float
    decisions: list[Decision] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.opening is not None and self.pause is None

    def to_dispatch(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == "dispatch"]

    def deferred(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == "defer"]


def _estimate(row: dict[str, Any], history: History) -> float:
    return estimate_seconds(row, history, frames_done=row.get("frames_done") or 0)


def plan(schedule: Schedule, control: Control, *, deferred: list[dict[str, Any]],
         running: list[dict[str, Any]], queued: list[dict[str, Any]], history: History,
         lookahead: int, now: datetime) -> Plan:
    """Decide which ``deferred`` uploads (in dispatch order) go to the queue at ``now``.

    ``running`` and ``queued`` are the off-peak uploads already PROCESSING and QUEUED:
    their estimated remaining time is spent before a newly dispatched upload starts, and
    at most ``lookahead`` off-peak uploads wait in the queue. An upload is dispatched only
    if it fits in what is left of the open stretch after everything ahead of it; one
    longer than the whole stretch starts only with nothing ahead and half of it left.
    """
    tz = schedule.tz
    pause = control.pause_reason(now, tz)
    opening = open_interval(schedule, control, now)
    upcoming = schedule.next_open(now)
    ahead = sum(_estimate(r, history) for r in queued)
    for r in running:
        elapsed = now.timestamp() - (r.get("started_at") or now.timestamp())
        ahead += max(0.0, _estimate(r, history) - elapsed)
    result = Plan(now=now, opening=opening, pause=pause, next_open=upcoming, ahead_s=ahead)
    if pause is None and opening is not None:
        decide = _current_window(opening, result, lookahead - len(queued))
    else:
        decide = _next_window(schedule, result, upcoming)
    for row in deferred:
        result.decisions.append(decide(row, _estimate(row, history)))
    return result


def _current_window(opening: Opening, result: Plan, room: int):
    left, length = opening.left(result.now), opening.length()
    closes = f"{opening.end:%a %H:%M}"
    used = result.ahead_s
    nxt = f"; waits for the next window ({result.next_open:%a %H:%M})" \
        if result.next_open else "; waits for a later window"

    def decide(row: dict[str, Any], est: float) -> Decision:
        nonlocal used, room
        oversize = est > length and used == 0 and left >= length / 2
        if used + est <= left or oversize:
            used += est
            if oversize:
                why = (f"needs ~{fmt_duration(est)}, longer than the whole window; starts now "
                       f"with {fmt_duration(left)} left")
            else:
                why = f"fits: needs ~{fmt_duration(est)}, {fmt_duration(left - used + est)} " \
                      f"left before {closes}"
            if room > 0:
                room -= 1
                return Decision(row["id"], row["original_name"], est, "dispatch", "current",
                                True, why, waits_for="")
            return Decision(row["id"], row["original_name"], est, "wait", "current", True,
                            why + "; waits until the worker is free", WORKER)
        after = f" after ~{fmt_duration(used)} of work ahead of it" if used else ""
        why = (f"does not fit before close: needs ~{fmt_duration(est)}, only "
               f"{fmt_duration(max(0.0, left - used))} left before {closes}{after}")
        if used and est <= left:  # the work ahead may end sooner than estimated
            return Decision(row["id"], row["original_name"], est, "defer", "current", False,
                            why + "; checked again when the work ahead ends, else it"
                            + nxt.removeprefix(";"), WORKER)
        return Decision(row["id"], row["original_name"], est, "defer", "current", False,
                        why + nxt)
    return decide


def _next_window(schedule: Schedule, result: Plan, upcoming: datetime | None):
    why_closed = result.pause or "off-peak window closed"
    intervals = schedule.intervals(upcoming, upcoming + timedelta(seconds=1)) \
        if upcoming else []
    length = ((_utc(intervals[0][1]) - _utc(intervals[0][0])).total_seconds()
              if intervals else 0.0)
    used = 0.0

    def decide(row: dict[str, Any], est: float) -> Decision:
        nonlocal used
        if upcoming is None:
            return Decision(row["id"], row["original_name"], est, "defer", "next", False,
                            f"{why_closed}; no window is scheduled")
        fits = used + est <= length or (used == 0 and est > length)
        used += est
        where = f"next window {window_ahead(schedule, upcoming, result.now)}"
        if fits:
            why = f"{why_closed}; {where}; needs ~{fmt_duration(est)}, fits"
        else:
            why = (f"{why_closed}; {where}; needs ~{fmt_duration(est)} after "
                   f"~{fmt_duration(used - est)} ahead of it: a later window")
        return Decision(row["id"], row["original_name"], est, "defer", "next", fits, why)
    return decide


def offpeak_rows(db: SqlDatabase, status: str) -> list[dict[str, Any]]:
    """Off-peak uploads in ``status`` in dispatch order, each with ``frames_done``."""
    return queries.waiting_in_mode(db, status, lifecycle.MODE_OFFPEAK)


def load_plan(db: SqlDatabase, schedule: Schedule, *, lookahead: int,
              now: datetime, control: Control | None = None) -> Plan:
    """:func:`plan` over the state database's off-peak uploads."""
    return plan(schedule, control or read_control(db),
                deferred=offpeak_rows(db, lifecycle.DEFERRED),
                running=offpeak_rows(db, lifecycle.PROCESSING),
                queued=offpeak_rows(db, lifecycle.QUEUED),
                history=load_history(db), lookahead=lookahead, now=now)
