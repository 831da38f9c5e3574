"""The morning report: what one off-peak window (or any period) did, as one HTML file.

:func:`gather` reads the state database for a window ``[start, end)``: uploads that
finished (their last ``done``/``failed`` event in the window decides which), failures
by category, what is still deferred, Rekognition calls against the budget, peak memory
and every job-child restart with its cause, plus a small thumbnail strip per upload.
:func:`write_report` renders it (:mod:`core.results.report_html`) to
``<home>/reports/<window-date>.html``, the date being the window's local start date.
A report of a period (``report --since/--until``, by default since the end of the last
report made) goes to ``<home>/reports/period-<start>-to-<end>.html``; every report says
in its title which period it covers.

Time is a parameter: the window's bounds and ``now`` (when the report is made) are
given; nothing here reads the clock.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image

from core.app import App
from core.errors import CATEGORIES, InputError, PeakOpsError
from core.results.report_data import (  # noqa: F401  (re-exported: report.ReportData ...)
    MEMORY_CAUSES,
    PERIOD,
    WINDOW,
    ReportData,
    Thumb,
    UploadLine,
)
from core.results.report_html import render
from core.schedule.windows import Schedule
from core.store import lifecycle, state

logger = logging.getLogger(__name__)

REPORTS_DIR = "reports"
THUMBS_PER_UPLOAD = 8
THUMB_SIZE = (160, 90)
THUMB_QUALITY = 60
MAX_STRIPS = 40
"""Uploads given a thumbnail strip; past this the report lists them without pictures."""
LAST_END = "report.last_end"
"""State key: the end (epoch seconds) of the latest period a report was written for."""


def _category(message: str) -> str:
    """The category a ``failed`` event names first (``lifecycle.fail`` writes ``cat: msg``)."""
    head = message.split(":", 1)[0].strip()
    return head if head in CATEGORIES else "unknown"


def _finished(db: Any, lo: float, hi: float) -> tuple[list[UploadLine], list[UploadLine]]:
    last: dict[int, dict[str, Any]] = {}
    for event in db.query(
            "SELECT e.upload_id, e.kind, e.message FROM events e JOIN uploads u "
            "ON u.id = e.upload_id WHERE e.at >= ? AND e.at < ? AND e.kind IN "
            "('done', 'failed') ORDER BY e.at, e.id", [lo, hi]):
        last[event["upload_id"]] = event
    processed, failed = [], []
    for upload_id, event in sorted(last.items()):
        [u] = db.query(
            "SELECT u.*, (SELECT COUNT(*) FROM frames f WHERE f.upload_id = u.id) AS nframes "
            "FROM uploads u WHERE u.id = ?", [upload_id])
        took = (u["finished_at"] - u["started_at"]
                if u["finished_at"] and u["started_at"] else None)
        line = UploadLine(id=upload_id, name=u["original_name"], status=u["status"],
                          mode=u["mode"], outcome=event["kind"], frames=u["nframes"],
                          seconds=took, peak_kib=u["peak_rss_kib"],
                          rekognition_calls=u["rekognition_calls"] or 0,
                          duration=u["duration"], submitted_at=u["created_at"],
                          selection=u.get("frame_selection"),
                          vfr=None if u.get("vfr") is None else bool(u["vfr"]))
        if event["kind"] == "failed":
            line.category = _category(event["message"])
            line.message = event["message"].split(":", 1)[-1].strip()
            failed.append(line)
        else:
            processed.append(line)
    return processed, failed


NOTE_KINDS = ("withdrawn", "released", "retry", "mode")
"""Events that say why a deferred upload is where it is (not "submitted", "stored")."""


def _deferred(db: Any, notes: dict[int, str]) -> list[UploadLine]:
    lines = []
    for u in db.query("SELECT * FROM uploads WHERE status = ? ORDER BY priority DESC, id",
                      [lifecycle.DEFERRED]):
        note = notes.get(u["id"])
        if note is None:
            row = db.execute(f"SELECT message FROM events WHERE upload_id = ? AND kind IN "
                             f"({','.join('?' * len(NOTE_KINDS))}) ORDER BY id DESC LIMIT 1",
                             [u["id"], *NOTE_KINDS]).fetchone()
            note = row[0] if row else "not started yet"
        lines.append(UploadLine(id=u["id"], name=u["original_name"], status=u["status"],
                                mode=u["mode"], message=note, duration=u["duration"],
                                submitted_at=u["created_at"]))
    return lines


def _period_calls(db: Any, start: datetime, end: datetime, timezone: str) -> dict[str, int]:
    """Rekognition calls per budget period (noon to noon) the window touches."""
    from core.analysis.rekognition import budget_period, period_calls_key  # boto3: only when asked
    moments = [start + timedelta(hours=6 * i)
               for i in range(int((end - start).total_seconds() // 21600) + 1)]
    periods = dict.fromkeys(budget_period(m, timezone)
                            for m in [*moments, end - timedelta(microseconds=1)] if m < end)
    return {p: int(state.get(db, period_calls_key(p), 0) or 0) for p in periods}


def thumbnails(app: App, upload_id: int, scratch: Path,
               count: int = THUMBS_PER_UPLOAD) -> list[Thumb]:
    """Up to ``count`` frames spread over the upload, as small inline JPEGs."""
    frames = list(app.db.query("SELECT idx, timestamp, storage_key, stream_frame, keyframe, "
                               "focus, reason FROM frames "
                               "WHERE upload_id = ? ORDER BY idx", [upload_id]))
    if len(frames) > count:
        step = (len(frames) - 1) / (count - 1)
        frames = [frames[round(i * step)] for i in range(count)]
    thumbs = []
    for frame in frames:
        local = scratch / f"{upload_id}-{frame['idx']}.jpg"
        try:
            app.store.get_file(frame["storage_key"], local)
            with Image.open(local) as image:
                image.draft("RGB", THUMB_SIZE)
                picture = image.convert("RGB")
            picture.thumbnail(THUMB_SIZE, Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            picture.save(buffer, "JPEG", quality=THUMB_QUALITY, optimize=True)
        except (PeakOpsError, OSError) as exc:  # a missing frame costs its picture only
            logger.warning("upload %s: frame %s left out of the report: %s", upload_id,
                           frame["idx"], exc)
            continue
        finally:
            with contextlib.suppress(FileNotFoundError):
                local.unlink()
        uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        thumbs.append(Thumb(frame["idx"], frame["timestamp"], uri, frame_note(frame)))
    return thumbs


def frame_note(frame: dict) -> str:
    """A frame's facts in a few words: its place in the stream, keyframe, focus, reason."""
    parts = []
    if frame.get("stream_frame") is not None:
        parts.append(f"#{frame['stream_frame']}" + (" key" if frame.get("keyframe") else ""))
    if frame.get("focus") is not None:
        parts.append(f"focus {frame['focus']:.0f}")
    if frame.get("reason"):
        parts.append(frame["reason"])
    return " · ".join(parts)


def gather(app: App, *, start: datetime, end: datetime, now: datetime,
           notes: dict[int, str] | None = None, kind: str = WINDOW) -> ReportData:
    """Everything the report shows for the window ``[start, end)``, as of ``now``.

    ``notes`` (upload id -> why it was not dispatched) come from the scheduler's last
    plan; without them a deferred upload shows its latest withdraw/release event.
    """
    db, settings = app.db, app.settings
    lo, hi = start.timestamp(), end.timestamp()
    processed, failed = _finished(db, lo, hi)
    restarts = list(db.query("SELECT * FROM restarts WHERE at >= ? AND at < ? ORDER BY at, id",
                             [lo, hi]))
    retries = list(db.query("SELECT message FROM events WHERE kind = 'retry' AND at >= ? "
                            "AND at < ?", [lo, hi]))
    periods = _period_calls(db, start, end, settings.timezone)
    data = ReportData(
        start=start, end=end, now=now, timezone=settings.timezone, processed=processed,
        failed=failed, deferred=_deferred(db, notes or {}), restarts=restarts, retries=len(retries),
        memory_retries=sum(1 for r in retries if _category(r["message"]) == "memory"),
        rekognition_enabled=settings.enable_aws_rekognition,
        rekognition_budget=settings.rekognition_max_calls_per_window,
        rekognition_periods=periods, soft_limit_kib=settings.max_memory_per_child,
        hard_limit_kib=settings.hard_memory_limit_kib, kind=kind)
    with tempfile.TemporaryDirectory(prefix="report-", dir=settings.tmp_dir) as scratch:
        for line in (processed + failed)[:MAX_STRIPS]:
            if line.frames:
                line.thumbs = thumbnails(app, line.id, Path(scratch))
    return data


def report_path(home: Path, start: datetime, timezone: str, end: datetime | None = None,
                kind: str = WINDOW) -> Path:
    """``<home>/reports/<window start date, local>.html``; for a period
    ``period-<start>-to-<end>.html`` (local ``YYYYMMDD-HHMM``)."""
    tz = ZoneInfo(timezone)
    if kind == PERIOD and end is not None:
        return home / REPORTS_DIR / (f"period-{start.astimezone(tz):%Y%m%d-%H%M}-to-"
                                     f"{end.astimezone(tz):%Y%m%d-%H%M}.html")
    return home / REPORTS_DIR / f"{start.astimezone(tz).date().isoformat()}.html"


def last_window(schedule: Schedule, now: datetime) -> tuple[datetime, datetime] | None:
    """The most recent scheduled window that has closed by ``now``."""
    closed = [(s, e) for s, e in schedule.intervals(now - timedelta(days=15), now)
              if e.timestamp() <= now.timestamp()]
    return closed[-1] if closed else None


def window_on(schedule: Schedule, day: date) -> tuple[datetime, datetime] | None:
    """The scheduled window that started on local date ``day``, else the first one open
    during that day (a weekend window merged with Friday night started on Friday)."""
    start = datetime(day.year, day.month, day.day, tzinfo=schedule.tz)
    found = schedule.intervals(start, start + timedelta(days=1))
    for s, e in found:
        if s.astimezone(schedule.tz).date() == day:
            return s, e
    return found[0] if found else None


def choose_window(schedule: Schedule, which: date | str, now: datetime
                  ) -> tuple[datetime, datetime]:
    """The window ``report --window`` names (``"last"`` or a start date) as of ``now``.

    A window still open is reported up to ``now``; one that has not started is refused
    (a report of it would count nothing and claim hours still ahead)."""
    if which == "last":
        window = last_window(schedule, now)
        what = "no off-peak window has closed in the last 15 days"
    else:
        window = window_on(schedule, which)
        what = f"no off-peak window is open on {which.isoformat()}"
    if window is None:
        raise InputError(f"{what} (offpeak_windows = {schedule.spec!r})")
    start, end = window
    if start.timestamp() > now.timestamp():
        raise InputError(
            f"the off-peak window of {which} ({start:%a %Y-%m-%d %H:%M} to {end:%a %H:%M}) has "
            f"not started yet; `report --window last` reports the last finished window")
    return start, min(end, now, key=lambda moment: moment.timestamp())


def default_since(db: Any, until: datetime) -> datetime:
    """Where a period report starts by default: the end of the last report written, else
    the first recorded event (everything so far)."""
    last = state.get(db, LAST_END)
    if last is None:
        row = db.execute("SELECT MIN(at) FROM events").fetchone()
        last = row[0] if row and row[0] is not None else until.timestamp()
    return datetime.fromtimestamp(min(float(last), until.timestamp()), until.tzinfo)


def write_report(app: App, *, start: datetime, end: datetime, now: datetime,
                 notes: dict[int, str] | None = None, kind: str = WINDOW) -> ReportData:
    """Gather, render and write the report of ``[start, end)``; its ``path`` says where."""
    if start.timestamp() >= end.timestamp():
        raise InputError(f"the report's period is empty: {start.isoformat()} is not before "
                         f"{end.isoformat()}")
    data = gather(app, start=start, end=end, now=now, notes=notes, kind=kind)
    path = report_path(app.settings.home, start, app.settings.timezone, end, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(render(data), encoding="utf-8")
    os.replace(part, path)
    if end.timestamp() > float(state.get(app.db, LAST_END) or 0):
        state.put(app.db, LAST_END, end.timestamp())
    logger.info("morning report for %s - %s: %s (%s processed, %s failed, %s deferred)",
                start.isoformat(), end.isoformat(), path, len(data.processed),
                len(data.failed), len(data.deferred))
    data.path = path
    return data


def write_at_close(app: App, *, start: datetime, end: datetime,
                   notes: dict[int, str] | None = None) -> Path | None:
    """For the scheduler at a window's close: write the report, never raise."""
    try:
        return write_report(app, start=start, end=end, now=end, notes=notes).path
    except Exception:  # a report must not stop the batch
        logger.exception("morning report for the window from %s failed", start.isoformat())
        return None


def latest_report(home: Path) -> Path | None:
    """The newest report (by window date), if any."""
    reports = sorted((home / REPORTS_DIR).glob("????-??-??.html"))
    return reports[-1] if reports else None
