"""What the command modules share: JSON output, times, and the App with the queue hook."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from core.app import App, open_app
from core.config import Settings


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def fmt_time(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def open_with_queue(settings: Settings) -> App:
    """The App of a command that may make uploads QUEUED: ``app.queued(ids)`` sends them
    to the worker's queue (the command line's one queue hook)."""
    from batch.queue import sender
    return open_app(settings, send_queued=sender(settings))
