"""What an HEVC stream's picture parameter sets say about decoding in parallel.

An HEVC picture coded with wavefronts (``entropy_coding_sync_enabled_flag``: x265's default)
or tiles can be decoded by several threads *within* the picture (libavcodec's slice
threading), which costs no extra pictures; frame threading, libavcodec's choice otherwise,
keeps pictures of its own per thread. :func:`slice_parallel` reads the flags from the
``hvcC`` record (ISO/IEC 14496-15) that MP4/MOV carry as the decoder's extradata, whose
``parallelismType`` field encoders leave at 0 (unknown). Pure bytes, no libav.
"""

from __future__ import annotations

PPS_NAL = 34
_HVCC_HEADER = 22  # bytes before numOfArrays


def slice_parallel(extradata: bytes | None) -> bool:
    """True when every picture parameter set in ``extradata`` (an ``hvcC`` record) enables
    wavefronts or tiles; False when one does not, or when it cannot be read."""
    sets = list(_pps_units(extradata or b""))
    try:
        return bool(sets) and all(_wavefronts_or_tiles(_rbsp(nal[2:])) for nal in sets)
    except (IndexError, ValueError):  # a truncated or odd parameter set: do not guess
        return False


def _pps_units(record: bytes):
    """The PPS NAL units of an ``hvcC`` record (nothing for Annex B or anything else)."""
    if len(record) < _HVCC_HEADER + 1 or record[0] != 1:
        return
    at, arrays = _HVCC_HEADER + 1, record[_HVCC_HEADER]
    for _ in range(arrays):
        if at + 3 > len(record):
            return
        nal_type, count = record[at] & 0x3F, int.from_bytes(record[at + 1:at + 3], "big")
        at += 3
        for _ in range(count):
            size = int.from_bytes(record[at:at + 2], "big")
            unit = record[at + 2:at + 2 + size]
            at += 2 + size
            if nal_type == PPS_NAL and len(unit) == size > 2:
                yield unit


def _rbsp(payload: bytes) -> bytes:
    """The payload without its emulation-prevention bytes (00 00 03 -> 00 00)."""
    out, zeros = bytearray(), 0
    for byte in payload:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def bit(self) -> int:
        byte = self.data[self.at >> 3]  # IndexError past the end
        self.at += 1
        return (byte >> (7 - ((self.at - 1) & 7))) & 1

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise ValueError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _wavefronts_or_tiles(rbsp: bytes) -> bool:
    """H.265 7.3.2.3.1, up to ``entropy_coding_sync_enabled_flag``."""
    r = _Bits(rbsp)
    r.ue()        # pps_pic_parameter_set_id
    r.ue()        # pps_seq_parameter_set_id
    r.bits(2)     # dependent_slice_segments_enabled_flag, output_flag_present_flag
    r.bits(3)     # num_extra_slice_header_bits
    r.bits(2)     # sign_data_hiding_enabled_flag, cabac_init_present_flag
    r.ue()        # num_ref_idx_l0_default_active_minus1
    r.ue()        # num_ref_idx_l1_default_active_minus1
    r.se()        # init_qp_minus26
    r.bits(2)     # constrained_intra_pred_flag, transform_skip_enabled_flag
    if r.bit():   # cu_qp_delta_enabled_flag
        r.ue()    # diff_cu_qp_delta_depth
    r.se()        # pps_cb_qp_offset
    r.se()        # pps_cr_qp_offset
    r.bits(4)     # slice chroma qp offsets, weighted pred, weighted bipred, transquant bypass
    tiles, wavefronts = r.bit(), r.bit()
    return bool(tiles or wavefronts)
