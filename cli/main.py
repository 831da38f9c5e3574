"""``peakops``: the command line. Each subcommand parses flags and calls one core function.

Exit codes: 0 success; 1 the operation failed (a message says why); 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import core
from cli import config, console, offpeak, results, uploads, worker
from core import home, redact
from core.config import Settings, load_settings
from core.errors import DatabaseError, PeakOpsError

logger = logging.getLogger("peakops")

COMMAND_MODULES = (uploads, worker, console, offpeak, results, config)
"""Modules that add subcommands: each has ``register(subparsers)``. They share helpers
through :mod:`cli.common`, never this module, so imports point one way."""

Handler = Callable[[Settings, argparse.Namespace], int]


def fail(message: str) -> int:
    print(f"peakops: {message}", file=sys.stderr)
    return 1


class Parser(argparse.ArgumentParser):
    """Leaves internal commands (``_job-child``) out of "invalid choice" messages too."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if isinstance(action, argparse._SubParsersAction) and value not in action.choices:
            shown = ", ".join(repr(c) for c in action.choices if not c.startswith("_"))
            raise argparse.ArgumentError(action, f"invalid choice: {value!r} (choose from "
                                                 f"{shown})")
        super()._check_value(action, value)


class VersionAction(argparse.Action):
    """``--version``, reading the version only when asked: importlib.metadata (about 5 MB)
    stays out of every other command, the worker and its job child among them."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 help: str = "show program's version number and exit") -> None:  # noqa: A002
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"peakops {core.__version__}")  # on stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="peakops", description="Frames and labels from inspection videos, memory-bounded.")
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("--self-test", action="store_true",
                        help="check Qt, fonts, ffmpeg, SQLite, Huey, APScheduler, boto3 and "
                             "Pillow in this installation (no display needed), then exit")
    parser.add_argument("--config", metavar="PATH", help="config file (TOML)")
    parser.add_argument("--home", metavar="DIR", help="home folder (default: $PEAKOPS_HOME)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log progress messages on stderr (-vv: debug messages too)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    shown = {action.dest: action.help for action in subparsers._choices_actions}
    for name, sub in subparsers.choices.items():
        if not sub.description and shown.get(name):
            sub.description = shown[name][0].upper() + shown[name][1:] + "."
    return parser


def configure_logging(settings: Settings, verbose: int, *, service: bool = False) -> None:
    """Long-running services log at ``log_level`` (their log is their output); a
    command is quiet but for warnings unless ``-v`` (info) or ``-vv`` (debug)."""
    configured = getattr(logging, settings.log_level.upper())
    if service:
        level = logging.DEBUG if verbose else configured
    else:
        level = {0: max(configured, logging.WARNING), 1: min(configured, logging.INFO)}.get(
            verbose, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler says "Running job ..." and "... executed successfully" at INFO for every
    # tick (each dispatch_interval); the batch logs what its ticks do itself, one line per
    # job. Its warnings (a missed run) still show; -v shows everything.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbose else logging.WARNING)
    redact.protect(settings.s3_endpoint_url, settings.rekognition_endpoint_url)


def _stdout_closed() -> int:
    """The reader went away (``peakops list | head -1``): stop quietly, as a command
    killed by SIGPIPE would, and keep the interpreter's last flush from complaining."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13  # SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_closed()
    return code


class SignalInterrupt(KeyboardInterrupt):
    """SIGTERM or SIGHUP, met like Ctrl-C: the command's clean-up runs, nothing is left
    half-done (a submission's record fails, its staging copy goes)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`SignalInterrupt` in the main thread; later ones are
    ignored while the clean-up the first one started runs."""
    caught = (signal.SIGTERM, signal.SIGHUP)

    def interrupt(signum: int, _frame: Any) -> None:
        for sig in caught:
            signal.signal(sig, signal.SIG_IGN)
        raise SignalInterrupt(signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in caught}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: Sequence[str] | None) -> int:
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
        configure_logging(settings, args.verbose, service=getattr(args, "service", False))
        with signals_interrupt() if getattr(args, "signals_interrupt", False) \
                else contextlib.nullcontext():
            return handler(settings, args)
    except (DatabaseError, OSError) as exc:  # e.g. a read-only, full or corrupt home
        if settings is None or isinstance(exc, BrokenPipeError):  # a closed stdout: main()
            raise
        if isinstance(exc, DatabaseError) and not (exc.from_driver
                                                   and settings.database_dialect == "sqlite"):
            return fail(str(exc))  # said in our words already, or not about the home
        return fail(home.explain(settings.home, exc))
    except PeakOpsError as exc:
        return fail(str(exc))
    except SignalInterrupt as exc:
        print(f"peakops: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
