"""More console actions through the real window: reprocess, re-analyse, retry by category,
copy details, cancelling an add, remembered columns, starting and stopping the service."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import QApplication

from core.app import open_app, process_owner
from core.errors import MemoryLimitError, StorageError
from core.intake import submit_file
from core.jobs import pipeline
from core.store import lifecycle
from desktop.models import COLUMN_KEYS, F
from tests.helpers import console_settled


def status_of(window, upload_id):
    row = window.model.row_by_id(upload_id)
    return None if row is None else row[F["status"]]


def done_upload(settings, clip):
    app = open_app(settings)
    try:
        upload_id = submit_file(app, clip).upload_id
        assert pipeline.process_now(app, upload_id, process_owner("test")) == lifecycle.DONE
        return upload_id
    finally:
        app.close()


def counts(settings, upload_id):
    app = open_app(settings)
    try:
        frames = app.db.execute("SELECT COUNT(*) FROM frames WHERE upload_id = ?",
                                [upload_id]).fetchone()[0]
        labels = app.db.execute("SELECT COUNT(*) FROM labels l JOIN frames f ON f.id = "
                                "l.frame_id WHERE f.upload_id = ?", [upload_id]).fetchone()[0]
        return frames, labels
    finally:
        app.close()


def test_reanalyse_keeps_frames_and_reprocess_drops_them(qtbot, window, settings, clip_h264):
    settings_small = dataclasses.replace(settings, max_frames_per_video=3)
    upload_id = done_upload(settings_small, clip_h264)
    frames, labels = counts(settings, upload_id)
    assert frames == 3 and labels > 0
    qtbot.waitUntil(lambda: status_of(window, upload_id) == "DONE", timeout=5000)
    assert window.select_upload(upload_id)
    assert window.acts["reanalyse"].isEnabled() and window.acts["reprocess"].isEnabled()

    window.acts["reanalyse"].trigger()
    qtbot.waitUntil(lambda: status_of(window, upload_id) == "QUEUED", timeout=5000)
    assert counts(settings, upload_id) == (3, 0)

    app = open_app(settings)
    lifecycle.cancel(app.db, upload_id)
    app.close()
    qtbot.waitUntil(lambda: status_of(window, upload_id) == "CANCELLED", timeout=5000)
    window.acts["reprocess"].trigger()
    qtbot.waitUntil(lambda: status_of(window, upload_id) == "QUEUED", timeout=5000)
    assert counts(settings, upload_id) == (0, 0)
    assert not list((settings.home / "objects" / "frames").rglob("*.jpg"))


def test_retry_all_failed_of_one_category_and_copy_details(qtbot, window, settings,
                                                           clip_h264, clip_noaudio):
    app = open_app(settings)
    ids = []
    for clip, error in ((clip_h264, MemoryLimitError("over the hard limit")),
                        (clip_noaudio, StorageError("bucket unreachable"))):
        upload_id = submit_file(app, clip).upload_id
        lifecycle.claim(app.db, upload_id, "o", lease_seconds=60)
        lifecycle.fail(app.db, upload_id, error, owner="o", status=lifecycle.FAILED)
        ids.append(upload_id)
    app.close()
    qtbot.waitUntil(lambda: window.model.counts.get("FAILED") == 2, timeout=5000)
    window.retry_all_failed("memory")
    qtbot.waitUntil(lambda: status_of(window, ids[0]) == "QUEUED", timeout=5000)
    assert status_of(window, ids[1]) == "FAILED"
    assert "retry: 1 upload(s)" in window.statusBar().currentMessage()

    assert window.select_upload(ids[1])
    QApplication.clipboard().clear()
    window.acts["copy"].trigger()
    qtbot.waitUntil(lambda: QApplication.clipboard().text() != "", timeout=5000)
    text = QApplication.clipboard().text()
    assert f"upload {ids[1]}: noaudio.mp4" in text and "[storage] bucket unreachable" in text


def test_cancelling_an_add_before_it_starts(qtbot, window, clip_h264, clip_noaudio):
    batch = window.add_paths([clip_h264, clip_noaudio])
    window.last_add_dialog.cancel_button.click()
    qtbot.waitUntil(lambda: len(batch.files) == 2 and len(batch.results) == 2, timeout=10000)
    assert all(r.text == "cancelled before it started" for r in batch.results)
    assert window.last_add_dialog.overall_label.text().startswith("Done: 0 added, 2 not")
    console_settled(qtbot, window)
    assert window.model.rows == []


def test_columns_and_geometry_are_remembered(qtbot, settings, dialogs):
    from desktop.app import MainWindow
    first = MainWindow(settings, dialogs=dialogs)
    qtbot.addWidget(first)
    column = COLUMN_KEYS.index("mode")
    first.view.horizontalHeader().resizeSection(column, 123)
    first.view.setColumnHidden(COLUMN_KEYS.index("attempts"), True)
    first.close()
    second = MainWindow(settings, dialogs=dialogs)
    qtbot.addWidget(second)
    try:
        assert second.view.horizontalHeader().sectionSize(column) == 123
        assert second.view.isColumnHidden(COLUMN_KEYS.index("attempts"))
        assert (settings.home / "console.ini").exists()
    finally:
        second.close()


def test_start_and_stop_the_local_service(qtbot, window):
    panel = window.worker_panel
    assert panel.start_button.isEnabled()
    panel.start_button.click()
    try:
        qtbot.waitUntil(lambda: panel.state.text().startswith("running"), timeout=30000)
        assert window.service_proc is not None and window.service_proc.poll() is None
        assert panel.stop_button.isEnabled() and not panel.start_button.isEnabled()
        panel.stop_button.click()
        qtbot.waitUntil(lambda: panel.state.text() == "stopped", timeout=30000)
        assert window.service_proc.wait(timeout=20) is not None
    finally:
        if window.service_proc is not None and window.service_proc.poll() is None:
            window.service_proc.kill()
            window.service_proc.wait(timeout=10)
