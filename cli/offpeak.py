"""Subcommands for the off-peak batch: batch, scheduler, windows, pause, resume, run-now."""

from __future__ import annotations

import argparse
import re
import signal
import threading
from datetime import UTC, datetime
from typing import Any

from cli.args import parse_moment
from cli.main import print_json
from core.app import open_app
from core.config import Settings
from core.schedule import control, offpeak
from core.schedule.estimate import load_history
from core.schedule.offpeak import Plan, fmt_duration
from core.schedule.windows import parse_windows

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|sec|m|min|h|hr|d)?\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``30m``, ``2h``, ``90s``, ``1d``; a bare number is minutes."""
    match = _DURATION.match(text)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration like 30m, 2h or 90s, got {text!r}")
    return float(match[1]) * _UNIT_S[(match[2] or "m").lower()]


def parse_clock(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*([0-9]{1,2}):([0-9]{2})\s*", text)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise argparse.ArgumentTypeError(f"expected a time HH:MM like 07:00, got {text!r}")
    return int(match[1]), int(match[2])


# ------------------------------------------------------------------ services


def cmd_batch(settings: Settings, args: argparse.Namespace) -> int:
    from batch.service import run_batch
    return run_batch(settings)


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from batch.scheduler import run_scheduler
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return run_scheduler(settings, stop)


# ------------------------------------------------------------------ windows


def _iso(moment: datetime | float | None, tz: Any) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, (int, float)):
        if moment >= offpeak.PAUSE_FOREVER:
            return None
        moment = datetime.fromtimestamp(moment, tz)
    return moment.astimezone(tz).isoformat()


def windows_report(settings: Settings, at: datetime | None) -> dict[str, Any]:
    schedule = parse_windows(settings.offpeak_windows, settings.timezone)
    now = (at or datetime.now(UTC)).astimezone(schedule.tz)
    app = open_app(settings)
    try:
        control = offpeak.read_control(app.db)
        plan: Plan = offpeak.load_plan(app.db, schedule, control=control, now=now,
                                       lookahead=settings.dispatch_lookahead)
        history = load_history(app.db)
    finally:
        app.close()
    tz = schedule.tz
    return {
        "at": now.isoformat(),
        "timezone": settings.timezone,
        "spec": schedule.spec,
        "windows": [str(w) for w in schedule.windows],
        "open": plan.open,
        "window_open": schedule.is_open(now),
        "source": plan.opening.source if plan.open and plan.opening else None,
        "closes_at": _iso(plan.opening.end, tz) if plan.opening else None,
        "next_open": _iso(plan.next_open, tz),
        "next_window": offpeak.window_ahead(schedule, plan.next_open.astimezone(tz), now)
        if plan.next_open else None,
        "paused": plan.pause,
        "pause_until": _iso(control.pause_until, tz) if control.timed_pause(now) else None,
        "pause_after_current": control.pause_after_current,
        "run_now_until": _iso(control.run_now_until, tz) if control.run_now(now) else None,
        "window_end_policy": settings.window_end_policy,
        "dispatch_lookahead": settings.dispatch_lookahead,
        "work_ahead_s": round(plan.ahead_s, 1),
        "history": history.as_dict(),
        "deferred": [d.as_dict() for d in plan.decisions],
    }


def cmd_windows(settings: Settings, args: argparse.Namespace) -> int:
    at = args.at
    if at is not None:
        if at.tzinfo is None:
            at = at.replace(tzinfo=parse_windows("", settings.timezone).tz)
    report = windows_report(settings, at)
    if args.json:
        print_json(report)
        return 0
    state_text = "OPEN" if report["open"] else "closed"
    if report["open"] and report["source"] == "run-now":
        state_text += " (run now)"
    print(f"schedule  {'; '.join(report['windows']) or '(no windows)'}  [{report['timezone']}]")
    print(f"at        {report['at']}: {state_text}")
    if report["paused"]:
        print(f"paused    {report['paused']}")
    if report["closes_at"]:
        print(f"closes    {report['closes_at']}")
    print(f"next open {report['next_window'] or '-'}")
    print(f"end       {report['window_end_policy']} (lookahead {report['dispatch_lookahead']}, "
          f"work ahead ~{fmt_duration(report['work_ahead_s'])})")
    if not report["deferred"]:
        print("deferred  none")
    for d in report["deferred"]:
        print(f"  {d['id']:>5}  {d['action']:<8} {d['name']}: {d['reason']}")
    return 0


# ------------------------------------------------------------------ pause, resume, run-now


def cmd_pause(settings: Settings, args: argparse.Namespace) -> int:
    app = open_app(settings)
    try:
        change = control.pause(app.db, now=datetime.now(UTC), for_seconds=args.pause_for,
                               after_current=args.after_current)
    finally:
        app.close()
    print(change.message + (f"; {len(change.withdrawn)} queued upload(s) back to DEFERRED"
                            if change.withdrawn else ""))
    return 0


def cmd_resume(settings: Settings, args: argparse.Namespace) -> int:
    app = open_app(settings)
    try:
        print(control.resume(app.db, now=datetime.now(UTC)).message)
    finally:
        app.close()
    return 0


def cmd_run_now(settings: Settings, args: argparse.Namespace) -> int:
    schedule = parse_windows(settings.offpeak_windows, settings.timezone)
    now = datetime.now(schedule.tz)
    app = open_app(settings)
    try:
        if args.cancel:
            change = control.cancel_run_now(app.db, now=now)
        else:
            until = (control.next_clock_time(*args.until, now) if args.until
                     else control.default_run_now_end(schedule, now).astimezone(schedule.tz))
            change = control.run_now(app.db, until=until, now=now)
    finally:
        app.close()
    print(change.message)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("batch", help="run the worker and the off-peak scheduler",
                              description="The long-running service: worker + scheduler.")
    p.set_defaults(handler=cmd_batch, service=True)
    p = subparsers.add_parser("scheduler", help="run only the off-peak scheduler")
    p.set_defaults(handler=cmd_scheduler, service=True)
    p = subparsers.add_parser("windows", help="off-peak schedule, open or not, what fits")
    p.add_argument("--at", type=parse_moment, metavar="ISO-TIME", help="evaluate at this time (default: now)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_windows)
    p = subparsers.add_parser("pause", help="pause the off-peak batch")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--for", dest="pause_for", type=parse_duration, metavar="DURATION",
                       help="pause for a while, e.g. 30m or 2h")
    group.add_argument("--after-current", action="store_true",
                       help="let the current video finish, then pause")
    p.set_defaults(handler=cmd_pause)
    p = subparsers.add_parser("resume", help="end a pause")
    p.set_defaults(handler=cmd_resume)
    p = subparsers.add_parser("run-now", help="run the batch now, as if a window were open")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--until", type=parse_clock, metavar="HH:MM",
                       help="until this wall-clock time (today or tomorrow); default: until "
                            "the next regular opening, at most 12 h")
    group.add_argument("--cancel", action="store_true", help="end the override")
    p.set_defaults(handler=cmd_run_now)
