"""Results in the console, through the real window offscreen: contact sheet and report."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from PIL import Image
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices

from core.app import open_app, process_owner
from core.intake import submit_file
from core.jobs import pipeline
from core.results import report
from core.store import lifecycle
from desktop.models import F


def status_of(window, upload_id):
    row = window.model.row_by_id(upload_id)
    return None if row is None else row[F["status"]]


def test_save_contact_sheet_runs_off_the_ui_thread_and_writes_the_jpeg(
        qtbot, window, settings, dialogs, clip_h264, clip_noaudio, tmp_path):
    app = open_app(dataclasses.replace(settings, max_frames_per_video=5))
    upload_id = submit_file(app, clip_h264).upload_id
    waiting = submit_file(app, clip_noaudio).upload_id
    assert pipeline.process_now(app, upload_id, process_owner("test")) == lifecycle.DONE
    app.close()
    qtbot.waitUntil(lambda: status_of(window, upload_id) == lifecycle.DONE
                    and status_of(window, waiting) == lifecycle.QUEUED, timeout=5000)
    menus = [a.text() for a in window.menuBar().actions()]
    assert menus[-2:] == ["&Results", "&Help"]
    assert not window.acts["sheet"].isEnabled()  # nothing selected
    assert window.select_upload(waiting)
    assert not window.acts["sheet"].isEnabled()  # still queued: no sheet yet
    assert window.select_upload(upload_id)
    assert window.acts["sheet"].isEnabled()

    dialogs.save_to = tmp_path / "out" / "pier sheet"  # no suffix: .jpg is added
    window.acts["sheet"].trigger()
    assert dialogs.asked[-1] == ("Save contact sheet",
                                 str(settings.home / "sheets" / f"clip (id {upload_id}).jpg"))
    qtbot.waitUntil(lambda: "Contact sheet saved" in window.statusBar().currentMessage(),
                    timeout=10000)
    path = tmp_path / "out" / "pier sheet.jpg"
    assert str(path) in window.statusBar().currentMessage()
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.width > 4 * 320
    assert not [s for s in dialogs.shown if s[0] == "error"]


class UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_a_new_morning_report_notifies_and_opens(qtbot, window, settings):
    qtbot.waitUntil(lambda: window.results.checked, timeout=5000)
    assert not window.acts["report"].isEnabled() and window.tray.shown == []
    app = open_app(settings)
    path = report.write_report(app, start=datetime(2025, 3, 4, 22, tzinfo=UTC),
                               end=datetime(2025, 3, 5, 6, tzinfo=UTC),
                               now=datetime(2025, 3, 5, 6, tzinfo=UTC)).path
    app.close()
    window.results.check_reports()
    qtbot.waitUntil(lambda: window.acts["report"].isEnabled(), timeout=5000)
    assert window.tray.shown == [("Morning report ready", "Off-peak window of 2025-03-04: "
                                  "Results > Open latest morning report")]
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        window.acts["report"].trigger()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert catcher.urls == [QUrl.fromLocalFile(str(path))]
    window.results.check_reports()  # the same report again: no second notification
    qtbot.waitUntil(lambda: window.runner.pending == 0, timeout=5000)
    assert len(window.tray.shown) == 1
