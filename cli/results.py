"""Subcommands that get results out: export, sheet, report."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from cli.args import STATUSES, parse_moment, parse_status
from cli.common import print_json
from core.app import open_app
from core.config import Settings
from core.results import export
from core.schedule.windows import parse_windows
from core.store import queries

SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".db": "sqlite",
                  ".sqlite": "sqlite", ".sqlite3": "sqlite"}


def usage(command: str, message: str) -> int:
    print(f"peakops {command}: error: {message}", file=sys.stderr)
    return 2


def parse_window(text: str) -> date | str:
    if text.strip().lower() == "last":
        return "last"
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'last' or a date like 2026-11-24, got {text!r}") from None


# ------------------------------------------------------------------ export


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    dest = Path(args.output) if args.output and args.output != "-" else None
    fmt = args.format or (SUFFIX_FORMATS.get(dest.suffix.lower()) if dest else "csv")
    if fmt is None:
        suffixes = ", ".join(sorted(SUFFIX_FORMATS))
        return usage("export", f"cannot tell the format from {dest.name!r}: name the file "
                               f"with one of {suffixes}, or give --format csv|jsonl|sqlite")
    if fmt == "sqlite" and dest is None:
        return usage("export", "--format sqlite needs -o FILE (a database file)")
    if args.json and dest is None:
        return usage("export", "--json prints a summary; give -o FILE for the data")
    app = open_app(settings)
    for upload_id in args.ids:
        queries.get_upload(app.db, upload_id)  # NotFoundError: one line, exit 1
    since = None
    if args.since is not None:
        moment = args.since
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=parse_windows("", settings.timezone).tz)
        since = moment.timestamp()
    selection = export.Selection(ids=tuple(args.ids), statuses=tuple(args.status or ()),
                                 since=since)
    frames_dir = Path(args.frames).resolve() if args.frames else None
    result = export.export(app, fmt, selection, dest=dest, frames_dir=frames_dir)
    summary = (f"exported {result.frames} frame(s) of {result.uploads} upload(s), "
               f"{result.labels} label(s), as {fmt}" + (f" to {dest}" if dest else ""))
    if frames_dir is not None:
        summary += f"; {result.images_copied} image(s) copied under {frames_dir}"
    if args.json:
        print_json({**result.as_dict(),
                    "frames_dir": str(frames_dir) if frames_dir else None})
    else:
        print(summary, file=sys.stdout if dest else sys.stderr)
    return 0


# ------------------------------------------------------------------ sheet


def cmd_sheet(settings: Settings, args: argparse.Namespace) -> int:
    from core.results.sheet import default_sheet_path, make_sheet  # Pillow: this command only
    app = open_app(settings)
    if args.compare:
        from core.results.compare import compare_sheet, default_compare_path

        plans = tuple(args.compare)
        dest = Path(args.output) if args.output else default_compare_path(app, args.id, plans)
        sheet = compare_sheet(app, args.id, plans, dest)
    else:
        dest = Path(args.output) if args.output else default_sheet_path(app, args.id)
        sheet = make_sheet(app, args.id, dest)
    if args.json:
        print_json({"upload_id": args.id, "path": str(sheet.path), "width": sheet.width,
                    "height": sheet.height, "frames": len(sheet.cells)})
    else:
        print(sheet.path)
    return 0


# ------------------------------------------------------------------ report


def _aware(moment: datetime | None, tz) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    return moment


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from core.results import report  # Pillow (the report's contact sheets): this command only
    now = datetime.now(UTC)
    schedule = parse_windows(settings.offpeak_windows, settings.timezone)
    period = args.since is not None or args.until is not None
    if period and args.window is not None:
        return usage("report", "--window reports one off-peak window; --since/--until a "
                               "period: give one or the other")
    if args.window is None and not period:
        latest = report.latest_report(settings.home)
        if latest is not None:
            if args.json:
                print_json({"path": str(latest), "regenerated": False})
            else:
                print(latest)
            return 0
    kind = report.PERIOD if period else report.WINDOW
    if not period:
        start, end = report.choose_window(schedule, args.window or "last", now)
    app = open_app(settings)
    if period:
        end = _aware(args.until, schedule.tz) or now
        start = _aware(args.since, schedule.tz) or report.default_since(app.db, end)
    data = report.write_report(app, start=start, end=end, now=now, kind=kind)
    if args.json:
        print_json({"regenerated": True, **data.summary()})
    else:
        print(data.path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export frames and labels as CSV, JSON lines or SQLite",
        description="Export one row per frame (upload, timestamp, labels with confidences, "
                    "image path). CSV and JSON lines go to stdout without -o.")
    p.add_argument("ids", type=int, nargs="*", metavar="ID", help="only these uploads")
    p.add_argument("--format", choices=export.FORMATS,
                   help="output format (default: from the -o suffix, which must then be "
                        "one of " + ", ".join(sorted(SUFFIX_FORMATS)) + "; csv on stdout)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    p.add_argument("--since", type=parse_moment, metavar="DATE",
                   help="only uploads submitted at or after this date or ISO time "
                        "(local time zone setting)")
    p.add_argument("--status", type=parse_status, action="append", metavar="STATUS",
                   help="only uploads in this status (repeatable): "
                        + ", ".join(s.lower() for s in STATUSES))
    p.add_argument("--frames", metavar="DIR",
                   help="also copy the frame images to DIR/<upload-name>/<time>.jpg")
    p.add_argument("--json", action="store_true", help="print a JSON summary (needs -o)")
    p.set_defaults(handler=cmd_export)

    p = subparsers.add_parser("sheet", help="write a contact sheet (one JPEG) of an upload",
                              description="Write one JPEG grid of an upload's frames with "
                                          "their times and top labels; prints its path.")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="where to write it (default: HOME/sheets/<name> (id N).jpg)")
    p.add_argument("--compare", nargs=2, choices=("even", "sharpest", "coverage"),
                   metavar="PLAN", help="two frame selection plans side by side (even, "
                   "sharpest, coverage), taken afresh from the stored video")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_sheet)

    p = subparsers.add_parser(
        "report", help="print the latest morning report's path, or regenerate one",
        description="Without options: print the path of the latest morning report (made "
                    "for the last closed window if there is none). With --window: "
                    "regenerate the report of that window and print its path. With "
                    "--since and/or --until: write a report of that period (every upload, "
                    "on demand or off-peak) and print its path.")
    p.add_argument("--window", type=parse_window, metavar="last|DATE",
                   help="the last closed window, or the one that started on DATE (one not "
                        "started yet is refused)")
    p.add_argument("--since", type=parse_moment, metavar="TIME",
                   help="report a period instead of a window: uploads that finished from "
                        "TIME (ISO date or time; default: the end of the last report made)")
    p.add_argument("--until", type=parse_moment, metavar="TIME",
                   help="... up to TIME (default: now)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_report)
