"""A hold point, so that a test can act on a job while it is surely running.

With ``Settings.hold_file`` set and that file present, a job stops before extracting the
frame at plan position ``n`` or later, where ``n`` is the number the file holds (empty:
0). On arrival it writes ``<hold_file>.reached`` (JSON: upload id, position, pid) in one
rename, then waits until the file is removed. A file holding ``submit`` stops a
submission instead, once its UPLOADING record exists (position -1 in the marker). A test kills the job, moves the clock or
pauses the batch at that known point, then releases it. Unset, it costs one comparison.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

POLL_S = 0.02


def marker_for(hold_file: Path) -> Path:
    """Where a job that reached the hold point says so."""
    return hold_file.with_name(hold_file.name + ".reached")


SUBMIT = "submit"


def _armed(hold_file: Path | None) -> str | None:
    if hold_file is None:
        return None
    try:
        return hold_file.read_text().strip()
    except OSError:  # absent (the usual case) or removed just now: no hold
        return None


def wait_at_hold_point(hold_file: Path | None, upload_id: int, position: int) -> None:
    """Wait here while ``hold_file`` exists and ``position`` has reached its number."""
    text = _armed(hold_file)
    if text is None or text == SUBMIT:
        return
    if position < (int(text) if text.isdigit() else 0):
        return
    _hold(hold_file, upload_id, position)


def wait_at_submit(hold_file: Path | None, upload_id: int) -> None:
    """Wait here, the upload recorded as UPLOADING, while ``hold_file`` says ``submit``."""
    if _armed(hold_file) == SUBMIT:
        _hold(hold_file, upload_id, -1)


def _hold(hold_file: Path, upload_id: int, position: int) -> None:
    marker = marker_for(hold_file)
    partial = marker.with_name(f"{marker.name}.{os.getpid()}")
    partial.write_text(json.dumps({"upload_id": upload_id, "position": position,
                                   "pid": os.getpid()}))
    os.replace(partial, marker)
    while hold_file.exists():
        time.sleep(POLL_S)
