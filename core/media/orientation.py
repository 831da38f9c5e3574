"""Which way up a picture is shown: libav's display matrix, read and turned into steps.

The same reading as ffmpeg's own autorotate (fftools): the angle from the matrix, then
the signs of its entries for the mirrors.
"""

from __future__ import annotations

import math
import struct

import av


def display_matrix(frame) -> tuple[int, ...]:
    try:
        side_data = list(frame.side_data)
    except ValueError:
        # PyAV wraps only the side-data types it knows; an MV-HEVC (spatial video) frame
        # carries a newer one ("29 is not a valid Type"). Its rotation is still readable.
        return rotation_matrix(frame.rotation)
    for data in side_data:
        if data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            raw = bytes(data)
            if len(raw) >= 36:
                return struct.unpack("<9i", raw[:36])
    return ()


def rotation_matrix(degrees: float) -> tuple[int, ...]:
    """The display matrix of a pure rotation by ``degrees`` counterclockwise (what
    ``av_display_rotation_get`` and PyAV's ``frame.rotation`` give); () for none."""
    if not degrees or math.isnan(degrees):
        return ()
    radians = math.radians(degrees)
    cos, sin = round(math.cos(radians) * 65536), round(math.sin(radians) * 65536)
    return (cos, -sin, 0, sin, cos, 0, 0, 0, 1 << 30)


def orientation(matrix: tuple[int, ...]) -> tuple[int, str]:
    """Clockwise rotation (0/90/180/270) and mirror ("", "h" or "v") from a display matrix.

    The same reading as ffmpeg's own autorotate (fftools): the angle from the matrix,
    then the signs of its entries for the mirrors.
    """
    if len(matrix) < 9:
        return 0, ""
    a, b, c, d = (v / 65536 for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
    scale_0, scale_1 = math.hypot(a, c), math.hypot(b, d)
    if not scale_0 or not scale_1:
        return 0, ""
    rotation = int(round(math.degrees(math.atan2(b / scale_1, a / scale_0)) / 90)) * 90 % 360
    return rotation, transform_ops(matrix, rotation)[1]


def transform_ops(matrix: tuple[int, ...], rotation: int) -> tuple[list[str], str]:
    """libavfilter steps that show the picture upright, and the mirror among them."""
    if len(matrix) < 9:
        return [], ""
    if rotation == 90:
        return (["transpose=cclock_flip"], "h") if matrix[3] > 0 else (["transpose=clock"], "")
    if rotation == 270:
        return (["transpose=clock_flip"], "h") if matrix[3] < 0 else (["transpose=cclock"], "")
    if rotation == 180:
        ops = [op for op, neg in (("hflip", matrix[0] < 0), ("vflip", matrix[4] < 0)) if neg]
        return ops, ("" if len(ops) != 1 else ops[0][0])
    return (["vflip"], "v") if matrix[4] < 0 else ([], "")
