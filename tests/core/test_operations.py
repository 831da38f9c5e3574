"""Operator actions (core.operations), once for the CLI, the console and the API: on
SQLite and on a real PostgreSQL, with real clips, a real store and the App's queue hook;
and the CLI's ``delete`` and ``reset-stuck`` as real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from core import operations
from core.analysis.local import measure
from core.app import open_app, process_owner
from core.errors import NotFoundError, StateError
from core.liveness import host_id
from core.storage.local import LocalStore, frame_key
from core.store import frames, lifecycle, queries
from tests.databases import state_settings
from tests.helpers import cli_json, make_settings, run_cli


@pytest.fixture
def sent() -> list[tuple[list[int], str]]:
    return []


@pytest.fixture
def app(tmp_path: Path, database_url: str | None, sent):
    home = tmp_path / "home"
    application = open_app(state_settings(home, database_url),
                           store=LocalStore(home / "objects"),
                           send_queued=lambda ids, kind: sent.append((ids, kind)))
    yield application
    application.close()


def dead_owner() -> str:
    """A lease owner on this host whose process has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"worker@{host_id()}:{child.pid}"


def with_frame(app, upload_id: int, tmp_path: Path) -> str:
    image = tmp_path / f"frame-{upload_id}.jpg"
    Image.new("RGB", (32, 24), (90, 120, 150)).save(image)
    key = frame_key(upload_id, 0)
    app.store.put_file(key, image)
    frames.record(app.db, upload_id, 0, timestamp=0.5, storage_key=key, width=32, height=24,
                  metrics=measure(image))
    return key


def test_submit_sends_a_new_upload_once_and_a_duplicate_never(app, sent, clip_h264, clip_vp9):
    first = operations.submit(app, clip_h264)
    again = operations.submit(app, clip_h264)
    assert (first.status, again.duplicate_of) == (lifecycle.QUEUED, first.upload_id)
    assert sent == [([first.upload_id], "process")]
    deferred = operations.submit(app, clip_vp9, off_peak=True)
    assert deferred.status == lifecycle.DEFERRED
    assert sent == [([first.upload_id], "process")]  # off-peak or duplicate: nothing sent


def test_each_action_applies_to_every_upload_on_its_own(app, sent, clip_h264, clip_vp9):
    done = operations.submit(app, clip_h264).upload_id
    waiting = operations.submit(app, clip_vp9).upload_id
    owner = process_owner("test")
    lifecycle.claim(app.db, done, owner, lease_seconds=60)
    assert lifecycle.complete(app.db, done, owner)
    sent.clear()

    outcome = operations.retry(app, [done, waiting, 999])
    assert outcome.statuses == {done: lifecycle.QUEUED}
    assert [(i, type(e)) for i, e in outcome.refused] == [(waiting, StateError),
                                                          (999, NotFoundError)]
    assert "QUEUED" in str(outcome.refused[0][1]) and "\n" not in str(outcome.refused[0][1])
    assert sent == [([done], "process")]
    assert outcome.summary().startswith("retry: 1 upload(s), 2 refused (upload ")

    assert operations.cancel(app, [done, waiting]).statuses == {
        done: lifecycle.CANCELLED, waiting: lifecycle.CANCELLED}
    sent.clear()
    assert operations.analyze(app, [done]).statuses == {done: lifecycle.QUEUED}
    assert sent == [([done], "analyze")]


def test_reprocess_drops_frames_and_their_images(app, sent, clip_h264, tmp_path):
    upload_id = operations.submit(app, clip_h264).upload_id
    lifecycle.cancel(app.db, upload_id)
    key = with_frame(app, upload_id, tmp_path)
    sent.clear()
    outcome = operations.reprocess(app, [upload_id])
    assert outcome.statuses == {upload_id: lifecycle.QUEUED} and not outcome.refused
    assert frames.keys(app.db, upload_id) == [] and not app.store.exists(key)
    assert sent == [([upload_id], "reprocess")]


def test_delete_removes_row_and_objects_and_refuses_a_running_upload(app, clip_h264, clip_vp9,
                                                                     tmp_path):
    gone = operations.submit(app, clip_h264).upload_id
    running = operations.submit(app, clip_vp9).upload_id
    key = with_frame(app, gone, tmp_path)
    video = queries.get_upload(app.db, gone)["storage_key"]
    lifecycle.claim(app.db, running, process_owner("test"), lease_seconds=60)

    outcome = operations.delete(app, [gone, running])
    assert outcome.statuses == {gone: operations.DELETED}
    [(refused, error)] = outcome.refused
    assert refused == running and "PROCESSING; cancel it before deleting" in str(error)
    with pytest.raises(NotFoundError):
        queries.get_upload(app.db, gone)
    assert not app.store.exists(key) and not app.store.exists(video)
    assert queries.get_upload(app.db, running)["status"] == lifecycle.PROCESSING


def test_reset_stuck_judges_owners_on_this_host_by_their_process(app, sent, clip_h264,
                                                                  clip_vp9):
    orphan = operations.submit(app, clip_h264).upload_id
    alive = operations.submit(app, clip_vp9).upload_id
    # Both leases are fresh: only the dead owner's process tells the orphan apart.
    lifecycle.claim(app.db, orphan, dead_owner(), lease_seconds=3600)
    lifecycle.claim(app.db, alive, process_owner("test"), lease_seconds=3600)
    sent.clear()
    outcome = operations.reset_stuck(app)
    assert outcome.statuses == {orphan: lifecycle.QUEUED}
    assert sent == [([orphan], "process")]
    assert queries.get_upload(app.db, alive)["status"] == lifecycle.PROCESSING


def test_cli_delete_asks_for_yes_and_reset_stuck_sees_a_dead_owner(tmp_path, clip_h264,
                                                                   clip_vp9):
    home = tmp_path / "home"
    [first, second] = cli_json(home, "submit", str(clip_h264), str(clip_vp9))
    app = open_app(make_settings(home))
    lifecycle.claim(app.db, second["upload_id"], dead_owner(), lease_seconds=3600)
    app.close()

    refused = run_cli(home, "delete", str(first["upload_id"]))
    assert refused.returncode == 2 and "add --yes to confirm" in refused.stderr
    assert [r["id"] for r in cli_json(home, "list")] == [first["upload_id"],
                                                         second["upload_id"]]
    reset = run_cli(home, "reset-stuck", check=True)
    assert f"{second['upload_id']}\tQUEUED" in reset.stdout
    deleted = run_cli(home, "delete", "--yes", str(first["upload_id"]),
                      str(second["upload_id"]), "77")
    assert deleted.returncode == 1
    assert f"{first['upload_id']}\tDELETED" in deleted.stdout
    assert f"{second['upload_id']}\tDELETED" in deleted.stdout
    assert deleted.stderr == "peakops: no upload with id 77\n"
    assert cli_json(home, "list") == []
    assert not [p for p in (home / "objects").rglob("*") if p.is_file()]
