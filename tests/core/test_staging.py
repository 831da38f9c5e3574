"""The submit's one copy (issue #22 item 6): cloned or copied with the hash beside it,
never a hard link; fsynced on a thread before it is recorded."""

from __future__ import annotations

import hashlib
import os

import pytest

from core.app import open_app
from core.intake import submit_file
from core.media.samples import make_clip
from core.storage import staging
from core.store import queries
from tests.helpers import make_settings


def test_copy_gives_the_hash_and_bytes_of_the_source(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(5 * staging.CHUNK + 12345))  # several chunks and a tail
    moved = []
    with source.open("rb") as src, (tmp_path / "dest").open("w+b") as dest:
        sha256, size, how = staging.copy_hashing(src, dest, max_bytes=10 * staging.CHUNK,
                                                 on_progress=moved.append)
    data = source.read_bytes()
    assert (sha256, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (tmp_path / "dest").read_bytes() == data
    assert sum(moved) == len(data)
    assert how in ("reflink", "copy")
    assert os.stat(tmp_path / "dest").st_ino != os.stat(source).st_ino


def test_across_filesystems_the_copy_is_made_and_hashed_all_the_same(tmp_path):
    """/dev/shm (tmpfs) to tmp_path: no clone across filesystems, a copy."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm here")
    data = os.urandom(20 * staging.CHUNK + 7)  # more than two kernel-copy steps
    source = tmp_path / "dest-fs-probe"
    with open(f"/dev/shm/peakops-test-{os.getpid()}", "w+b") as src:
        try:
            src.write(data)
            src.flush()
            src.seek(0)
            with source.open("w+b") as dest:
                sha256, size, how = staging.copy_hashing(src, dest, max_bytes=len(data))
        finally:
            os.unlink(src.name)
    assert (sha256, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert source.read_bytes() == data
    assert how == "copy"  # no clone across filesystems


def test_copy_stops_past_the_cap(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(3 * staging.CHUNK))
    with source.open("rb") as src, (tmp_path / "dest").open("w+b") as dest, \
            pytest.raises(staging.TooBigError):
        staging.copy_hashing(src, dest, max_bytes=2 * staging.CHUNK)


def test_clone_is_refused_where_the_filesystem_cannot_and_the_copy_runs(tmp_path):
    """tmp_path is on ext4 or tmpfs here: no FICLONE, so the staged copy is a copy."""
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 1000)
    fs = os.statvfs(tmp_path)
    with source.open("rb") as src, (tmp_path / "dest").open("w+b") as dest:
        cloned = staging.clone(src, dest)
    with source.open("rb") as src, (tmp_path / "dest2").open("w+b") as dest:
        _, _, how = staging.copy_hashing(src, dest, max_bytes=10_000)
    assert how == ("reflink" if cloned else "copy"), fs


def test_editing_the_original_after_submit_leaves_the_stored_video_as_recorded(tmp_path):
    video = make_clip(tmp_path / "clip.mp4", seconds=2)
    app = open_app(make_settings(tmp_path / "home"))
    result = submit_file(app, video)
    row = queries.get_upload(app.db, result.upload_id)
    stored = app.settings.home / "objects" / row["storage_key"]
    with video.open("r+b") as handle:  # an in-place edit: same inode, new bytes
        handle.seek(100)
        handle.write(b"\0" * 1000)
    assert os.stat(stored).st_ino != os.stat(video).st_ino
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == row["sha256"]
    assert hashlib.sha256(video.read_bytes()).hexdigest() != row["sha256"]


def test_a_failed_fsync_is_raised_by_wait(tmp_path):
    sync = staging.Sync(tmp_path / "missing")  # open fails: the error comes from wait()
    with pytest.raises(FileNotFoundError):
        sync.wait()
    good = tmp_path / "present"
    good.write_bytes(b"data")
    staging.Sync(good).wait()


# --------------------------------------------------------------------------- a real reflink
# This machine's own filesystems (ext4, tmpfs) cannot clone; an XFS made with reflink=1 on
# a loop device can. Root makes one in tmp_path, mounts it, and unmounts it after.

@pytest.fixture
def reflink_fs(tmp_path):
    """A mounted 300 MB XFS with reflink=1 (skips where this cannot be made: not root, no
    mkfs.xfs (scripts/ensure-system-deps.sh installs xfsprogs), no loop device)."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("mkfs.xfs") is None \
            or not os.path.exists("/dev/loop-control"):
        pytest.skip("an XFS loop mount needs root, mkfs.xfs and loop devices")
    image, mount = tmp_path / "xfs.img", tmp_path / "xfs"
    with image.open("wb") as handle:
        handle.truncate(300 * 1024 * 1024)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True,
                   capture_output=True)
    mount.mkdir()
    done = subprocess.run(["mount", "-o", "loop", str(image), str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a loop device here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _free_bytes(path) -> int:
    os.sync()  # XFS allocates at writeback: count what the copy really takes
    fs = os.statvfs(path)
    return fs.f_bfree * fs.f_frsize


def test_on_xfs_the_staged_copy_is_a_clone_that_takes_no_space(reflink_fs):
    source = reflink_fs / "source.bin"
    data = os.urandom(40 * staging.CHUNK)
    source.write_bytes(data)
    before = _free_bytes(reflink_fs)
    with source.open("rb") as src, (reflink_fs / "clone").open("w+b") as dest:
        sha256, size, how = staging.copy_hashing(src, dest, max_bytes=100 * staging.CHUNK)
    cloned = before - _free_bytes(reflink_fs)
    assert (how, sha256, size) == ("reflink", hashlib.sha256(data).hexdigest(), len(data))
    assert cloned < len(data) // 10, f"the clone took {cloned} bytes of {len(data)}"
    with source.open("rb") as src, (reflink_fs / "copy").open("w+b") as dest:
        # The same bytes written (not cloned) take their room: the measure can tell.
        before = _free_bytes(reflink_fs)
        dest.write(src.read())
    assert before - _free_bytes(reflink_fs) >= len(data)


def test_a_submit_on_xfs_clones_and_an_edit_of_the_original_leaves_the_store_alone(
        reflink_fs, caplog):
    import logging

    video = make_clip(reflink_fs / "clip.mp4", seconds=2)
    app = open_app(make_settings(reflink_fs / "home"))
    try:
        with caplog.at_level(logging.DEBUG, logger="core.intake"):
            result = submit_file(app, video)
        assert "staged by reflink" in caplog.text
        row = queries.get_upload(app.db, result.upload_id)
        stored = app.settings.home / "objects" / row["storage_key"]
        with video.open("r+b") as handle:  # in place: the clone's blocks are copied on write
            handle.seek(100)
            handle.write(b"\0" * 1000)
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == row["sha256"]
        assert hashlib.sha256(video.read_bytes()).hexdigest() != row["sha256"]
    finally:
        app.close()
