"""ISO-BMFF (MP4/MOV) box headers, read where libav leaves a fact unnamed.

Two facts only, both for messages: whether the file's index (the ``moov`` box) is
whole, and the four-character code of the video track's sample entry when libav knows
no codec for it (a Dolby Vision AV1 ``dav1`` entry: ffmpeg calls its codec "none").
Only box headers are read, by seeking, so a large ``mdat`` is never read; nothing here
decides whether a file is accepted.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

ISO_TOP_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot",
                           b"uuid", b"moof", b"styp", b"sidx"})
_MAX_BOX_READ = 64 * 1024 * 1024
"""A ``moov`` larger than this is not read for its sample entries (messages only)."""

SAMPLE_ENTRY_NAMES = {
    "dav1": "Dolby Vision AV1", "dvav": "Dolby Vision H.264", "dva1": "Dolby Vision H.264",
    "dvh1": "Dolby Vision HEVC", "dvhe": "Dolby Vision HEVC", "vvc1": "H.266/VVC",
    "vvi1": "H.266/VVC", "apv1": "APV", "lhv1": "layered HEVC", "lhe1": "layered HEVC",
}
"""What a sample entry libav cannot decode is, in words."""


def _boxes(handle: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int, bool]]:
    """(type, payload offset, payload end, whole) for each box in ``[start, end)``."""
    at = start
    while at + 8 <= end:
        handle.seek(at)
        header = handle.read(16)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header[:8])
        payload = at + 8
        if size == 1:  # 64-bit size follows
            if len(header) < 16:
                yield kind, payload, end, False
                return
            size = struct.unpack(">Q", header[8:16])[0]
            payload = at + 16
        elif size == 0:  # to the end of the file
            size = end - at
        if size < payload - at:
            yield kind, payload, end, False
            return
        yield kind, payload, min(at + size, end), at + size <= end
        at += size


@contextlib.contextmanager
def opened(source) -> Iterator[BinaryIO]:
    """``source`` as a binary file: a path is opened, a reader (an S3 object read by range)
    is used through its own view when it has one."""
    if hasattr(source, "read"):
        yield source.view() if hasattr(source, "view") else source
        return
    with open(source, "rb") as handle:
        yield handle


def _is_iso(handle: BinaryIO, length: int) -> bool:
    first = next(_boxes(handle, 0, length), None)
    return first is not None and first[0] in ISO_TOP_BOXES


def index_state(path: Path) -> str | None:
    """``"missing"`` or ``"cut"`` when an MP4/MOV file's ``moov`` is not whole; else None.

    None also for files that are not ISO-BMFF (nothing to say about them here).
    """
    try:
        with opened(path) as handle:
            length = handle.seek(0, 2)
            if not _is_iso(handle, length):
                return None
            seen = set()
            for kind, _start, _end, whole in _boxes(handle, 0, length):
                if kind == b"moov":
                    return None if whole else "cut"
                seen.add(kind)
                if not whole:
                    break
    except OSError:
        return None
    return None if b"meta" in seen else "missing"  # HEIF/AVIF images keep theirs in 'meta'



def video_sample_entry(path: Path) -> str | None:
    """The four-character code of the first video track's sample entry (e.g. ``dav1``)."""
    try:
        with opened(path) as handle:
            length = handle.seek(0, 2)
            if not _is_iso(handle, length):
                return None
            for trak in _children(handle, 0, length, b"moov", b"trak"):
                if _handler(handle, *trak) != b"vide":
                    continue
                for stsd in _children(handle, *trak, b"mdia", b"minf", b"stbl", b"stsd"):
                    handle.seek(stsd[0] + 8)  # version, flags, entry count
                    entry = handle.read(8)
                    if len(entry) == 8:
                        return entry[4:8].decode("latin-1")
    except OSError:
        return None
    return None


def describe_entry(code: str) -> str:
    """``'dav1' (Dolby Vision AV1)``, or just the quoted code when it has no name here."""
    name = SAMPLE_ENTRY_NAMES.get(code)
    return f"'{code}' ({name})" if name else f"'{code}'"


def _children(handle: BinaryIO, start: int, end: int,
              *path: bytes) -> Iterator[tuple[int, int]]:
    """Payload ranges of the boxes at ``path`` below ``[start, end)``."""
    if not path:
        yield start, end
        return
    for kind, payload, stop, _whole in _boxes(handle, start, end):
        if kind == path[0] and stop - payload <= _MAX_BOX_READ:
            yield from _children(handle, payload, stop, *path[1:])


def _handler(handle: BinaryIO, start: int, end: int) -> bytes | None:
    for hdlr in _children(handle, start, end, b"mdia", b"hdlr"):
        handle.seek(hdlr[0] + 8)  # version, flags, pre_defined
        return handle.read(4)
    return None
