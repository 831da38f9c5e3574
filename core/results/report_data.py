"""What a morning report holds: the uploads of a window or period, failures, restarts and
figures, as plain values. :mod:`core.results.report` gathers them from the state database,
:mod:`core.results.report_html` renders them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

MEMORY_CAUSES = ("hard-limit", "memory-after-job")
WINDOW, PERIOD = "window", "period"
"""What a report covers: an off-peak window, or a --since/--until period."""


@dataclass
class Thumb:
    frame_index: int
    timestamp: float
    data_uri: str
    facts: str = ""   # where the frame came from and why: "#412 key · focus 231 · sharpest of 9"


@dataclass
class UploadLine:
    """One upload that finished in the window, or still waits."""

    id: int
    name: str
    status: str
    mode: str
    outcome: str = ""               # "done" or "failed" (in the window)
    category: str | None = None     # failed: the error category
    message: str = ""               # failed: the error; deferred: the latest note
    frames: int = 0
    seconds: float | None = None    # claim to finish, last attempt
    peak_kib: int | None = None
    rekognition_calls: int = 0
    duration: float | None = None
    submitted_at: float | None = None
    selection: str | None = None    # the frame selection asked for this upload (reprocess)
    vfr: bool | None = None         # the video's frame rate varies
    thumbs: list[Thumb] = field(default_factory=list)


@dataclass
class ReportData:
    start: datetime
    end: datetime
    now: datetime
    timezone: str
    processed: list[UploadLine]
    failed: list[UploadLine]
    deferred: list[UploadLine]
    restarts: list[dict[str, Any]]
    retries: int
    memory_retries: int
    rekognition_enabled: bool
    rekognition_budget: int                 # calls per budget period; 0 = no limit
    rekognition_periods: dict[str, int]     # budget period -> calls made in it
    soft_limit_kib: int
    hard_limit_kib: int
    path: Path | None = None                # where write_report put it
    kind: str = WINDOW                      # an off-peak window, or a --since/--until period

    @property
    def failed_by_category(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for line in self.failed:
            counts[line.category or "unknown"] = counts.get(line.category or "unknown", 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def rekognition_calls(self) -> int:
        return sum(line.rekognition_calls for line in self.processed + self.failed)

    @property
    def peak_kib(self) -> int | None:
        figures = [line.peak_kib for line in self.processed + self.failed if line.peak_kib]
        figures += [r["rss_kib"] for r in self.restarts if r["rss_kib"]]
        return max(figures) if figures else None

    @property
    def memory_restarts(self) -> list[dict[str, Any]]:
        return [r for r in self.restarts if r["cause"] in MEMORY_CAUSES]

    def summary(self) -> dict[str, Any]:
        return {"covers": self.kind, "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "window_start": self.start.isoformat(), "window_end": self.end.isoformat(),
                "processed": len(self.processed), "failed": len(self.failed),
                "failed_by_category": self.failed_by_category,
                "deferred": len(self.deferred), "rekognition_calls": self.rekognition_calls,
                "rekognition_budget": self.rekognition_budget,
                "rekognition_periods": self.rekognition_periods,
                "peak_mb": round(self.peak_kib / 1024, 1) if self.peak_kib else None,
                "path": str(self.path) if self.path else None,
                "restarts": len(self.restarts),
                "memory_restarts": len(self.memory_restarts)}
