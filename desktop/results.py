"""Results in the console: "Save contact sheet…", the latest morning report, and a tray
notification when a new report appears.

The sheet is made on a pool thread (:class:`desktop.tasks.TaskRunner`); the report
folder is looked at on one too, every :data:`REPORT_POLL_MS`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QMainWindow, QMenu

from core.naming import safe_name
from core.results import report
from core.results.sheet import make_sheet
from core.store import lifecycle
from desktop.models import F

logger = logging.getLogger(__name__)

REPORT_POLL_MS = 5000
SHEET_STATUSES = (lifecycle.DONE, lifecycle.FAILED, lifecycle.CANCELLED)
"""Uploads that may have frames and no longer change."""

Window = QMainWindow
"""The console's main window (:class:`desktop.app.MainWindow`, which calls this module): named
by its Qt base so this module does not import the window back."""


def _sheet(app: Any, upload_id: int, dest: Path) -> Path:
    return make_sheet(app, upload_id, dest).path


class ResultsActions(QObject):
    """Adds a Results menu to ``window`` and keeps its actions' state up to date."""

    def __init__(self, window: Window) -> None:
        super().__init__(window)
        self.window = window
        self.latest: Path | None = None
        self.checked = False  # the first look only learns what is there: no notification
        self.sheet_action = self._action("sheet", "Save contact sheet…", self.save_sheet,
                                         "One JPEG of the selected upload's frames, "
                                         "with times and labels")
        self.report_action = self._action("report", "Open latest morning report",
                                          self.open_report, "The report of the last "
                                                            "off-peak window, in a browser")
        bar = window.menuBar()
        menu = QMenu("&Results", bar)
        menu.addAction(self.sheet_action)
        menu.addAction(self.report_action)
        bar.insertMenu(bar.actions()[-1], menu)  # before Help, which stays last
        window.view.selectionModel().selectionChanged.connect(self.update)
        window.uploads_loaded.connect(self.update)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check_reports)
        self.timer.start(REPORT_POLL_MS)
        self.update()
        self.check_reports()

    def _action(self, name: str, text: str, slot: Any, tip: str) -> QAction:
        action = QAction(text, self.window)
        action.setToolTip(tip)
        action.triggered.connect(slot)
        self.window.addAction(action)
        self.window.acts[name] = action
        return action

    def _selected(self) -> tuple[int, Any] | None:
        ids = self.window.selected_ids()
        if len(ids) != 1:
            return None
        row = self.window.model.row_by_id(ids[0])
        return None if row is None else (ids[0], row)

    def update(self, *_: Any) -> None:
        selected = self._selected()
        self.sheet_action.setEnabled(selected is not None
                                     and selected[1][F["status"]] in SHEET_STATUSES)
        self.report_action.setEnabled(self.latest is not None)

    # -- contact sheet --------------------------------------------------------------

    def save_sheet(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        upload_id, row = selected
        name = safe_name(row[F["original_name"]], fallback="upload")
        suggested = self.window.settings.home / "sheets" / f"{name} (id {upload_id}).jpg"
        dest = self.window.dialogs.save_path(self.window, "Save contact sheet", suggested,
                                             "JPEG images (*.jpg *.jpeg)")
        if dest is None:
            return
        if dest.suffix.lower() not in (".jpg", ".jpeg"):
            dest = dest.with_name(dest.name + ".jpg")
        self.window.statusBar().showMessage(f"Making the contact sheet of upload {upload_id}…")
        self.window.runner.read(
            _sheet, upload_id, dest,
            on_result=lambda path: self.window.statusBar().showMessage(
                f"Contact sheet saved: {path}", 10000),
            on_error=lambda exc: self.window.dialogs.error(
                self.window, "Contact sheet", f"Could not make it: {exc}"))

    # -- morning report -------------------------------------------------------------

    def check_reports(self) -> None:
        self.window.runner.call(report.latest_report, self.window.settings.home,
                                on_result=self._on_latest)

    def _on_latest(self, path: Path | None) -> None:
        if path is not None and path != self.latest and self.checked:
            self.window.tray.notify("Morning report ready",
                                    f"Off-peak window of {path.stem}: Results > Open latest "
                                    "morning report")
        self.latest, self.checked = path, True
        self.update()

    def open_report(self) -> None:
        if self.latest is None:
            return
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.latest))):
            self.window.dialogs.error(self.window, "Morning report",
                                      f"No program could open {self.latest}")
