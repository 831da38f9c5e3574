"""The morning report as one HTML page: inline CSS, thumbnails as data URIs, no scripts.

Every string that came from a user or the outside world (upload names, error
messages, worker names) goes through :func:`html.escape`; nothing is linked, so the
file can be mailed or archived as it is.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.naming import fmt_clock
from core.results.report_data import ReportData, UploadLine

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
margin:0;padding:24px 32px;color:#1d1d1f;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.meta{color:#666;margin:0 0 18px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:10px 16px;min-width:150px}
.card b{display:block;font-size:24px}.card span{color:#666;font-size:12px}
.card.bad b{color:#b3261e}.card.warn b{color:#8a5a00}.card.ok b{color:#1b6e3a}
table{border-collapse:collapse;background:#fff;border:1px solid #dde1e6;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eceef1;vertical-align:top}
th{background:#f0f2f5;font-weight:600;font-size:12px;color:#444}
td.num,th.num{text-align:right;white-space:nowrap}
.upload{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:10px 14px;
margin:10px 0}
.upload h3{font-size:14px;margin:0 0 6px;word-break:break-all}
.upload .facts{color:#555;font-size:12px;margin-bottom:8px}
.strip{display:flex;flex-wrap:wrap;gap:6px}
.strip figure{margin:0;text-align:center;font-size:11px;color:#555}
.strip img{display:block;height:72px;border-radius:3px;background:#ddd}
.tag{display:inline-block;padding:0 6px;border-radius:4px;font-size:12px;font-weight:600}
.tag.done{background:#dcf2e3;color:#1b6e3a}.tag.failed{background:#fbe0de;color:#b3261e}
.err{color:#b3261e}.muted{color:#777}
"""


def e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _mb(kib: int | None) -> str:
    return "-" if not kib else f"{kib / 1024:.0f} MB"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class _Clock:
    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)

    def at(self, moment: datetime | float | None, fmt: str = "%a %Y-%m-%d %H:%M") -> str:
        if moment is None:
            return "-"
        if not isinstance(moment, datetime):
            moment = datetime.fromtimestamp(moment, self.tz)
        return moment.astimezone(self.tz).strftime(fmt)


def _card(value: Any, label: str, tone: str = "") -> str:
    return f'<div class="card {tone}"><b>{e(value)}</b><span>{e(label)}</span></div>'


def _cards(data: ReportData) -> str:
    budget = data.rekognition_budget
    periods = data.rekognition_periods
    spent = max(periods.values(), default=0)  # the busiest budget period of the window
    if not data.rekognition_enabled and not spent and not data.rekognition_calls:
        rek = _card("off", "Rekognition (local analysis only)")
    elif budget:
        rek = _card(f"{spent} / {budget}", "Rekognition calls / daily budget",
                    "bad" if spent >= budget else "")
    else:
        rek = _card(sum(periods.values()), "Rekognition calls (no budget set)")
    peak = data.peak_kib
    tone = "" if peak is None or peak <= data.soft_limit_kib else \
        "warn" if peak <= data.hard_limit_kib else "bad"
    return "".join([
        _card(len(data.processed), "processed", "ok" if data.processed else ""),
        _card(len(data.failed), "failed", "bad" if data.failed else ""),
        _card(len(data.deferred), "still deferred", "warn" if data.deferred else ""),
        rek,
        _card(_mb(peak), f"peak memory (soft limit {_mb(data.soft_limit_kib)}, "
                         f"hard {_mb(data.hard_limit_kib)})", tone),
        _card(len(data.memory_restarts),
              f"memory restarts ({_count(len(data.restarts), 'restart')} in all)",
              "bad" if data.memory_restarts else ""),
    ])


def _upload_block(line: UploadLine) -> str:
    facts = [f"upload {line.id}", line.mode, f"{line.frames} frames"]
    if line.duration:
        facts.append(f"video {_secs(line.duration)}")
    facts += [f"took {_secs(line.seconds)}", f"peak {_mb(line.peak_kib)}"]
    if line.rekognition_calls:
        facts.append(f"{line.rekognition_calls} Rekognition calls")
    if line.selection:
        facts.append(f"frames: {line.selection}")
    if line.vfr:
        facts.append("variable frame rate")
    tag = f'<span class="tag {e(line.outcome)}">{e(line.outcome.upper())}</span>'
    error = (f'<div class="err">[{e(line.category)}] {e(line.message)}</div>'
             if line.outcome == "failed" else "")
    figures = "".join(
        f'<figure><img src="{t.data_uri}" alt="frame {t.frame_index}">'
        f'<figcaption>{e(fmt_clock(t.timestamp))}'
        f'{"<br><small>" + e(t.facts) + "</small>" if t.facts else ""}</figcaption></figure>'
        for t in line.thumbs)
    strip = f'<div class="strip">{figures}</div>' if figures else \
        '<div class="muted">no frames</div>'
    return (f'<div class="upload"><h3>{tag} {e(line.name)}</h3>'
            f'<div class="facts">{e(" · ".join(facts))}</div>{error}{strip}</div>')


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f'<th class="num">{e(h)}</th>' if i in numeric else f"<th>{e(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(data: ReportData) -> str:
    clock = _Clock(data.timezone)
    span = f"{clock.at(data.start)} to {clock.at(data.end)} ({data.timezone})"
    if data.kind == "period":
        title = f"Report: {span}"
        covers = (f"Covers {span}: every upload, on demand or off-peak, whose last attempt "
                  "ended in that period.")
    else:
        title = f"Morning report: off-peak window {span}"
        covers = (f"Covers the off-peak window {span}; uploads processed on demand at other "
                  "times are in `peakops report --since`.")
    parts = [f"<h1>{e(title)}</h1>",
             f'<p class="meta">{e(covers)} Made {e(clock.at(data.now, "%Y-%m-%d %H:%M:%S"))}. '
             "Uploads count as processed or failed by how their last attempt in the period "
             "ended; &ldquo;still deferred&rdquo; is as of when this report was made.</p>",
             f'<div class="cards">{_cards(data)}</div>']
    if data.failed:
        parts.append("<h2>Failed, by category</h2>")
        parts.append(_table(["Category", "Uploads"],
                            [[e(c), str(n)] for c, n in data.failed_by_category.items()], {1}))
    finished = data.failed + data.processed
    parts.append(f"<h2>Uploads that finished ({len(finished)})</h2>")
    parts += [_upload_block(line) for line in finished] or \
        ['<p class="muted">Nothing finished in this period.</p>']
    parts.append(f"<h2>Still deferred ({len(data.deferred)})</h2>")
    if data.deferred:
        parts.append(_table(
            ["ID", "Name", "Submitted", "Video", "Why it waits"],
            [[str(d.id), e(d.name), e(clock.at(d.submitted_at)), e(_secs(d.duration)),
              e(d.message)] for d in data.deferred], {0, 3}))
    else:
        parts.append('<p class="muted">Nothing waits for the next window.</p>')
    parts.append("<h2>Memory and restarts</h2>")
    retries = (f"{_count(data.retries, 'retry', 'retries')} in the period, "
               f"{data.memory_retries} after a memory kill (at a lower degrade level).")
    parts.append(f"<p>{e(retries)}</p>")
    if data.restarts:
        parts.append(_table(
            ["When", "Cause", "Upload", "Memory", "Worker", "What happened"],
            [[e(clock.at(r["at"], "%a %H:%M:%S")), e(r["cause"]),
              e(r["upload_id"] if r["upload_id"] is not None else "-"), e(_mb(r["rss_kib"])),
              e(r["worker"]), e(r["message"])] for r in data.restarts], {3}))
    else:
        parts.append('<p class="muted">No job-child restarts.</p>')
    if data.rekognition_enabled or any(data.rekognition_periods.values()):
        budget = data.rekognition_budget or "no limit"
        parts.append("<h2>Rekognition</h2>")
        parts.append(_table(["Budget period (noon to noon)", "Calls", "Budget"],
                            [[e(p), str(n), e(budget)]
                             for p, n in data.rekognition_periods.items()], {1, 2}))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{e(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
