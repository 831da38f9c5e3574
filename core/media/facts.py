"""What a probe records about a video, and which containers count as videos."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

VIDEO_FORMATS: tuple[str, ...] = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",   # the mov/mp4 family (one demuxer)
    "matroska", "webm", "avi", "mpegts", "mpeg", "flv", "asf", "gif",
    "h264", "hevc", "mpegvideo",  # raw elementary streams recorders write (they name no file)
)
"""Demuxers a video may come from. libav refuses any other before reading the header
(``format_whitelist``), so a playlist demuxer never gets to open the files it lists."""

RAW_FORMATS: frozenset[str] = frozenset({"h264", "hevc", "mpegvideo"})
"""Elementary streams without a container: their frames carry no times of their own."""

PLAYLIST_FORMATS: tuple[str, ...] = ("hls", "concat", "dash", "ffmetadata")

STILL_BRANDS: frozenset[str] = frozenset({
    "heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "mif2", "msf1", "avif", "avis",
    "avio",
})
"""ISO-BMFF brands of HEIF/AVIF image files: read by the mp4 demuxer, but still images."""

HDR_TRANSFERS: frozenset[str] = frozenset({"smpte2084", "arib-std-b67"})


@dataclass(frozen=True)
class ProbeResult:
    """Facts about a video, read from libav's structures (never from log text).

    Times are seconds. ``start`` is the video stream's first frame time on the file's
    clock; ``duration`` is the video stream's own span (first frame to the end of the
    last), not the container's. ``width``/``height`` are the display size: pixel aspect
    applied, then rotation.
    """

    duration: float | None
    width: int
    height: int
    codec: str
    fps: float | None
    rotation: int
    has_audio: bool
    container: str
    start: float = 0.0
    frames: int | None = None           # frame count (from the index, or counted/estimated)
    frames_exact: bool = False           # True when ``frames`` came from an index or a count
    coded_width: int = 0
    coded_height: int = 0
    sar: str = "1:1"
    flip: str = ""                       # "", "h", "v": a mirror the display matrix asks for
    display_matrix: tuple[int, ...] = ()
    pix_fmt: str = ""
    color_matrix: str = ""
    color_range: str = ""
    color_primaries: str = ""
    color_transfer: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def hdr(self) -> bool:
        return self.color_transfer in HDR_TRANSFERS

    def as_dict(self) -> dict:
        data = asdict(self)
        data["display_matrix"] = list(self.display_matrix)
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> ProbeResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["display_matrix"] = tuple(values.get("display_matrix") or ())
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> ProbeResult:
        return cls.from_dict(json.loads(text))
