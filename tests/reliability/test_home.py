"""An unusable home folder is told in one line naming it and the cause, never a traceback.

Read-only and full homes are real size-limited tmpfs mounts (needs root), as in
test_disk_full.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.media import samples
from tests.helpers import REPO, cli_env, run_cli
from tests.reliability.test_disk_full import fill, remount, tmpfs


def one_line_failure(home: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO,
                          env=cli_env(home), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"peakops: home folder {home}: "), proc.stderr
    return proc.stderr.strip()


@pytest.mark.parametrize("command", [("list",), ("status",), ("worker", "--burst")])
def test_home_that_is_a_file(tmp_path, command):
    home = tmp_path / "passwd"
    home.write_text("root:x:0:0::/root:/bin/sh\n")
    assert one_line_failure(home, *command).endswith(f"{home} is a file, not a folder")


def test_home_below_a_file(tmp_path):
    blocker = tmp_path / "passwd"
    blocker.write_text("x")
    line = one_line_failure(blocker / "peakops", "list")
    assert line.endswith(f"{blocker} is a file, not a folder")


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs sysfs at /sys")
def test_home_under_sys(tmp_path):
    line = one_line_failure(Path("/sys/peakops-home"), "list")
    assert "no permission" in line or "cannot be created" in line


def test_read_only_home(tmp_path):
    home = tmp_path / "home"
    with tmpfs(home, "2m"):
        run_cli(home, "list", check=True)  # a database exists
        remount(home, "ro")
        try:
            assert "read-only" in one_line_failure(home, "cancel", "1")
        finally:
            remount(home, "rw")


def test_full_home_says_disk_full(tmp_path):
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=1, width=160, height=120)
    with tmpfs(home, "2m"):
        run_cli(home, "list", check=True)
        fill(home)
        for args in (("submit", str(clip)), ("cancel", "1")):
            line = one_line_failure(home, *args)
            assert "disk full" in line and "disk I/O error" not in line


@pytest.mark.parametrize("damage", ["emptied", "deleted"])
def test_database_lost_while_the_home_holds_objects_is_refused(tmp_path, damage):
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=1, width=160, height=120)
    run_cli(home, "submit", str(clip), check=True)
    db = home / "peakops.db"
    if damage == "emptied":
        os.truncate(db, 0)  # truncate -s 0 peakops.db
    else:
        db.unlink()
    for args in (("list",), ("submit", str(clip)), ("worker", "--burst")):
        line = one_line_failure(home, *args)
        assert f"the state database {db} is {'empty' if damage == 'emptied' else 'missing'}" \
            in line and "1 stored object(s)" in line and "Restore peakops.db" in line
    doctor = run_cli(home, "doctor")  # refuses too: never writes a fresh schema there
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr, doctor.stderr
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].split()[1] == "database", doctor.stdout
    assert f"the state database {db} is {'empty' if damage == 'emptied' else 'missing'}" \
        in failed[0] and "1 stored object(s)" in failed[0], failed
    assert (db.stat().st_size if db.exists() else None) == (0 if damage == "emptied" else None)


def test_a_stale_queue_message_alone_is_also_refused(tmp_path):
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=1, width=160, height=120)
    run_cli(home, "submit", str(clip), check=True)
    os.truncate(home / "peakops.db", 0)
    for stored in (home / "objects").rglob("*"):
        if stored.is_file():
            stored.unlink()
    assert "1 queued message(s)" in one_line_failure(home, "list")


def test_a_new_home_and_a_home_moved_aside_start_afresh(tmp_path):
    home = tmp_path / "home"
    run_cli(home, "list", check=True)
    clip = samples.make_clip(tmp_path / "clip.mp4", seconds=1, width=160, height=120)
    run_cli(home, "submit", str(clip), check=True)
    os.truncate(home / "peakops.db", 0)
    (home / "objects").rename(tmp_path / "old-objects")
    (home / "queue.db").rename(tmp_path / "old-queue.db")
    assert run_cli(home, "list", check=True).returncode == 0
