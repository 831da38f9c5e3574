"""The learned start level: what each kind of video peaked at, level by level.

Every job records its peak with the video's kind (decoder, coded size, bit depth), the
degrade level and that level's settings (:func:`record`). A new job of a kind that went
over the hard limit at level 0 starts at the first level that fit (:func:`start_level`),
so no attempt is spent on a known memory kill; the upload's events say why ("started
at level 1: 4K AV1 peaked at 149 MB at level 0 on upload 12"). An operator clears what
was learned with ``peakops peaks --forget`` (:func:`clear`), e.g. after a PeakOps upgrade.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.media.facts import ProbeResult
from core.media.ladder import DEGRADE_LEVELS, LADDER

_CODECS = {"h264": "H.264", "hevc": "HEVC", "av1": "AV1", "vp9": "VP9", "vp8": "VP8",
           "mpeg4": "MPEG-4", "mpeg2video": "MPEG-2", "mjpeg": "MJPEG", "prores": "ProRes"}


def _bits(facts: ProbeResult) -> int:
    fmt = facts.pix_fmt
    for depth in (16, 14, 12, 10):
        if f"p{depth}" in fmt:
            return depth
    return 8


def kind_of(facts: ProbeResult) -> str:
    """What memory depends on: decoder, coded size, bit depth ("av1 3840x2160 8-bit")."""
    width = facts.coded_width or facts.width
    height = facts.coded_height or facts.height
    return f"{facts.codec} {width}x{height} {_bits(facts)}-bit"


def label(kind: str) -> str:
    """A person's name for a kind: "4K AV1", "1080p HEVC 10-bit"."""
    codec, size, bits = kind.split(" ")
    height = min(int(n) for n in size.split("x"))
    name = "8K" if height >= 4320 else "4K" if height >= 2160 else f"{height}p"
    depth = "" if bits == "8-bit" else f" {bits}"
    return f"{name} {_CODECS.get(codec, codec.upper())}{depth}"


def level_settings(level: int) -> str:
    step, options = LADDER[level]
    return json.dumps({"every": step, "max_width": options.max_width,
                       "threads": options.threads, "keyframes_only": options.keyframes_only},
                      sort_keys=True)


def record(db: Any, upload_id: int, facts: ProbeResult, *, level: int, peak_kib: int,
           over_limit: bool, now: float | None = None) -> None:
    """Record one job's peak for its kind and level."""
    db.execute(
        'INSERT INTO "memory_peaks" ("upload_id", "kind", "codec", "coded_width", '
        '"coded_height", "level", "settings", "peak_kib", "over_limit", "at") '
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [upload_id, kind_of(facts), facts.codec, facts.coded_width or facts.width,
         facts.coded_height or facts.height, level, level_settings(level), peak_kib,
         int(over_limit), db.now() if now is None else now])


@dataclass(frozen=True)
class StartLevel:
    level: int
    reason: str   # the event's message


def start_level(db: Any, facts: ProbeResult) -> StartLevel | None:
    """Where a new job of this kind starts, when its kind went over the limit at level 0."""
    kind = kind_of(facts)
    rows = list(db.execute(
        'SELECT "level", "peak_kib", "over_limit", "upload_id" FROM "memory_peaks" '
        'WHERE "kind" = ? ORDER BY "id"', [kind]).fetchall())
    over = [r for r in rows if r[2]]
    if not over or min(r[0] for r in over) > 0:
        return None
    fits = sorted(r[0] for r in rows if not r[2])
    worst = max(r[0] for r in over)
    above = [level for level in fits if level > 0]
    level = above[0] if above else min(worst + 1, DEGRADE_LEVELS - 1)
    # The evidence: the highest peak at the level just above the start (why not there).
    evidence = max((r for r in over if r[0] < level), key=lambda r: (r[0], r[1]))
    return StartLevel(level, f"started at level {level}: {label(kind)} peaked at "
                             f"{evidence[1] / 1024:.0f} MB at level {evidence[0]} on upload "
                             f"{evidence[3]}")


def learned(db: Any) -> list[dict[str, Any]]:
    """Per kind and level: jobs, highest peak, whether any went over (``peakops peaks``)."""
    cursor = db.execute(
        'SELECT "kind", "level", COUNT(*), MAX("peak_kib"), MAX("over_limit") '
        'FROM "memory_peaks" GROUP BY "kind", "level" ORDER BY "kind", "level"')
    return [{"kind": k, "label": label(k), "level": lv, "jobs": n, "peak_kib": p,
             "over_limit": bool(o)} for k, lv, n, p, o in cursor.fetchall()]


def clear(db: Any, kind: str | None = None) -> int:
    """Forget what was learned (of one kind); returns how many records went."""
    if kind is None:
        cursor = db.execute('DELETE FROM "memory_peaks"')
    else:
        cursor = db.execute('DELETE FROM "memory_peaks" WHERE "kind" = ?', [kind])
    return cursor.rowcount


def _facts(row: dict[str, Any]) -> ProbeResult | None:
    return ProbeResult.from_json(row["probe"]) if row.get("probe") else None


def begin(db: Any, row: dict[str, Any]) -> dict[str, Any]:
    """A claimed upload's row, moved to its learned start level when one applies."""
    facts = _facts(row)
    if facts is None or row.get("degrade_level"):
        return row
    start = start_level(db, facts)
    if start is None:
        return row
    from core.store.lifecycle import record_event

    db.execute('UPDATE "uploads" SET "degrade_level" = ? WHERE "id" = ?', [start.level, row["id"]])
    record_event(db, row["id"], "start-level", start.reason)
    return {**row, "degrade_level": start.level}


def note(db: Any, row: dict[str, Any], *, kind: str, ok: bool, peak_kib: int) -> None:
    """Record a finished job's peak: a success, or a kill at the hard limit."""
    facts = _facts(row)
    if facts is None or peak_kib <= 0 or not (ok or kind == "hard-limit"):
        return
    record(db, row["id"], facts, level=row.get("degrade_level") or 0, peak_kib=peak_kib,
           over_limit=kind == "hard-limit")
