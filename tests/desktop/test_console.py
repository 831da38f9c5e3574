"""The console driven through its real widgets, with a real worker process."""

from __future__ import annotations

import shutil
import subprocess
import sys

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from batch.queue import make_queue
from core.app import open_app, process_owner
from core.errors import InputError
from core.intake import submit_file
from core.store import lifecycle
from desktop.models import F
from tests.helpers import REPO, cli_env, console_settled


def drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert event.isAccepted()


def status_of(window, upload_id):
    row = window.model.row_by_id(upload_id)
    return None if row is None else row[F["status"]]


def run_worker(home):
    return subprocess.Popen([sys.executable, "-m", "cli", "worker", "--burst"],
                            cwd=REPO, env=cli_env(home, PEAKOPS_MAX_FRAMES_PER_VIDEO="4"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_dropped_files_are_validated_then_processed_by_a_real_worker(
        qtbot, window, home, tmp_path, clip_h264, clip_noaudio, text_as_mp4):
    folder = tmp_path / "site-visit"
    folder.mkdir()
    shutil.copy(clip_noaudio, folder / "north.mp4")
    (folder / "readme.txt").write_text("not a video, and not picked up from a folder")
    drop(window, [clip_h264, text_as_mp4, folder])
    batch, dialog = window.last_batch, window.last_add_dialog
    qtbot.waitUntil(lambda: len(batch.results) == 3 and len(batch.files) == 3, timeout=20000)

    rejected = batch.rejected
    assert [r.name for r in rejected] == ["notes.mp4"]
    assert "rejected (input)" in rejected[0].text
    assert dialog.table.item(rejected[0].index, 3).text() == rejected[0].text
    assert dialog.overall.value() == 100
    ids = [r.upload_id for r in batch.results if r.ok]
    assert len(ids) == 2
    assert make_queue(window.settings).pending_upload_ids() >= set(ids)
    qtbot.waitUntil(lambda: all(status_of(window, i) == "QUEUED" for i in ids), timeout=5000)
    assert window.filters.chips["QUEUED"].text() == "Queued 2"

    worker = run_worker(home)
    try:
        qtbot.waitUntil(lambda: all(status_of(window, i) == "DONE" for i in ids),
                        timeout=60000)
    finally:
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err.decode()[-2000:]
    assert window.filters.chips["DONE"].text() == "Done 2"

    # Details: probe facts, thumbnails loaded off the UI thread, labels with confidences.
    assert window.select_upload(ids[0])
    details = window.details
    qtbot.waitUntil(lambda: details.detail is not None and details.pending_thumbs == 0
                    and details.frames.count() > 0, timeout=10000)
    assert details.loaded_thumbnails() == details.frames.count() == len(details.detail.frames)
    assert "%" in details.frames.item(0).text()
    assert not details.frames.item(0).icon().pixmap(40, 40).isNull()
    assert "h264" in details.fact_labels["Video"].text()
    assert [e["kind"] for e in details.detail.events][-1] == "done"
    assert details.events.topLevelItemCount() == len(details.detail.events)


def failed_upload(settings, clip):
    app = open_app(settings)
    try:
        upload_id = submit_file(app, clip).upload_id
        owner = process_owner("test")
        lifecycle.claim(app.db, upload_id, owner, lease_seconds=60)
        lifecycle.fail(app.db, upload_id, InputError("moov atom not found"), owner=owner,
                  status=lifecycle.FAILED)
        return upload_id
    finally:
        app.close()


def test_filter_failed_then_retry_from_the_toolbar(qtbot, window, settings, clip_h264,
                                                   clip_noaudio):
    failed = failed_upload(settings, clip_h264)
    app = open_app(settings)
    ok = submit_file(app, clip_noaudio).upload_id
    app.close()
    qtbot.waitUntil(lambda: status_of(window, failed) == "FAILED"
                    and status_of(window, ok) == "QUEUED", timeout=5000)

    qtbot.mouseClick(window.filters.chips["FAILED"], Qt.MouseButton.LeftButton)
    assert window.proxy.rowCount() == 1
    assert window.proxy.ids([0]) == [failed]
    assert window.filters.chips["FAILED"].text() == "Failed 1"

    window.view.selectRow(0)
    qtbot.waitUntil(lambda: window.details.detail is not None, timeout=5000)
    assert "re-export or re-record" in window.details.error.text()
    assert "moov atom not found" in window.details.error.text()
    assert window.acts["retry"].isEnabled() and not window.acts["cancel"].isEnabled()
    window.acts["retry"].trigger()
    qtbot.waitUntil(lambda: status_of(window, failed) == "QUEUED", timeout=5000)
    assert window.proxy.rowCount() == 0  # still filtered to FAILED
    assert failed in make_queue(settings).pending_upload_ids()

    qtbot.mouseClick(window.filters.chips["ALL"], Qt.MouseButton.LeftButton)
    assert window.proxy.rowCount() == 2


def test_delete_asks_first_and_removes_rows_and_objects(qtbot, window, settings, dialogs,
                                                        clip_h264):
    upload_id = failed_upload(settings, clip_h264)
    qtbot.waitUntil(lambda: status_of(window, upload_id) == "FAILED", timeout=5000)
    assert window.select_upload(upload_id)
    key = window.model.row_by_id(upload_id)  # noqa: F841 - row present before the delete
    dialogs.answer = False
    window.acts["delete"].trigger()
    assert len(dialogs.asked) == 1 and "cannot be undone" in dialogs.asked[0][1]
    console_settled(qtbot, window)
    assert status_of(window, upload_id) == "FAILED"

    dialogs.answer = True
    window.acts["delete"].trigger()
    qtbot.waitUntil(lambda: window.model.row_by_id(upload_id) is None, timeout=5000)
    app = open_app(settings)
    try:
        assert app.db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0] == 0
        assert app.db.execute("SELECT COUNT(*) FROM events WHERE upload_id = ?",
                              [upload_id]).fetchone()[0] == 0
        assert not list((settings.home / "objects").rglob("*")) or all(
            p.is_dir() for p in (settings.home / "objects").rglob("*"))
    finally:
        app.close()


def test_cancel_and_mode_switch_follow_the_lifecycle(qtbot, window, settings, clip_h264):
    app = open_app(settings)
    upload_id = submit_file(app, clip_h264, mode=lifecycle.MODE_OFFPEAK).upload_id
    app.close()
    qtbot.waitUntil(lambda: status_of(window, upload_id) == "DEFERRED", timeout=5000)
    assert window.select_upload(upload_id)
    assert window.acts["now"].isEnabled() and not window.acts["offpeak"].isEnabled()
    window.acts["now"].trigger()
    qtbot.waitUntil(lambda: status_of(window, upload_id) == "QUEUED", timeout=5000)
    assert window.acts["offpeak"].isEnabled()
    window.acts["cancel"].trigger()
    qtbot.waitUntil(lambda: status_of(window, upload_id) == "CANCELLED", timeout=5000)
    assert window.acts["retry"].isEnabled() and not window.acts["cancel"].isEnabled()
