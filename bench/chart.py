"""A line chart of memory over time, drawn with Pillow (no plotting dependency)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLOURS = ((214, 39, 40), (31, 119, 180), (44, 160, 44), (148, 103, 189))


def _nice_step(span: float, ticks: int = 6) -> float:
    raw = span / ticks
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if step >= raw:
            return float(step)
    return raw


def memory_chart(series: dict[str, list[tuple[float, int]]], dest: Path, title: str,
                 limit_mb: float | None = None) -> Path:
    """``series``: label -> [(seconds, KiB)]; draws MB (1024 KiB) over seconds."""
    width, height = 1000, 540
    left, right, top, bottom = 80, 30, 60, 120
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    max_t = max((s[-1][0] for s in series.values() if s), default=1.0) or 1.0
    max_mb = max((kib / 1024 for s in series.values() for _, kib in s), default=1.0)
    max_mb = max(max_mb, limit_mb or 0) * 1.08
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(t: float, mb: float) -> tuple[float, float]:
        return left + plot_w * t / max_t, top + plot_h * (1 - mb / max_mb)

    draw.text((left, 18), title, fill="black", font=font)
    t_step, mb_step = _nice_step(max_t), _nice_step(max_mb)
    tick = 0.0
    while tick <= max_t + 1e-9:
        x, _ = xy(tick, 0)
        draw.line([(x, top), (x, top + plot_h)], fill=(230, 230, 230))
        draw.text((x - 8, top + plot_h + 6), f"{tick:g}", fill="black", font=small)
        tick += t_step
    tick = 0.0
    while tick <= max_mb + 1e-9:
        _, y = xy(0, tick)
        draw.line([(left, y), (left + plot_w, y)], fill=(230, 230, 230))
        draw.text((left - 50, y - 8), f"{tick:g}", fill="black", font=small)
        tick += mb_step
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="black")
    draw.text((left + plot_w / 2 - 60, top + plot_h + 26), "seconds since start",
              fill="black", font=small)
    draw.text((8, top - 22), "MB (process tree RSS)", fill="black", font=small)
    if limit_mb:
        _, y = xy(0, limit_mb)
        for x in range(left, left + plot_w, 12):
            draw.line([(x, y), (min(x + 6, left + plot_w), y)], fill=(120, 120, 120), width=1)
        draw.text((left + plot_w - 170, y - 18), f"target {limit_mb:g} MB", fill=(90, 90, 90),
                  font=small)
    for i, (label, samples) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = [xy(t, kib / 1024) for t, kib in samples]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        peak = max((kib for _, kib in samples), default=0) / 1024
        end = samples[-1][0] if samples else 0
        legend_y = top + plot_h + 46 + 19 * i
        legend_x = left
        draw.line([(legend_x, legend_y + 8), (legend_x + 30, legend_y + 8)], fill=colour, width=4)
        draw.text((legend_x + 38, legend_y), f"{label}: peak {peak:.0f} MB, {end:.1f} s",
                  fill="black", font=small)
    dest.parent.mkdir(parents=True, exist_ok=True)
    image.save(dest, optimize=True)
    return dest
