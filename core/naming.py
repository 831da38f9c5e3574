"""Names people read: folder and file names made from user input, and frame times.

An upload's name is whatever file name the operator's video had, so it is never used
raw as a path: :func:`safe_name` keeps what is readable and drops what could escape a
folder or confuse a terminal (path separators, ``..``, control and bidi characters,
names Windows reserves).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePath

from pathvalidate import sanitize_filename

MAX_NAME_CHARS = 80


def safe_name(name: str, *, fallback: str, keep_suffix: bool = False) -> str:
    """A file or folder name from user text: one path component, never hidden or empty.

    ``keep_suffix`` False drops the extension (``pier 3.mp4`` -> ``pier 3``), so a
    folder named after a video does not look like a video. ``fallback`` is used when
    nothing readable is left.
    """
    text = unicodedata.normalize("NFC", name or "")
    # Control, format (bidi overrides), surrogate and unassigned characters go first;
    # separators become "_" so "a/b" stays two readable words.
    text = "".join("_" if ch in "/\\" else ch for ch in text
                   if not unicodedata.category(ch).startswith("C"))
    text = re.sub(r"\.{2,}", ".", text)
    if not keep_suffix:
        suffix = PurePath(text).suffix
        if suffix and len(suffix) <= 6 and len(text) > len(suffix):
            text = text[: -len(suffix)]
    # No hidden files, no "." or "..", no trailing dot or space (Windows drops them).
    text = sanitize_filename(text.strip(" ._"), platform="universal", replacement_text="_",
                             max_len=MAX_NAME_CHARS).strip(" .")
    return text or fallback


def unique_names(names: dict[int, str], *, fallback: str = "upload-{id}") -> dict[int, str]:
    """Safe, distinct folder names for ``{upload id: name}``, in id order.

    Two uploads of ``clip.mp4`` become ``clip`` and ``clip (id 7)``; names compare
    case-insensitively because Windows and macOS folders do.
    """
    taken: set[str] = set()
    result: dict[int, str] = {}
    for upload_id in sorted(names):
        name = safe_name(names[upload_id], fallback=fallback.format(id=upload_id))
        if name.casefold() in taken:
            name = f"{name} (id {upload_id})"
        taken.add(name.casefold())
        result[upload_id] = name
    return result


def fmt_clock(seconds: float, sep: str = ":") -> str:
    """A frame time as ``HH:MM:SS.mmm`` (``sep`` "-" for file names)."""
    millis = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}{sep}{minutes:02d}{sep}{secs:02d}.{millis:03d}"


def fmt_timing(duration: float | None, fps: float | None, frame_count: int | None) -> str:
    """A video's length and rate as people read them: ``12.0 s, 29.97 fps``; a single
    picture is ``a single frame``, and an unknown figure is left out, never shown as 0."""
    if frame_count == 1:
        return "a single frame"
    parts = [f"{duration:.1f} s" if duration else "length unknown"]
    if fps:
        parts.append(f"{fps:g} fps")
    return ", ".join(parts)
