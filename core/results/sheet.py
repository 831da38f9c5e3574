"""Contact sheet: one JPEG grid of an upload's frames, each with its time and top labels.

An inspector would rather look at one picture than read twenty rows. Frames are read
through the object store one at a time (local folder or S3) and shrunk as they are
pasted, so memory stays at one frame plus the sheet.
"""

from __future__ import annotations

import math
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from core.app import App
from core.errors import StateError
from core.naming import fmt_clock, safe_name
from core.store import queries

BACKGROUND = (250, 250, 250)
INK = (20, 20, 20)
MUTED = (95, 95, 95)
FRAME_BG = (225, 225, 225)
PAD = 12
CAPTION_LINES = 2
FONT_FILES = ("DejaVuSans.ttf", "Arial.ttf", "arial.ttf", "Helvetica.ttc")


@dataclass(frozen=True)
class Cell:
    """Where one frame landed: ``box`` is its picture (left, top, right, bottom)."""

    frame_index: int
    timestamp: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class ContactSheet:
    path: Path
    width: int
    height: int
    cells: list[Cell]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font with wide Unicode coverage when the system has one, else Pillow's own."""
    for name in FONT_FILES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def printable(text: str) -> str:
    """User text for drawing: control and bidi-override characters dropped."""
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def layout(count: int) -> tuple[int, int]:
    """(columns, cell width in px) for ``count`` frames: 4 wide up to 24 frames, then
    wider and smaller so a long upload still fits one JPEG (at most 65535 px a side)."""
    if count <= 24:
        return max(1, min(4, count)), 320
    columns = min(12, math.ceil(math.sqrt(count)))
    return columns, max(160, 1440 // columns)


def make_sheet(app: App, upload_id: int, dest: Path, *, top_labels: int = 3,
               quality: int = 85) -> ContactSheet:
    """Write the contact sheet of ``upload_id`` to ``dest`` (JPEG); raise if no frames."""
    detail = queries.detail(app.db, upload_id)
    upload, frames = detail.upload, detail.frames
    if not frames:
        raise StateError(f"upload {upload_id} has no frames yet (status {upload['status']})",
                         upload_id=upload_id)
    columns, cell_w = layout(len(frames))
    first = frames[0]
    aspect = (first["height"] or 9) / (first["width"] or 16)
    pic_h = round(cell_w * min(max(aspect, 0.3), 1.8))
    small, title_font = _font(13 if cell_w >= 240 else 11), _font(22)
    line_h = small.getbbox("Ag")[3] + 4
    cell_h = pic_h + 6 + line_h * (1 + CAPTION_LINES) + PAD
    title_h = 22 + 8 + line_h + PAD * 2
    rows = math.ceil(len(frames) / columns)
    width = PAD + columns * (cell_w + PAD)
    height = title_h + rows * cell_h + PAD
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    name = printable(upload["original_name"]) or f"upload {upload_id}"
    draw.text((PAD, PAD), _fit(draw, name, title_font, width - 2 * PAD), fill=INK,
              font=title_font)
    facts = [f"upload {upload_id}", upload["status"], f"{len(frames)} frames"]
    if upload["width"]:
        facts.append(f"{upload['width']}x{upload['height']}")
    if upload["duration"]:
        facts.append(f"{upload['duration']:.1f} s")
    draw.text((PAD, PAD + 30), _fit(draw, " · ".join(facts), small, width - 2 * PAD),
              fill=MUTED, font=small)
    cells = []
    with tempfile.TemporaryDirectory(prefix="sheet-", dir=app.settings.tmp_dir) as scratch:
        for n, frame in enumerate(frames):
            left = PAD + (n % columns) * (cell_w + PAD)
            top = title_h + (n // columns) * cell_h
            draw.rectangle((left, top, left + cell_w - 1, top + pic_h - 1), fill=FRAME_BG)
            local = Path(scratch) / f"{frame['idx']:04d}.jpg"
            app.store.get_file(frame["storage_key"], local)
            with Image.open(local) as image:
                image.draft("RGB", (cell_w, pic_h))  # JPEG: decode at about the size needed
                picture = image.convert("RGB")
            local.unlink()
            picture = ImageOps.contain(picture, (cell_w, pic_h), Image.Resampling.LANCZOS)
            x = left + (cell_w - picture.width) // 2
            y = top + (pic_h - picture.height) // 2
            sheet.paste(picture, (x, y))
            cells.append(Cell(frame["idx"], frame["timestamp"],
                              (x, y, x + picture.width, y + picture.height)))
            text_y = top + pic_h + 6
            draw.text((left, text_y), f"{fmt_clock(frame['timestamp'])}   #{frame['idx']}",
                      fill=INK, font=small)
            labels = [f"{printable(lb['name'])} {lb['confidence']:.0f}%"
                      for lb in frame["labels"][:top_labels]]
            for line in _wrap(draw, labels, small, cell_w)[:CAPTION_LINES]:
                text_y += line_h
                draw.text((left, text_y), line, fill=MUTED, font=small)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dest, "JPEG", quality=quality, optimize=True)
    return ContactSheet(dest, width, height, cells)


def _wrap(draw: ImageDraw.ImageDraw, items: list[str], font: Any, width: int) -> list[str]:
    """``items`` joined by commas into lines no wider than ``width`` (long ones cut)."""
    lines: list[str] = []
    for item in items:
        joined = f"{lines[-1]}, {item}" if lines else item
        if lines and draw.textlength(joined, font=font) <= width:
            lines[-1] = joined
        else:
            lines.append(_fit(draw, item, font, width))
    return lines


def default_sheet_path(app: App, upload_id: int) -> Path:
    """``<home>/sheets/<upload-name> (id N).jpg``: readable, and one per upload."""
    row = queries.get_upload(app.db, upload_id)
    name = safe_name(row["original_name"], fallback="upload")
    return app.settings.home / "sheets" / f"{name} (id {upload_id}).jpg"
