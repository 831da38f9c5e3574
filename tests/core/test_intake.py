"""Intake: one read of the file (copied, hashed and capped as it goes), a database that
decides between racing submits, refusals that are not recorded twice, and the symlink
rule. Real files, real ffmpeg probe, real SQLite."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading

import pytest

from core.app import open_app
from core.errors import DatabaseConstraintError, InputError, StorageError
from core.intake import submit_file
from core.storage.local import LocalStore
from core.store import lifecycle, queries
from tests.databases import state_settings
from tests.helpers import cli_json, make_settings, run_cli


@pytest.fixture
def app(tmp_path, database_url):
    """An App on SQLite, then on a real PostgreSQL (objects in a local folder for both)."""
    home = tmp_path / "home"
    application = open_app(state_settings(home, database_url), store=LocalStore(home / "objects"))
    yield application
    application.close()


def stored_files(app):
    return [p for p in (app.settings.home / "objects").rglob("*") if p.is_file()]


def test_a_file_growing_during_submit_is_recorded_as_stored(app, clip_h264, tmp_path):
    source = tmp_path / "growing.mp4"
    shutil.copyfile(clip_h264, source)
    grown = []

    def grow(_delta):  # the camera is still writing while the operator submits
        if not grown:
            with source.open("ab") as out:
                out.write(os.urandom(3 * 1024 * 1024))
            grown.append(True)

    result = submit_file(app, source, on_progress=grow)
    row = queries.get_upload(app.db, result.upload_id)
    [stored] = stored_files(app)
    data = stored.read_bytes()
    assert row["size"] == len(data) and row["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(data) > clip_h264.stat().st_size  # the growth was read, once


def test_a_file_growing_past_the_cap_during_submit_is_refused(tmp_path, clip_h264):
    app = open_app(make_settings(tmp_path / "home", max_video_size_mb=1))
    source = tmp_path / "growing.mp4"
    shutil.copyfile(clip_h264, source)
    assert source.stat().st_size < 1024 * 1024

    def grow(_delta):
        with source.open("ab") as out:
            out.write(b"\0" * (2 * 1024 * 1024))

    with pytest.raises(InputError, match="grew past the 1 MB limit"):
        submit_file(app, source, on_progress=grow)
    assert queries.list_uploads(app.db) == [] and stored_files(app) == []
    app.close()


def test_racing_submits_of_one_content_make_one_upload(app, clip_h264, tmp_path):
    """The second submit runs to its end while the first is still copying: the first
    one's record then meets the database's unique index and reports the second."""
    first_path, second_path = tmp_path / "first.mp4", tmp_path / "second.mp4"
    shutil.copyfile(clip_h264, first_path)
    shutil.copyfile(clip_h264, second_path)
    other = open_app(app.settings, store=app.store)
    seconds = []

    def meanwhile(_delta):
        if not seconds:
            seconds.append(submit_file(other, second_path))

    first = submit_file(app, first_path, on_progress=meanwhile)
    [second] = seconds
    assert not second.duplicate and second.status == lifecycle.QUEUED
    assert first.duplicate_of == second.upload_id and first.status == lifecycle.QUEUED
    assert len(queries.list_uploads(app.db)) == 1 and len(stored_files(app)) == 1
    other.close()


def test_the_database_refuses_a_second_live_upload_of_one_content(app):
    lifecycle.create_upload(app.db, original_name="a.mp4", sha256="ab" * 32, size=1,
                       mode=lifecycle.MODE_NOW, owner="o", lease_seconds=60)
    with pytest.raises(DatabaseConstraintError) as refused:
        lifecycle.create_upload(app.db, original_name="b.mp4", sha256="ab" * 32, size=1,
                           mode=lifecycle.MODE_NOW, owner="o", lease_seconds=60)
    assert "\n" not in str(refused.value) and "sha256" in str(refused.value)


def test_a_refused_file_is_not_recorded_again(app, text_as_mp4):
    with pytest.raises(InputError) as first:
        submit_file(app, text_as_mp4)
    for _ in range(3):
        with pytest.raises(InputError, match=f"already refused as upload {first.value.upload_id}"
                           ) as again:
            submit_file(app, text_as_mp4)
        assert again.value.upload_id == first.value.upload_id
    assert [r["id"] for r in queries.list_uploads(app.db)] == [first.value.upload_id]
    assert stored_files(app) == []


def test_resubmitting_a_queued_file_adds_no_queue_message(tmp_path, clip_h264):
    home = tmp_path / "home"
    for _ in range(3):
        run_cli(home, "submit", str(clip_h264), check=True)
    status = cli_json(home, "status")
    assert status["uploads"] == {"QUEUED": 1} and status["queue_messages"] == 1


# -- symlinks: followed only to a regular file of the link's owner, outside system folders


def test_symlink_to_a_system_file_is_refused_before_reading(app, tmp_path):
    link = tmp_path / "shadow.mp4"
    link.symlink_to("/etc/shadow" if os.path.exists("/etc/shadow") else "/etc/passwd")
    with pytest.raises(InputError, match="a symlink into a system folder"):
        submit_file(app, link)
    assert queries.list_uploads(app.db) == [] and stored_files(app) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="making a link of another owner needs root")
def test_symlink_planted_by_another_user_is_refused(app, tmp_path, clip_h264):
    target = tmp_path / "private.mp4"
    shutil.copyfile(clip_h264, target)
    link = tmp_path / "planted.mp4"
    link.symlink_to(target)
    os.lchown(link, 12345, 12345)
    with pytest.raises(InputError, match="a file of another owner"):
        submit_file(app, link)
    assert queries.list_uploads(app.db) == []


def test_symlinked_folder_into_a_system_folder_is_refused(app, tmp_path):
    """ln -s /etc etcdir; submit etcdir/shadow: the rule holds for the resolved path."""
    (tmp_path / "etcdir").symlink_to("/etc")
    victim = "shadow" if os.path.exists("/etc/shadow") else "passwd"
    with pytest.raises(InputError, match=r"a symlink into a system folder \(/etc\)"):
        submit_file(app, tmp_path / "etcdir" / victim)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "up").symlink_to(tmp_path / "etcdir")
    with pytest.raises(InputError, match="a symlink into a system folder"):
        submit_file(app, nested / "up" / victim)
    assert queries.list_uploads(app.db) == [] and stored_files(app) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="other users' links and folders need root")
def test_symlinked_folder_into_another_users_private_folder_is_refused(app, tmp_path,
                                                                       clip_h264):
    """Another user (22222) links a shared folder into 12345's private (0700) folder."""
    private = tmp_path / "home-of-12345" / "private"
    private.mkdir(parents=True)
    shutil.copyfile(clip_h264, private / "survey.mp4")
    os.chown(private / "survey.mp4", 12345, 12345)
    shutil.copyfile(clip_h264, private / "theirs.mp4")
    os.chown(private / "theirs.mp4", 22222, 22222)  # even a file of the link's owner
    os.chown(private, 12345, 12345)
    private.chmod(0o700)
    (tmp_path / "shared").mkdir(mode=0o1777)
    inbox = tmp_path / "shared" / "inbox"
    inbox.symlink_to(private)
    os.lchown(inbox, 22222, 22222)
    with pytest.raises(InputError, match="a file of another owner"):
        submit_file(app, inbox / "survey.mp4")
    with pytest.raises(InputError, match=r"a folder the link's owner cannot enter \(.*private, "
                                         r"mode 700\)"):
        submit_file(app, inbox / "theirs.mp4")
    assert queries.list_uploads(app.db) == [] and stored_files(app) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="a file of another owner needs root")
def test_roots_own_folder_links_are_trusted(app, tmp_path, clip_h264):
    """``/home -> /data/home``: a root-made folder link to a user's video is followed."""
    (tmp_path / "data" / "alice").mkdir(parents=True)
    shutil.copyfile(clip_h264, tmp_path / "data" / "alice" / "survey.mp4")
    os.chown(tmp_path / "data" / "alice" / "survey.mp4", 12345, 12345)
    (tmp_path / "users").symlink_to(tmp_path / "data")
    result = submit_file(app, tmp_path / "users" / "alice" / "survey.mp4")
    assert result.status == lifecycle.QUEUED


def test_symlinked_folder_to_own_videos_is_followed(app, tmp_path, clip_h264):
    (tmp_path / "site").mkdir()
    shutil.copyfile(clip_h264, tmp_path / "site" / "survey.mp4")
    (tmp_path / "today").symlink_to(tmp_path / "site")
    result = submit_file(app, tmp_path / "today" / "survey.mp4")
    assert result.status == lifecycle.QUEUED


def test_symlink_to_a_fifo_or_a_folder_is_refused(app, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "fifo.mp4").symlink_to(fifo)
    (tmp_path / "dir.mp4").symlink_to(tmp_path)
    for name in ("fifo.mp4", "dir.mp4"):
        with pytest.raises(InputError, match="not a regular file"):
            submit_file(app, tmp_path / name)


def test_symlink_to_an_own_video_is_followed(app, tmp_path, clip_h264):
    target = tmp_path / "site" / "survey.mp4"
    target.parent.mkdir()
    shutil.copyfile(clip_h264, target)
    link = tmp_path / "today.mp4"
    link.symlink_to(target)
    result = submit_file(app, link)
    assert result.status == lifecycle.QUEUED
    assert queries.get_upload(app.db, result.upload_id)["original_name"] == "today.mp4"


class _Reached(logging.Handler):
    """Sets an event when the intake says it waits for another submission."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting for its outcome" in record.getMessage():
            self.event.set()


@pytest.mark.parametrize("first_ends", ["stored", "failed"])
def test_a_second_submit_waits_for_the_first_ones_outcome(app, clip_h264, first_ends):
    sha = hashlib.sha256(clip_h264.read_bytes()).hexdigest()
    first = lifecycle.create_upload(app.db, original_name="first.mp4", sha256=sha, size=1,
                               mode=lifecycle.MODE_NOW, owner="other-submitter", lease_seconds=600)
    reached = _Reached()
    logging.getLogger("core.intake").addHandler(reached)
    logging.getLogger("core.intake").setLevel(logging.INFO)
    results = []

    def submit_again() -> None:
        other = open_app(app.settings, store=app.store)
        try:
            results.append(submit_file(other, clip_h264))
        finally:
            other.close()

    second = threading.Thread(target=submit_again)
    try:
        second.start()
        assert reached.event.wait(60), "the second submit never waited"
        if first_ends == "stored":
            lifecycle.mark_stored(app.db, first, storage_key="videos/" + sha[:2] + "/" + sha,
                             probe={})
        else:  # e.g. the disk was full for the first one
            lifecycle.fail(app.db, first, StorageError("disk full"),
                           status=lifecycle.FAILED)
        second.join(60)
    finally:
        logging.getLogger("core.intake").removeHandler(reached)
    [result] = results
    if first_ends == "stored":
        assert (result.duplicate_of, result.status) == (first, lifecycle.QUEUED)
    else:
        assert not result.duplicate and result.upload_id != first
        assert result.status == lifecycle.QUEUED


def test_upgrade_keeps_duplicates_that_got_in_before_and_points_them_at_the_first(tmp_path):
    import sqlite3

    from core.store import db as dbmod
    from core.store import schema

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    index = next(number for number in range(1, schema.SCHEMA_VERSION + 1)
                 if any("idx_uploads_live_sha256" in sql
                        for sql in schema.statements(number, "sqlite")))
    for number in range(1, index):  # a database from before the index
        for sql in schema.statements(number, "sqlite"):
            conn.execute(sql)
    conn.execute(f"PRAGMA user_version = {index - 1}")
    for name in ("a.mp4", "a-again.mp4"):  # the race the index now prevents
        conn.execute("INSERT INTO uploads (original_name, sha256, status, mode, created_at, "
                     "updated_at, storage_key) VALUES (?, 'ab', 'DONE', 'now', 1, 1, 'k')",
                     [name])
    conn.close()
    db = dbmod.connect(path)
    rows = [dict(r) for r in db.query("SELECT id, duplicate_of FROM uploads ORDER BY id")]
    assert rows == [{"id": 1, "duplicate_of": None}, {"id": 2, "duplicate_of": 1}]
    assert queries.find_by_sha256(db, "ab")["id"] == 1
    with pytest.raises(DatabaseConstraintError):
        lifecycle.create_upload(db, original_name="b.mp4", sha256="ab", size=1,
                           mode=lifecycle.MODE_NOW, owner="o", lease_seconds=60)
    db.conn.close()
