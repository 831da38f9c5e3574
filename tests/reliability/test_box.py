"""The 160 MiB box for real (issue 22 item 4): a worker in a cgroup v1 memory group of
160 MiB with soft/hard 100000/125000 KiB, on short 4K H.264, 1080p H.264, 4K AV1, HEVC
10-bit HLG and 8K clips. The kernel never kills the worker; the kernel's kills of job
children at the hard limit are memory outcomes (degrade and retry), never crashes or
internal errors; H.264 up to 4K is DONE at level 0; the others DONE at some level or
FAILED with category memory.

Not yet met (issue 22, stated in the bench ``python -m bench.box``): 4K AV1 at level 0
(the job child peaks near 197 MB: dav1d holds up to 8 reference pictures of 12.4 MB, on
top of ~52 MB of Python, libav and sqlite_utils), so it is DONE at level 2 here."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.box import BOX_CLIPS, HARD_KIB, MOUNT, MemoryBox, run_box
from bench.codec_clips import ensure_clip
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def box_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    try:
        MemoryBox(1024 * 1024).close()
    except OSError as exc:
        pytest.skip(f"no cgroup v1 memory group can be created at {MOUNT}: {exc}")
    folder = tmp_path_factory.mktemp("box-clips")
    return {name: ensure_clip(name, 1, folder) for name in BOX_CLIPS}


def test_worker_in_a_160_mib_box(tmp_path: Path, box_clips: dict[str, Path]) -> None:
    home = tmp_path / "home"
    result = run_box(home, box_clips, {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "4"})
    assert result.worker_exit == 0, result.stderr[-3000:]
    assert result.enforcement == f"kernel (cgroup v1 memory.limit_in_bytes {HARD_KIB} KiB)"
    assert result.other_restarts == 0 and result.memory_kills >= 1, result.stderr[-3000:]
    for name in ("h264-4k", "h264-1080p"):
        row = result.uploads[name]
        assert (row["status"], row["degrade_level"]) == ("DONE", 0), (name, row)
    for name in ("av1-4k", "hevc10-hlg", "h264-8k"):
        row = result.uploads[name]
        assert row["status"] == "DONE" or (row["status"], row["error_category"]) == (
            "FAILED", "memory"), (name, row)
    eight_k = result.uploads["h264-8k"]
    assert eight_k["degrade_level"] > 0, eight_k  # 8K never fits at full quality
    # The worker says which enforcement it ran under.
    status = run_cli(home, "status", "--all", check=True).stdout
    assert f"hard limit enforced by kernel (cgroup v1 memory.limit_in_bytes {HARD_KIB} KiB)" \
        in status
