"""Disk full and read-only storage on real size-limited folders (tmpfs mounts; needs root).

Processing fails cleanly with category storage (FAILED, a readable message, nothing
half-written) and the same upload recovers with ``peakops retry`` once space returns.
"""

from __future__ import annotations

import contextlib
import errno
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.media import samples
from tests.helpers import run_cli
from tests.reliability.support import (
    FAST,
    assert_readable,
    burst,
    check_invariants,
    db_dicts,
    submit,
    with_padding,
)

ENV = {**FAST, "PEAKOPS_MAX_FRAMES_PER_VIDEO": "3"}


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                   check=True, capture_output=True, timeout=30)
    try:
        yield folder
    finally:
        done = subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path) -> Path:
    """Write until the filesystem is full; return the filler to delete later."""
    filler = folder / ".filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: closing has nothing to flush
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True,
                   capture_output=True, timeout=30)


def status(home: Path, upload_id: int) -> tuple[str, str | None, str | None]:
    [row] = db_dicts(home, "SELECT status, error_category, error_message FROM uploads "
                           "WHERE id = ?", [upload_id])
    return row["status"], row["error_category"], row["error_message"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("disk-clips")
    return samples.make_clip(folder / "site.mp4", seconds=2, width=160, height=120)


def expect_storage_failure(home: Path, upload_id: int, reason: str) -> None:
    state, category, message = status(home, upload_id)
    assert (state, category) == ("FAILED", "storage"), (state, category, message)
    assert reason in message
    assert_readable(message)


def test_objects_full_then_read_only_then_recovered(tmp_path: Path, clip: Path) -> None:
    home = tmp_path / "home"
    objects = home / "objects"
    with tmpfs(objects, "4m"):
        [first] = submit(home, with_padding(clip, tmp_path / "a.mp4", "a"), **ENV)
        [second] = submit(home, with_padding(clip, tmp_path / "b.mp4", "b"), **ENV)
        filler = fill(objects)
        # Full: frames cannot be stored; a new submission is refused while it is copied,
        # before any record exists, and nothing is left behind.
        burst(home, **ENV)
        expect_storage_failure(home, first, "No space left on device")
        expect_storage_failure(home, second, "No space left on device")
        third = with_padding(clip, tmp_path / "c.mp4", "c")
        proc = run_cli(home, "submit", "--json", str(third), **ENV)
        [result] = json.loads(proc.stdout)
        assert proc.returncode == 1 and result["category"] == "storage"
        assert "disk full" in result["error"] and "No space left on device" in result["error"]
        assert result["upload_id"] is None
        assert db_dicts(home, "SELECT COUNT(*) AS n FROM uploads") == [{"n": 2}]
        assert not list((objects / ".partial").glob("*"))
        # Read-only: the same, with the reason the operator needs.
        filler.unlink()
        remount(objects, "ro")
        run_cli(home, "retry", str(first), check=True, **ENV)
        burst(home, **ENV)
        expect_storage_failure(home, first, "Read-only file system")
        # Space and write access back: retry finishes all of them; the refused file is
        # accepted when submitted again.
        remount(objects, "rw")
        run_cli(home, "retry", str(first), str(second), check=True, **ENV)
        [again] = submit(home, third, **ENV)
        assert again != result["upload_id"]
        burst(home, **ENV)
        assert [status(home, i)[0] for i in (first, second, again)] == ["DONE"] * 3
        check_invariants(home, max_frames=3)


def test_scratch_folder_full_then_recovered(tmp_path: Path, clip: Path) -> None:
    home = tmp_path / "home"
    [upload_id] = submit(home, with_padding(clip, tmp_path / "d.mp4", "d"), **ENV)
    with tmpfs(home / "tmp", "1m"):
        filler = fill(home / "tmp")
        burst(home, **ENV)
        expect_storage_failure(home, upload_id, "No space left on device")
        filler.unlink()
        run_cli(home, "retry", str(upload_id), check=True, **ENV)
        burst(home, **ENV)
        assert status(home, upload_id)[0] == "DONE"
        check_invariants(home, max_frames=3)


def test_frames_on_a_full_disk_are_retried_and_the_last_message_says_disk_full(
        tmp_path: Path, clip: Path) -> None:
    home = tmp_path / "home"
    objects = home / "objects"
    with tmpfs(objects, "4m"):
        [upload_id] = submit(home, with_padding(clip, tmp_path / "e.mp4", "e"), **ENV)
        filler = fill(objects)
        burst(home, **ENV, PEAKOPS_MAX_ATTEMPTS="3")
        [row] = db_dicts(home, "SELECT * FROM uploads WHERE id = ?", [upload_id])
        assert (row["status"], row["error_category"], row["attempts"]) == (
            "FAILED", "storage", 3), row
        assert "disk full" in row["error_message"]
        retries = db_dicts(home, "SELECT message FROM events WHERE upload_id = ? AND "
                                 "kind = 'retry'", [upload_id])
        assert len(retries) == 2 and all("disk full" in r["message"] for r in retries)
        filler.unlink()
        run_cli(home, "retry", str(upload_id), check=True, **ENV)
        burst(home, **ENV)
        assert status(home, upload_id)[0] == "DONE"


def test_heartbeat_on_a_full_disk_logs_one_line_not_a_traceback_each_beat(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from batch.heartbeat import Heartbeat
    from core.app import open_app
    from core.jobs.runner import JobRunner
    from core.store.db import open_database
    from tests.helpers import make_settings

    home = tmp_path / "home"
    with tmpfs(home, "2m"):
        settings = make_settings(home)
        app = open_app(settings)
        beat = Heartbeat(settings, "worker@test:1", JobRunner(app, owner="worker@test:1"))
        db = open_database(settings)
        try:
            beat.beat_once(db)  # the row exists: later beats update it
            caplog.clear()
            filler = fill(home)
            with caplog.at_level(logging.DEBUG, logger="batch.heartbeat"):
                for _ in range(5):
                    beat.beat_once(db)
                failing = [r for r in caplog.records if r.name == "batch.heartbeat"]
                assert len(failing) == 1, [r.getMessage() for r in failing]
                [record] = failing
                assert record.levelno == logging.WARNING and record.exc_info is None
                line = record.getMessage()
                assert "\n" not in line and "disk full" in line, line
                assert line.startswith(f"worker@test:1: heartbeat write failed: home folder "
                                       f"{home}: disk full")
                filler.unlink()
                caplog.clear()
                beat.beat_once(db)
                beat.beat_once(db)
                assert [r.getMessage() for r in caplog.records
                        if r.name == "batch.heartbeat"] == [
                    f"worker@test:1: heartbeat written again after: {line.split(': ', 2)[2]}"
                    .removesuffix(" (retrying every 1 s)")]
        finally:
            db.close()
            app.close()
