"""A decoded frame as a person sees it: one libavfilter graph per video.

``scale`` does the work of colour and shape in one pass: the stream's own matrix and
range (unspecified: BT.709 for HD, BT.601 for SD, as players assume), square pixels
(the sample aspect ratio applied), the size cap, and for HLG a perceptual tone map to
BT.709 SDR (FFmpeg 8's swscale colour management). PQ (HDR10) goes through
:mod:`core.media.tonemap`'s ``zscale,tonemap=hable`` table instead (``lut3d``): swscale's
perceptual intent turns deep blue magenta. ``transpose``/``hflip``/``vflip`` then apply
the display matrix.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import av
import av.filter
from PIL import Image

from core.media.facts import ProbeResult
from core.media.orientation import transform_ops
from core.media.tonemap import signal_peak, write_cube

_SCALE_MATRIX = {"bt709": "bt709", "fcc": "fcc", "bt470bg": "bt470", "smpte170m": "smpte170m",
                 "smpte240m": "smpte240m", "bt2020nc": "bt2020", "bt2020c": "bt2020"}


def output_size(facts: ProbeResult, width: int, height: int, max_width: int) -> tuple[int, int]:
    """Size before rotation for a ``width`` x ``height`` frame: square pixels, capped width.

    The cap applies to the width as displayed (after rotation); never scaled up.
    """
    num, den = (int(x) for x in (facts.sar or "1:1").split(":"))
    square_w = max(1, round(width * num / den)) if num > 0 and den > 0 else width
    shown_w = height if facts.rotation in (90, 270) else square_w
    factor = min(1.0, max_width / shown_w)
    return max(1, round(square_w * factor)), max(1, round(height * factor))


def scale_args(facts: ProbeResult, frame: av.VideoFrame, size: tuple[int, int]) -> str:
    """The ``scale`` filter's arguments for this video's colours and the wanted size."""
    matrix = _SCALE_MATRIX.get(facts.color_matrix)
    if matrix is None:
        matrix = "bt709" if frame.height >= 720 else "bt601"
    full = facts.color_range == "pc" or frame.format.name.startswith("yuvj")
    args = [f"w={size[0]}", f"h={size[1]}", "flags=area",
            f"in_color_matrix={matrix}", f"in_range={'full' if full else 'limited'}",
            "out_color_matrix=bt709", "out_range=full"]
    if facts.color_transfer == "smpte2084":  # R'G'B' as coded: the table does the rest
        return ":".join(args)
    if facts.hdr:
        args += [f"in_transfer={facts.color_transfer}", "out_transfer=bt709",
                 "out_primaries=bt709", "intent=perceptual"]
        if facts.color_primaries not in ("", "unknown"):
            args.append(f"in_primaries={facts.color_primaries}")
    return ":".join(args)


class Picture:
    """Turns decoded frames of one video into upright, square-pixel, SDR RGB images."""

    def __init__(self, facts: ProbeResult, max_width: int) -> None:
        self.facts = facts
        self.max_width = max_width
        self._graph: av.filter.Graph | None = None
        self._shape: tuple | None = None

    def image(self, frame: av.VideoFrame) -> Image.Image:
        shape = (frame.width, frame.height, frame.format.name)
        if self._graph is None or shape != self._shape:  # built once; again if the size changes
            self._graph, self._shape = self._build(frame), shape
        self._graph.push(frame)
        out = self._graph.pull()
        # Read from the filter's buffer once (``to_image`` copies it to bytes, then into
        # Pillow: at the moment of the write, one picture more).
        plane = out.planes[0]
        return Image.frombuffer("RGB", (out.width, out.height), plane, "raw", "RGB",
                                plane.line_size, 1)

    def _build(self, frame: av.VideoFrame) -> av.filter.Graph:
        graph = av.filter.Graph()
        size = output_size(self.facts, frame.width, frame.height, self.max_width)
        steps = [graph.add_buffer(width=frame.width, height=frame.height,
                                  format=frame.format.name, time_base=frame.time_base)]
        steps.append(graph.add("scale", scale_args(self.facts, frame, size)))
        if self.facts.color_transfer == "smpte2084":
            steps += [graph.add("format", "rgb48le"), _tone_map_filter(graph, frame)]
        steps.append(graph.add("format", "rgb24"))
        ops, _ = transform_ops(self.facts.display_matrix, self.facts.rotation)
        for op in ops:
            name, _, args = op.partition("=")
            steps.append(graph.add(name, args or None))
        steps.append(graph.add("buffersink"))
        for upstream, downstream in zip(steps, steps[1:], strict=False):
            upstream.link_to(downstream)
        graph.configure()
        return graph


def _tone_map_filter(graph: av.filter.Graph, frame: av.VideoFrame) -> av.filter.context.FilterContext:
    """``lut3d`` with :mod:`core.media.tonemap`'s table for this video's signal peak."""
    with tempfile.TemporaryDirectory(prefix="peakops-tonemap-") as folder:
        cube = write_cube(signal_peak(frame), Path(folder))
        escaped = "".join("\\" + c if c in "\\:'" else c for c in str(cube))
        return graph.add("lut3d", f"file={escaped}:interp=tetrahedral")  # read now, at init
