"""How long an upload will take to process, from its duration, resolution and history.

Model: processing seconds = rate x video seconds x megapixels, where ``rate`` is learnt
from the most recent DONE uploads (their ``finished_at - started_at``) as a weighted
mean: total processing time over total work. A video with the same resolution as the
history therefore takes the same multiple of its duration (a 10-minute video takes
20 minutes when past 10-minute videos did). With no history a conservative default
rate applies. An upload handed back at a hard window end resumes from its checkpoint,
so only its remaining share of frames counts.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from core.store.queries import recent_done
from core.store.sqldb import SqlDatabase

HISTORY_SIZE = 50
DEFAULT_RATE = 0.5
"""Seconds per video second per megapixel when nothing has been measured yet."""
MIN_MEGAPIXELS = 0.01
"""Floor so that tiny or unknown resolutions still cost something."""
DEFAULT_SECONDS = 120.0
"""An upload whose duration is unknown, with no history to go by."""


@dataclass(frozen=True)
class History:
    """The measured speed of past jobs; ``rate`` is None when nothing was measured."""

    rate: float | None
    samples: int
    median_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "samples": self.samples,
                "median_seconds": self.median_seconds}


def work_units(duration: float | None, width: int | None, height: int | None) -> float | None:
    """Video seconds x megapixels (None when the duration is unknown)."""
    if not duration or duration <= 0:
        return None
    megapixels = (width or 0) * (height or 0) / 1e6
    return duration * max(megapixels, MIN_MEGAPIXELS)


def history_from(rows: list[dict[str, Any]]) -> History:
    """History from rows with started_at, finished_at, duration, width and height."""
    seconds, units = [], []
    for row in rows:
        if row.get("started_at") is None or row.get("finished_at") is None:
            continue
        took = row["finished_at"] - row["started_at"]
        if took <= 0:
            continue
        seconds.append(took)
        work = work_units(row.get("duration"), row.get("width"), row.get("height"))
        if work:
            units.append((took, work))
    rate = sum(t for t, _ in units) / sum(w for _, w in units) if units else None
    return History(rate=rate, samples=len(seconds),
                   median_seconds=statistics.median(seconds) if seconds else None)


def load_history(db: SqlDatabase, *, limit: int = HISTORY_SIZE) -> History:
    """History of the last ``limit`` DONE uploads. ``started_at`` is the start of the last
    attempt, so a job resumed from a checkpoint counts only its last run."""
    return history_from(recent_done(db, limit))


def estimate_seconds(upload: dict[str, Any], history: History, *,
                     frames_done: int = 0) -> float:
    """Estimated processing seconds for ``upload`` (a row of the uploads table)."""
    work = work_units(upload.get("duration"), upload.get("width"), upload.get("height"))
    if work is None:
        full = history.median_seconds or DEFAULT_SECONDS
    else:
        full = work * (history.rate if history.rate is not None else DEFAULT_RATE)
    planned = upload.get("frames_planned") or 0
    if planned and frames_done:
        full *= max(0.0, 1.0 - min(frames_done, planned) / planned)
    return full
