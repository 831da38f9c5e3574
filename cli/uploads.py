"""Subcommands over uploads: submit, process, list, show, retry, reprocess, analyze,
cancel, delete, reset-stuck, cleanup, doctor, demo. Actions are :mod:`core.operations`."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cli import progress
from cli.args import STATUS_HELP, non_negative_float, parse_status, positive_int
from cli.common import fmt_time, open_with_queue, print_json
from core import maintenance, media, operations
from core.app import make_analyzer, make_store, open_app
from core.config import Settings
from core.errors import PeakOpsError
from core.home import check_database
from core.intake import submit_file
from core.naming import fmt_timing
from core.redact import redact
from core.store import heartbeat, lifecycle, queries
from core.store.db import open_database


def _human_size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "-"


def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    app = open_with_queue(settings)
    rejected = 0
    results = []
    bars = progress.wanted(args.json)
    for path in args.paths:
        try:
            with progress.byte_bar(bars, Path(path).name, _size(path)) as on_progress:
                result = operations.submit(app, Path(path), off_peak=args.off_peak,
                                           on_progress=on_progress)
        except PeakOpsError as exc:
            rejected += 1
            print(f"peakops: rejected: {exc}", file=sys.stderr)
            results.append({"path": path, "error": str(exc), "category": exc.category,
                            "upload_id": exc.upload_id})
            continue
        results.append({"path": path, "upload_id": result.upload_id, "status": result.status,
                        "duplicate_of": result.duplicate_of})
        if not args.json:
            if result.duplicate:
                print(f"{result.upload_id}\tduplicate of upload {result.duplicate_of} "
                      f"({result.status})\t{result.name}")
            else:
                print(f"{result.upload_id}\t{result.status}\t{result.name}")
    if args.json:
        print_json(results)
    return 1 if rejected else 0


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0  # submit_file says why in one line


def _report(outcome: operations.Outcome) -> int:
    """``ID<TAB>STATUS`` for each upload changed, one line on stderr for each refusal;
    exit 1 if any was refused."""
    for upload_id, status in outcome.statuses.items():
        print(f"{upload_id}\t{status}")
    for _, exc in outcome.refused:
        print(f"peakops: {exc}", file=sys.stderr)
    return 1 if outcome.refused else 0


def cmd_process(settings: Settings, args: argparse.Namespace) -> int:
    app = open_app(settings)
    bars = progress.wanted(args.json)
    try:
        with progress.byte_bar(bars, Path(args.path).name, _size(args.path)) as on_bytes:
            result = submit_file(app, Path(args.path), on_progress=on_bytes)
    except PeakOpsError as exc:
        if not args.json:
            raise
        # Rejected at submit: still one JSON record; the id is null when no record was made.
        print(f"peakops: {exc}", file=sys.stderr)
        record = queries.detail(app.db, exc.upload_id).as_dict() if exc.upload_id else {
            "status": "REJECTED", "original_name": Path(args.path).name}
        print_json({**record, "upload_id": exc.upload_id, "path": args.path,
                    "error": str(exc), "category": exc.category})
        return 1
    upload_id = result.upload_id
    if result.duplicate and result.status != lifecycle.QUEUED:
        if not args.json:
            print(f"duplicate of upload {upload_id} ({result.status})", file=sys.stderr)
    else:
        from batch.process import process_upload  # the worker's supervisor, for one upload
        with progress.stage_bars(bars, f"upload {upload_id}") as on_stage:
            outcome = process_upload(settings, upload_id, on_progress=on_stage)
        if outcome.interrupted:
            print(f"peakops: interrupted; upload {upload_id} released: back to "
                  f"{outcome.status}", file=sys.stderr)
            return 130
        if not args.json:
            print(f"upload {upload_id}: {outcome.status}")
    detail = queries.detail(app.db, upload_id)
    if args.json:
        print_json({**detail.as_dict(), "upload_id": upload_id, "path": args.path})
    else:
        _print_detail(detail, frames=True)
    return 0 if detail.upload["status"] == lifecycle.DONE else 1


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    app = open_app(settings)
    rows = queries.list_uploads(app.db, status=args.status, limit=args.limit)
    if args.json:
        print_json(rows)
        return 0
    print(f"{'ID':>5}  {'STATUS':<10} {'MODE':<8} {'SIZE':>9}  {'CREATED':<19}  NAME")
    for row in rows:
        note = f"  [{row['error_category']}] {row['error_message']}" if row["error_category"] \
            and row["status"] == lifecycle.FAILED else ""
        print(f"{row['id']:>5}  {row['status']:<10} {row['mode']:<8} "
              f"{_human_size(row['size']):>9}  {fmt_time(row['created_at']):<19}  "
              f"{row['original_name']}{note}")
    return 0


def _print_detail(detail: queries.UploadDetail, *, frames: bool) -> None:
    u = detail.upload
    print(f"upload {u['id']}: {u['original_name']}")
    print(f"  status    {u['status']} (mode {u['mode']}, attempts {u['attempts']}, "
          f"degrade level {u['degrade_level']})")
    if u["error_category"]:
        print(f"  error     [{u['error_category']}] {u['error_message']}")
    if u["width"]:
        print(f"  video     {u['width']}x{u['height']} {u['codec']}, "
              f"{fmt_timing(u['duration'], u['fps'], u['frame_count'])}, {_human_size(u['size'])}")
    print(f"  created   {fmt_time(u['created_at'])}   finished {fmt_time(u['finished_at'])}")
    if frames:
        print(f"  frames    {len(detail.frames)}")
        for f in detail.frames:
            labels = ", ".join(
                f"near-duplicate of #{f['duplicate_of']}"
                if lb["name"] == "near-duplicate" and f.get("duplicate_of") is not None
                else f"{lb['name']} {lb['confidence']:.0f}%" for lb in f["labels"])
            print(f"    #{f['idx']:<3} {f['timestamp']:7.2f} s  {f['width']}x{f['height']}  {labels}")
    print("  activity")
    for e in detail.events:
        print(f"    {fmt_time(e['at'])}  {e['kind']:<10} {e['message']}")


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    detail = queries.detail(open_app(settings).db, args.id)
    if args.json:
        print_json(detail.as_dict())
    else:
        _print_detail(detail, frames=True)
    return 0


def cmd_retry(settings: Settings, args: argparse.Namespace) -> int:
    return _report(operations.retry(open_with_queue(settings), args.ids))


def cmd_reprocess(settings: Settings, args: argparse.Namespace) -> int:
    return _report(operations.reprocess(open_with_queue(settings), args.ids, args.selection))


def cmd_analyze(settings: Settings, args: argparse.Namespace) -> int:
    return _report(operations.analyze(open_with_queue(settings), args.ids))


def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    return _report(operations.cancel(open_app(settings), args.ids))


def cmd_delete(settings: Settings, args: argparse.Namespace) -> int:
    if not args.yes:
        print(f"peakops: delete removes upload(s) {', '.join(map(str, args.ids))} with their "
              "video, frames, labels and activity for good; add --yes to confirm",
              file=sys.stderr)
        return 2
    return _report(operations.delete(open_app(settings), args.ids))


def cmd_reset_stuck(settings: Settings, args: argparse.Namespace) -> int:
    outcome = operations.reset_stuck(open_with_queue(settings))
    if args.json:
        print_json([{"upload_id": i, "status": s} for i, s in outcome.statuses.items()])
    else:
        _report(outcome)
        print(f"{len(outcome.statuses)} stuck upload(s) reset")
    return 0


def cmd_cleanup(settings: Settings, args: argparse.Namespace) -> int:
    app = open_app(settings)
    result = maintenance.cleanup_expired(app, days=args.days)
    swept = maintenance.sweep_temp(app)
    workers = heartbeat.prune(app.db)
    if args.json:
        print_json({"uploads": result.uploads, "objects": result.objects,
                    "errors": result.errors, "temp_folders": swept, "workers": workers})
    else:
        print(f"removed {result.uploads} upload(s), {result.objects} object(s), "
              f"{swept} abandoned temp folder(s), {workers} worker(s) not seen for a day; "
              f"{result.errors} kept after storage errors")
    return 1 if result.errors else 0


def doctor_checks(settings: Settings) -> list[tuple[str, bool, str]]:
    """(what, ok, one line) for each part PeakOps needs."""
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, fn) -> None:
        try:
            checks.append((name, True, redact(fn())))
        except PeakOpsError as exc:
            checks.append((name, False, str(exc)))
        except Exception as exc:  # doctor reports, it does not crash
            checks.append((name, False, redact(f"{type(exc).__name__}: {exc}")))

    def ffmpeg() -> str:
        exe = media.ffmpeg_exe()
        out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True,
                             timeout=30, check=True).stdout.splitlines()[0]
        return f"{exe} ({out})"

    def home() -> str:
        settings.home.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(settings.home).free // 1048576
        with tempfile.NamedTemporaryFile(dir=settings.home):
            pass
        return f"{settings.home} (writable, {free} MB free)"

    def database() -> str:
        if settings.database_dialect == "sqlite":  # never a fresh schema beside lost history
            check_database(settings)
        db = open_database(settings)
        try:
            return (f"{db.describe()} (schema {db.schema_version()}, "
                    f"{queries.upload_count(db)} uploads)")
        finally:
            db.close()

    def queue() -> str:
        from batch.queue import describe_queue
        return describe_queue(settings)

    def storage() -> str:
        store = make_store(settings)
        store.check()
        return store.describe()

    def analyzer() -> str:
        analyzer = make_analyzer(settings)
        analyzer.check()
        return analyzer.describe() + ("" if settings.enable_aws_rekognition
                            else " (offline; ENABLE_AWS_REKOGNITION=false)")

    def memory() -> str:
        from core.jobs.cgroup import available
        return f"hard limit {settings.hard_memory_limit_kib} KiB enforced by {available()}"

    # Each part on its own, so the report names the one that is unreachable.
    check("ffmpeg", ffmpeg)
    check("home", home)
    check("database", database)
    check("queue", queue)
    check("storage", storage)
    check("analyzer", analyzer)
    check("memory", memory)
    return checks


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    checks = doctor_checks(settings)
    if args.json:
        print_json([{"check": n, "ok": ok, "detail": d} for n, ok, d in checks])
    else:
        for name, ok, line in checks:
            print(f"{'ok  ' if ok else 'FAIL'}  {name:<9} {line}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Generate a short clip with the bundled ffmpeg and process it (headless demo)."""
    from core.media.samples import make_clip

    demo_dir = settings.home / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    clip = make_clip(demo_dir / "demo-clip.mp4", seconds=10, width=640, height=360, audio=True)
    print(f"generated {clip}")
    return cmd_process(settings, argparse.Namespace(path=str(clip), json=False))


def register(subparsers: argparse._SubParsersAction) -> None:
    def add(name: str, handler, help_: str, json_flag: bool = True) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_, description=help_)
        parser.set_defaults(handler=handler)
        if json_flag:
            parser.add_argument("--json", action="store_true", help="print JSON")
        return parser

    p = add("submit", cmd_submit, "validate, store and record videos; prints upload ids")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--off-peak", action="store_true", help="wait for the off-peak window")
    p.set_defaults(signals_interrupt=True)  # SIGTERM/SIGHUP withdraw it, as Ctrl-C does
    p = add("process", cmd_process, "submit one video and process it here, synchronously")
    p.add_argument("path", metavar="PATH")
    p = add("list", cmd_list, "list uploads")
    p.add_argument("--status", type=parse_status, metavar="STATUS",
                   help=f"only uploads in this status: {STATUS_HELP}")
    p.add_argument("--limit", type=positive_int, help="at most this many rows")
    p = add("show", cmd_show, "one upload with frames, labels and activity")
    p.add_argument("id", type=int)
    p = add("retry", cmd_retry, "queue failed, done or cancelled uploads again", json_flag=False)
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p = add("reprocess", cmd_reprocess, "process again from the stored video (frames redone)",
            json_flag=False)
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p.add_argument("--selection", choices=("even", "sharpest", "coverage"),
                   help="frame selection for these uploads from now on (default: as before, "
                        "else the frame_selection setting)")
    p = add("analyze", cmd_analyze, "analyse the recorded frames again", json_flag=False)
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p = add("cancel", cmd_cancel, "cancel uploads that have not finished", json_flag=False)
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p = add("delete", cmd_delete, "delete uploads for good: video, frames, labels, activity",
            json_flag=False)
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p.add_argument("--yes", action="store_true", help="confirm the deletion")
    add("reset-stuck", cmd_reset_stuck,
        "return uploads whose worker is gone (lease expired or process dead) to the queue")
    p = add("cleanup", cmd_cleanup, "delete finished uploads past retention, and their files")
    p.add_argument("--days", type=non_negative_float,
                   help="retention in days (default: retention_days)")
    add("doctor", cmd_doctor, "check ffmpeg, home folder, database, queue, storage and analyzer")
    add("demo", cmd_demo, "generate a short clip and process it (headless demo)",
        json_flag=False)
