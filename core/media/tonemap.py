"""HDR10 (PQ, BT.2020) to SDR (BT.709) that keeps hues: the ``zscale,tonemap=hable`` chain.

PyAV's FFmpeg has ``tonemap`` but no ``zscale`` to bring PQ to linear light, and swscale's
own perceptual intent turns a deep-blue sky magenta (issue #21 item 3). So the chain
FFmpeg users run with a full build is computed here, once per video, as a 3D lookup table
that libavfilter's ``lut3d`` applies to the R'G'B' picture (in C, tetrahedral):

1. PQ (SMPTE ST 2084) to linear light, 1.0 = 100 nits (``zscale=t=linear:npl=100``);
2. BT.2020 to BT.709 primaries in linear light (``zscale=p=bt709``);
3. ``tonemap=hable`` with its defaults: desaturate above ``desat`` (2.0), then Hable's
   curve on the brightest component, scaled by the same factor on all three, so a hue is
   never bent; the signal peak from the frame's content light level or mastering display,
   else 1,000 nits, as FFmpeg reads it in that chain;
4. BT.709 code values (``zscale=t=bt709``: zimg encodes display light with BT.1886's
   inverse, gamma 2.4), clipped to 0..1.

PQ code values are close to perceptually uniform, so a 33-point table in that domain is
within a level or two of the exact chain. HLG is left to swscale, which maps it right.
"""

from __future__ import annotations

import functools
import os
import struct
import tempfile
from pathlib import Path

REFERENCE_WHITE = 100.0
"""Nits that linear 1.0 stands for (zscale's ``npl=100``, FFmpeg's REFERENCE_WHITE)."""
DESAT = 2.0
"""``tonemap``'s default desaturation strength."""
CUBE_SIZE = 33
UNTAGGED_PEAK_NITS = 1000.0
"""The peak without metadata: in the zscale chain the frame reaching ``tonemap`` is tagged
linear, and for a transfer other than PQ FFmpeg assumes 1,000 nits."""

_M1, _M2 = 2610 / 16384, 2523 / 4096 * 128
_C1, _C2, _C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
BT2020_TO_BT709 = ((1.6604910, -0.5876411, -0.0728499),
                   (-0.1245505, 1.1328999, -0.0083494),
                   (-0.0181508, -0.1005789, 1.1187297))
"""Linear-light primaries conversion (ITU-R BT.2087)."""
_LUMA = (0.2627, 0.6780, 0.0593)
"""BT.2020 luma weights: ``tonemap`` desaturates with the frame's own matrix, and after
``zscale=p=bt709`` the frame still says BT.2020."""


def pq_to_linear(code: float) -> float:
    """SMPTE ST 2084 EOTF: a code value 0..1 to linear light, 1.0 = 100 nits."""
    power = min(max(code, 0.0), 1.0) ** (1 / _M2)
    nits = 10000.0 * (max(power - _C1, 0.0) / (_C2 - _C3 * power)) ** (1 / _M1)
    return nits / REFERENCE_WHITE


def hable(x: float) -> float:
    """John Hable's filmic curve (Uncharted 2), as FFmpeg's ``tonemap`` has it."""
    a, b, c, d, e, f = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
    return (x * (x * a + b * c) + d * e) / (x * (x * a + b) + d * f) - e / f


def bt709_encode(linear: float) -> float:
    """Linear light to BT.709 code values, clipped to 0..1, as zimg does for display
    light: the inverse of the BT.1886 display curve (gamma 2.4), not the camera OETF."""
    return min(max(linear, 0.0), 1.0) ** (1 / 2.4)


def tone_map(red: float, green: float, blue: float, peak: float) -> tuple[float, float, float]:
    """PQ BT.2020 R'G'B' in 0..1 to BT.709 R'G'B' in 0..1 (the whole chain).

    ``peak`` is the signal peak in units of 100 nits (10.0 for 1000 nits).
    """
    source = [pq_to_linear(red), pq_to_linear(green), pq_to_linear(blue)]
    rgb = [sum(m * v for m, v in zip(row, source, strict=True)) for row in BT2020_TO_BT709]
    if DESAT > 0:
        luma = sum(w * v for w, v in zip(_LUMA, rgb, strict=True))
        over = max(luma - DESAT, 1e-6) / max(luma, 1e-6)
        rgb = [v * (1 - over) + luma * over for v in rgb]
    signal = max(max(rgb), 1e-6)
    scale = hable(signal) / hable(peak) / signal
    return bt709_encode(rgb[0] * scale), bt709_encode(rgb[1] * scale), bt709_encode(rgb[2] * scale)


def signal_peak(frame) -> float:
    """The peak FFmpeg's ``tonemap`` assumes for ``frame``: its content light level
    (MaxCLL), else its mastering display's maximum, else :data:`UNTAGGED_PEAK_NITS`;
    in 100-nit units."""
    try:
        side_data = list(frame.side_data)
    except ValueError:  # a side-data type PyAV cannot name (spatial video): no metadata
        side_data = []
    found = {data.type.name: bytes(data) for data in side_data}
    light = found.get("CONTENT_LIGHT_LEVEL", b"")
    if len(light) >= 4 and struct.unpack("<I", light[:4])[0]:
        return struct.unpack("<I", light[:4])[0] / REFERENCE_WHITE
    display = found.get("MASTERING_DISPLAY_METADATA", b"")
    if len(display) >= 88:  # AVRational primaries[3][2], white[2], min, max; has_* flags
        num, den = struct.unpack("<ii", display[72:80])
        has_luminance = struct.unpack("<i", display[84:88])[0]
        if has_luminance and den and num > 0:
            return num / den / REFERENCE_WHITE
    return UNTAGGED_PEAK_NITS / REFERENCE_WHITE


@functools.lru_cache(maxsize=4)
def cube_text(peak: float, size: int = CUBE_SIZE) -> str:
    """The chain for ``peak`` as an Adobe ``.cube`` 3D table (red varies fastest).

    :func:`tone_map` unrolled over the grid (a fifth of a second instead of one).
    """
    linear = [pq_to_linear(i / (size - 1)) for i in range(size)]
    # What one source channel at each grid level adds to each BT.709 channel.
    red_in, green_in, blue_in = (
        [tuple(row[channel] * value for row in BT2020_TO_BT709) for value in linear]
        for channel in range(3))
    w_r, w_g, w_b = _LUMA
    white = hable(peak)
    lines = [f"LUT_3D_SIZE {size}", "DOMAIN_MIN 0 0 0", "DOMAIN_MAX 1 1 1"]
    append = lines.append
    for b0, b1, b2 in blue_in:
        for g0, g1, g2 in green_in:
            s0, s1, s2 = g0 + b0, g1 + b1, g2 + b2
            for r0, r1, r2 in red_in:
                x, y, z = r0 + s0, r1 + s1, r2 + s2
                luma = w_r * x + w_g * y + w_b * z
                if luma > DESAT:
                    over = (luma - DESAT) / luma
                    x, y, z = (x + (luma - x) * over, y + (luma - y) * over,
                               z + (luma - z) * over)
                signal = max(x, y, z, 1e-6)
                scale = hable(signal) / white / signal
                append(f"{bt709_encode(x * scale):.6f} {bt709_encode(y * scale):.6f} "
                       f"{bt709_encode(z * scale):.6f}")
    return "\n".join(lines) + "\n"


def write_cube(peak: float, folder: Path) -> Path:
    """:func:`cube_text` for ``peak`` written to a file in ``folder`` (``lut3d`` reads one)."""
    handle, name = tempfile.mkstemp(prefix="tonemap-", suffix=".cube", dir=folder)
    with os.fdopen(handle, "w") as out:
        out.write(cube_text(round(peak, 3)))
    return Path(name)
