"""Hard memory limit on real processes: kill within a second, the degrade ladder, final state.

Figures measured with the PyAV engine (the tree is one process, the job child, libav
inside it; peak RSS recorded by the supervisor, 3 runs each, the other core busy):

- 4K with 8 reference frames: level 0 228 MB, level 1 217 MB, level 2 (keyframes only)
  81 MB;
- 160x120: 58-60 MB at every level (Python, SQLite, Pillow and libav loaded);
- plain 6K (5760x3240): level 0 158 MB, level 1 150 MB, level 2 143 MB. Levels 0 and 1
  differ only in output size (both decode large pictures with one thread), so no clip
  separates them by a wide margin any more; the ladder is proven through level 2.

One limit, 150 MB: the 4K clip is killed at levels 0 and 1 (67 MB over) and fits at
level 2 (69 MB under); the small clip fits at level 0 (90 MB under).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from core.media import ffmpeg_exe, samples
from tests.helpers import cli_json
from tests.reliability.support import (
    burst,
    check_invariants,
    db_dicts,
    submit,
    with_padding,
)

FRAMES = 4
ENV = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": str(FRAMES), "PEAKOPS_MAX_ATTEMPTS": "3",
       "PEAKOPS_MEMORY_CGROUP": "false"}  # the sampler's kills; the kernel's: test_box.py
KILL_RE = re.compile(r"hard limit (\d+) KiB crossed: sample ([\d.]+) (\d+) KiB over, previous "
                     r"sample ([\d.]+) (\d+) KiB; tree killed at ([\d.]+)")


@pytest.fixture(scope="module")
def clip_4k_refs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4K with 8 reference frames and one GOP: any frame but the first needs the decoder
    to hold many pictures (levels 0 and 1 ~220-230 MB), while level 2 decodes the
    keyframe alone (~81 MB)."""
    path = tmp_path_factory.mktemp("memory-refs") / "uhd-refs.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f",
                    "lavfi", "-i", "testsrc2=size=3840x2160:rate=25:duration=1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-g", "25", "-x264-params", "ref=8:bframes=0", str(path)],
                   stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=300)
    return path


@pytest.fixture(scope="module")
def clip_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("memory-small")
    return samples.make_clip(folder / "small.mp4", seconds=2, width=160, height=120)


def kills_in(log: str, limit: int) -> list[dict[str, float]]:
    found = []
    for match in KILL_RE.finditer(log):
        hard, over_at, over_kib, below_at, below_kib, killed_at = match.groups()
        assert int(hard) == limit and int(over_kib) > limit >= int(below_kib)
        found.append({"over_at": float(over_at), "below_at": float(below_at),
                      "killed_at": float(killed_at)})
    return found


def ladder(home: Path, upload_id: int) -> list[str]:
    return [e["message"].rsplit("(", 1)[-1].rstrip(")") for e in db_dicts(
        home, "SELECT message FROM events WHERE upload_id = ? AND kind = 'retry' ORDER BY id",
        [upload_id])]


def test_degrades_until_it_fits(tmp_path: Path, clip_4k_refs: Path, clip_small: Path) -> None:
    limit = 150_000
    home = tmp_path / "home"
    ids = submit(home, clip_4k_refs, clip_small, **ENV)
    expected = dict(zip(ids, (2, 0), strict=True))  # the level each one fits at
    proc = burst(home, PEAKOPS_HARD_MEMORY_LIMIT=str(limit),
                 PEAKOPS_MAX_MEMORY_PER_CHILD=str(limit), **ENV)
    check_invariants(home, max_frames=FRAMES)
    rows = {r["id"]: r for r in db_dicts(home, "SELECT * FROM uploads")}
    for upload_id, level in expected.items():
        row = rows[upload_id]
        assert (row["status"], row["degrade_level"], row["attempts"]) == (
            "DONE", level, level + 1), row
        assert ladder(home, upload_id) == [f"retrying, degrade level {n}"
                                           for n in range(1, level + 1)]
    # The worker lived on: the small clip, after the kills, was done at full quality.
    kills = kills_in(proc.stderr, limit)
    restarts = db_dicts(home, "SELECT * FROM restarts ORDER BY id")
    assert [(r["cause"], r["upload_id"]) for r in restarts] == [
        ("hard-limit", ids[0]), ("hard-limit", ids[0])]
    assert len(kills) == len(restarts)
    for kill, restart in zip(kills, restarts, strict=True):
        assert kill["killed_at"] - kill["below_at"] < 1.0, kill  # crossing -> tree dead
        assert restart["at"] - kill["below_at"] < 1.0 and restart["rss_kib"] > limit
    [worker] = db_dicts(home, "SELECT state, jobs_done, child_starts FROM workers")
    assert worker == {"state": "stopped", "jobs_done": 2, "child_starts": 3}


def test_over_the_limit_at_every_level_fails_with_the_figures(tmp_path: Path,
                                                              clip_small: Path) -> None:
    limit = 30_000  # below the job child's own ~58 MB: every level is killed
    home = tmp_path / "home"
    [upload_id] = submit(home, clip_small, **ENV)
    proc = burst(home, PEAKOPS_HARD_MEMORY_LIMIT=str(limit),
                 PEAKOPS_MAX_MEMORY_PER_CHILD=str(limit), **ENV)
    check_invariants(home, max_frames=FRAMES)
    [row] = db_dicts(home, "SELECT * FROM uploads")
    assert (row["status"], row["error_category"], row["degrade_level"]) == (
        "FAILED", "memory", 2)
    assert f"hard limit of {limit} KiB even at the lowest degrade level" in row["error_message"]
    assert ladder(home, upload_id) == ["retrying, degrade level 1", "retrying, degrade level 2"]
    kills = kills_in(proc.stderr, limit)
    assert len(kills) == 3 and all(k["killed_at"] - k["below_at"] < 1.0 for k in kills)
    worker = sqlite3.connect(home / "peakops.db").execute(
        "SELECT state, child_starts FROM workers").fetchone()
    assert worker == ("stopped", 3)


def test_a_kind_that_went_over_starts_at_the_level_that_fit(tmp_path: Path,
                                                            clip_4k_refs: Path) -> None:
    """Learned start level (issue 22 item 3): after one 4K clip degraded to level 2, the
    next of its kind starts there at its first attempt, and says why; `peaks --forget` clears it."""
    limit = 150_000
    home = tmp_path / "home"
    env = {**ENV, "PEAKOPS_HARD_MEMORY_LIMIT": str(limit),
           "PEAKOPS_MAX_MEMORY_PER_CHILD": str(limit)}
    [first] = submit(home, clip_4k_refs, **env)
    burst(home, **env)
    [second] = submit(home, with_padding(clip_4k_refs, tmp_path / "again.mp4", "again"), **env)
    burst(home, **env)
    rows = {r["id"]: r for r in db_dicts(home, "SELECT * FROM uploads")}
    assert (rows[first]["status"], rows[first]["degrade_level"], rows[first]["attempts"]) == (
        "DONE", 2, 3)
    assert (rows[second]["status"], rows[second]["degrade_level"],
            rows[second]["attempts"]) == ("DONE", 2, 1)
    peaks = db_dicts(home, "SELECT * FROM memory_peaks ORDER BY id")
    assert [(p["upload_id"], p["level"], p["over_limit"]) for p in peaks] == [
        (first, 0, 1), (first, 1, 1), (first, 2, 0), (second, 2, 0)]
    assert {p["kind"] for p in peaks} == {"h264 3840x2160 8-bit"}
    assert peaks[0]["peak_kib"] > limit and peaks[1]["peak_kib"] > limit
    shown = cli_json(home, "show", str(second))
    # The evidence is the level just above the start: why it does not start there.
    reason = (f"started at level 2: 4K H.264 peaked at {peaks[1]['peak_kib'] / 1024:.0f} MB "
              f"at level 1 on upload {first}")
    assert reason in [e["message"] for e in shown["events"] if e["kind"] == "start-level"]
    assert cli_json(home, "peaks")[0]["over_limit"] is True
    assert cli_json(home, "peaks", "--forget") == {"removed": 4}
    assert cli_json(home, "peaks") == []
