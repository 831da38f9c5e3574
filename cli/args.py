"""Argument types shared by the subcommands: a bad value is a usage error (exit 2)."""

from __future__ import annotations

import argparse
from datetime import datetime

from core.store import lifecycle

STATUSES = lifecycle.TERMINAL + lifecycle.ACTIVE


def positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return number


def non_negative_float(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of 0 or more, got {text!r}")
    return number


def parse_status(text: str) -> str:
    status = text.strip().upper()
    if status not in STATUSES:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(s.lower() for s in STATUSES)}, got {text!r}")
    return status


STATUS_HELP = "one of " + ", ".join(s.lower() for s in STATUSES)


def parse_moment(text: str) -> datetime:
    """An ISO date or time; without an offset it is read in the ``timezone`` setting."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date or time like 2026-12-01 or 2026-12-01T21:59, "
            f"got {text!r}") from None
