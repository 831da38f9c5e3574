"""Subcommands for the worker: worker, status, peaks, and the hidden child entries."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from cli.common import print_json
from core.app import open_app
from core.config import Settings
from core.store import heartbeat, queries, state


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from batch.hold import hold_for  # not batch.scheduler: no APScheduler in a worker
    from batch.worker import Worker
    # The same hold as `peakops batch`: off-peak uploads run only inside a window.
    return Worker(settings, burst=args.burst, hold=hold_for(settings)).run()


def status_report(settings: Settings, *, all_workers: bool = False) -> dict:
    from batch.queue import shared_queue
    app = open_app(settings)
    try:
        report = {
            "uploads": queries.counts_by_status(app.db),
            "queue_messages": shared_queue(settings).huey.pending_count(),
            "workers": heartbeat.workers(app.db, live_only=not all_workers),
            "recent_restarts": heartbeat.recent_restarts(app.db, limit=10),
        }
        if settings.enable_aws_rekognition:  # calls in the current budget period
            from core.analysis.rekognition import budget_period, period_calls_key
            period = budget_period(datetime.now(UTC), settings.timezone)
            report["rekognition"] = {
                "period": period, "calls": state.get(app.db, period_calls_key(period), 0),
                "budget": settings.rekognition_max_calls_per_window}  # 0 = no limit
        return report
    finally:
        app.close()


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    report = status_report(settings, all_workers=args.all)
    if args.json:
        print_json(report)
        return 0
    counts = report["uploads"]
    print("uploads   " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    print(f"queue     {report['queue_messages']} message(s)")
    if "rekognition" in report:
        rek = report["rekognition"]
        print(f"calls     {rek['calls']} Rekognition call(s) in period {rek['period']} (noon to "
              f"noon), budget {rek['budget'] or 'none'}")
    if not report["workers"]:
        print("workers   none has run yet" if args.all else
              "workers   none running (--all for the history)")
    for w in report["workers"]:
        state = "STALE (not running?)" if w["stale"] and w["state"] != "stopped" else w["state"]
        restarts = ", ".join(f"{k} {v}" for k, v in w["restarts"].items()) or "none"
        doing = f" upload {w['upload_id']} {w['stage']} {w['progress_done']}/" \
                f"{w['progress_total']}" if w["upload_id"] else ""
        print(f"worker    {w['name']}: {state}{doing}, heartbeat {w['age_s']:.0f} s ago")
        print(f"          memory {w['rss_kib'] or 0} KiB (peak {w['peak_kib'] or 0}; soft "
              f"{w['soft_limit_kib']}, hard {w['hard_limit_kib']}), jobs {w['jobs_done']}, "
              f"child starts {w['child_starts']}, restarts: {restarts}")
        if w.get("memory_enforcement"):
            print(f"          hard limit enforced by {w['memory_enforcement']}")
    return 0


def cmd_peaks(settings: Settings, args: argparse.Namespace) -> int:
    from core.jobs import learned

    app = open_app(settings)
    try:
        if not args.forget:
            rows = learned.learned(app.db)
            if args.json:
                print_json(rows)
            for r in [] if args.json else rows:
                print(f"{r['kind']:<24} {r['label']:<18} level {r['level']}: {r['jobs']} job(s), "
                      f"peak {r['peak_kib']} KiB{', over the hard limit' if r['over_limit'] else ''}")
            return 0
        removed = learned.clear(app.db, args.kind)
    finally:
        app.close()
    if args.json:
        print_json({"removed": removed})
    else:
        print(f"forgot {removed} recorded peak(s)" + (f" of {args.kind}" if args.kind else ""))
    return 0


def cmd_job_child(settings: Settings | None, args: argparse.Namespace) -> int:
    from core.jobs.child import main  # its settings come from the supervisor, not from here
    return main()


def cmd_probe_child(settings: Settings, args: argparse.Namespace) -> int:
    from core.media.child import main
    return main([args.memory_mb, args.path])


def cmd_plans_child(settings: Settings, args: argparse.Namespace) -> int:
    from core.media.plans_child import main
    return main(args.args)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("worker", help="run the worker (one video at a time)",
                              description="Run the queue consumer and its job supervisor.")
    p.add_argument("--burst", action="store_true",
                   help="process until nothing is QUEUED, then exit 0")
    p.set_defaults(handler=cmd_worker, service=True)
    p = subparsers.add_parser("status", help="uploads by status, queue depth, running "
                                             "workers with memory and restarts")
    p.add_argument("--all", action="store_true",
                   help="every worker that has run, stopped ones included")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_status)
    p = subparsers.add_parser(
        "peaks", help="learned memory peaks by video kind and level (--forget clears them)",
        description="Each job records its peak memory by video kind and degrade level; a "
                    "kind that went over the hard limit starts later jobs at the first level "
                    "that fit. This lists what was learned, or forgets it (all kinds, or "
                    "--kind), e.g. after an upgrade.")
    p.add_argument("--forget", action="store_true", help="forget what was learned")
    p.add_argument("--kind", help='with --forget: only this kind ("av1 3840x2160 8-bit")')
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_peaks)
    # Internal commands have no help, so argparse leaves them out of the command list.
    p = subparsers.add_parser("_job-child")
    p.set_defaults(handler=cmd_job_child, own_settings=True)
    # The frozen app's probe child (core.media.child): memory cap and path as arguments.
    p = subparsers.add_parser("_probe-child")
    p.add_argument("memory_mb")
    p.add_argument("path")
    p.set_defaults(handler=cmd_probe_child, own_settings=True)
    # The frozen app's plans child (core.media.plans_child, for sheet --compare): its
    # arguments are passed through as they are.
    p = subparsers.add_parser("_plans-child")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(handler=cmd_plans_child, own_settings=True)

