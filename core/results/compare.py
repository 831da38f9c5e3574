"""Two frame-selection plans of one upload side by side, in one JPEG.

The frames are taken afresh from the stored video under each plan, in a child process
capped at the worker's hard memory limit (:mod:`core.media.plans_child`); nothing
recorded for the upload changes. Each half is a grid like the contact sheet's, its cells
captioned with the frame's time, its place in the stream, its focus score and why the
plan chose it, so a person can see which plan picked the sharper or the more varied
frames.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from core.app import App
from core.errors import InputError
from core.media.facts import ProbeResult
from core.media.plans_child import frames_in_child
from core.media.selection import SELECTIONS
from core.naming import fmt_clock, safe_name
from core.results.sheet import (
    BACKGROUND,
    FRAME_BG,
    INK,
    MUTED,
    PAD,
    Cell,
    ContactSheet,
    _fit,
    _font,
    layout,
    printable,
)
from core.store import queries

GAP = 36
"""Space between the two halves."""


def compare_sheet(app: App, upload_id: int, plans: tuple[str, str], dest: Path, *,
                  count: int | None = None, quality: int = 85) -> ContactSheet:
    """Write the two plans' frames of ``upload_id`` side by side to ``dest`` (JPEG)."""
    for plan in plans:
        if plan not in SELECTIONS:
            raise InputError(f"plan must be one of {', '.join(SELECTIONS)}, got {plan!r}")
    row = queries.get_upload(app.db, upload_id)
    if not row["storage_key"] or not row["probe"]:
        raise InputError(f"upload {upload_id} has no stored, probed video to take frames from",
                         upload_id=upload_id)
    count = count or app.settings.max_frames_per_video
    name = printable(row["original_name"]) or f"upload {upload_id}"
    with tempfile.TemporaryDirectory(prefix="compare-", dir=app.settings.tmp_dir) as scratch:
        folder = Path(scratch)
        video = folder / "video"
        app.store.get_file(row["storage_key"], video)
        facts = ProbeResult.from_json(row["probe"])
        halves = []
        for plan in plans:
            out = folder / plan
            out.mkdir()
            halves.append(frames_in_child(video, facts, plan, count, 640, out, name=name,
                                         hard_kib=app.settings.hard_memory_limit_kib))
        return _draw(name, upload_id, plans, halves, dest, quality)


def _draw(name: str, upload_id: int, plans: tuple[str, str], halves: list[list[dict]],
          dest: Path, quality: int) -> ContactSheet:
    most = max(1, *(len(h) for h in halves))
    columns, cell_w = layout(most)
    columns = min(columns, 4)
    cell_w = min(cell_w, 240)
    first = next((f for h in halves for f in h), None)
    aspect = 9 / 16
    if first is not None:
        with Image.open(first["path"]) as image:
            aspect = image.height / max(1, image.width)
    pic_h = round(cell_w * min(max(aspect, 0.3), 1.8))
    small, title_font, head_font = _font(11), _font(22), _font(16)
    line_h = small.getbbox("Ag")[3] + 4
    cell_h = pic_h + 6 + line_h * 2 + PAD
    half_w = columns * (cell_w + PAD) - PAD
    rows = -(-most // columns)
    top = PAD + 30 + line_h + PAD + 24 + PAD
    width = 2 * PAD + 2 * half_w + GAP
    height = top + rows * cell_h + PAD
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, PAD), _fit(draw, name, title_font, width - 2 * PAD), fill=INK,
              font=title_font)
    draw.text((PAD, PAD + 30), f"upload {upload_id} · frame selection compared: "
              f"{plans[0]} (left) and {plans[1]} (right)", fill=MUTED, font=small)
    cells = []
    for side, (plan, frames) in enumerate(zip(plans, halves, strict=True)):
        left0 = PAD + side * (half_w + GAP)
        focus = [f["focus"] for f in frames if f.get("focus") is not None]
        head = f"{plan}: {len(frames)} frames"
        if focus:
            head += f", mean focus {statistics.fmean(focus):.0f}, least {min(focus):.0f}"
        draw.text((left0, top - 24 - PAD // 2), head, fill=INK, font=head_font)
        for n, frame in enumerate(frames):
            left = left0 + (n % columns) * (cell_w + PAD)
            y0 = top + (n // columns) * cell_h
            draw.rectangle((left, y0, left + cell_w - 1, y0 + pic_h - 1), fill=FRAME_BG)
            with Image.open(frame["path"]) as image:
                picture = ImageOps.contain(image.convert("RGB"), (cell_w, pic_h),
                                           Image.Resampling.LANCZOS)
            x, y = left + (cell_w - picture.width) // 2, y0 + (pic_h - picture.height) // 2
            sheet.paste(picture, (x, y))
            cells.append(Cell(frame["slot"], frame["timestamp"],
                              (x, y, x + picture.width, y + picture.height)))
            key = " key" if frame.get("keyframe") else ""
            draw.text((left, y0 + pic_h + 6),
                      f"{fmt_clock(frame['timestamp'])}  #{frame['stream_frame']}{key}",
                      fill=INK, font=small)
            note = f"focus {frame['focus']:.0f} · {frame['reason']}"
            draw.text((left, y0 + pic_h + 6 + line_h), _fit(draw, note, small, cell_w),
                      fill=MUTED, font=small)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dest, "JPEG", quality=quality, optimize=True)
    return ContactSheet(dest, width, height, cells)


def default_compare_path(app: App, upload_id: int, plans: tuple[str, str]) -> Path:
    """``<home>/sheets/<upload-name> (id N) even vs sharpest.jpg``."""
    row = queries.get_upload(app.db, upload_id)
    name = safe_name(row["original_name"], fallback="upload")
    return app.settings.home / "sheets" / f"{name} (id {upload_id}) {plans[0]} vs {plans[1]}.jpg"
