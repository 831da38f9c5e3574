"""``peakops``: the command line. Each subcommand parses flags and calls one core function.

Exit codes: 0 success; 1 the operation failed (a message says why); 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import core
from core import home, redact
from core.app import App, open_app
from core.config import Settings, load_settings
from core.errors import PeakOpsError

logger = logging.getLogger("peakops")

COMMAND_MODULES = ["cli.uploads", "cli.worker", "cli.console", "cli.offpeak", "cli.results"]
"""Modules that add subcommands: each has ``register(subparsers)``."""

Handler = Callable[[Settings, argparse.Namespace], int]


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def fmt_time(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fail(message: str) -> int:
    print(f"peakops: {message}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peakops", description="Frames and labels from inspection videos, memory-bounded.")
    parser.add_argument("--version", action="version", version=f"peakops {core.__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="check Qt, fonts, ffmpeg, SQLite, Huey, APScheduler, boto3 and "
                             "Pillow in this installation (no display needed), then exit")
    parser.add_argument("--config", metavar="PATH", help="config file (TOML)")
    parser.add_argument("--home", metavar="DIR", help="home folder (default: $PEAKOPS_HOME)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def open_with_queue(settings: Settings) -> App:
    """The App of a command that may make uploads QUEUED: ``app.queued(ids)`` sends them
    to the worker's queue (the command line's one queue hook)."""
    from batch.queue import sender
    return open_app(settings, send_queued=sender(settings))


def configure_logging(settings: Settings, verbose: bool) -> None:
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level.upper())
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact.protect(settings.s3_endpoint_url, settings.rekognition_endpoint_url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        from cli.selftest import run
        return run()
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    if getattr(args, "own_settings", False):  # the frozen job child: settings come on stdin
        return handler(None, args)
    settings: Settings | None = None
    try:
        settings = load_settings(config_file=Path(args.config) if args.config else None,
                                 overrides={"home": args.home},
                                 config_required=bool(args.config))
        configure_logging(settings, args.verbose)
        return handler(settings, args)
    except PeakOpsError as exc:
        return fail(str(exc))
    except (sqlite3.Error, OSError) as exc:  # e.g. a read-only, full or corrupt home
        if settings is None:
            raise
        return fail(home.explain(settings.home, exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
