"""The main window: uploads table, filter bar, actions, details/worker/schedule docks."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QStyle,
    QTableView,
    QVBoxLayout,
    QWidget,
)

import core
from core import operations
from core.app import QueueSender
from core.config import Settings, default_config_path
from core.store import lifecycle
from desktop import actions, service
from desktop.add_videos import AddVideosBatch, AddVideosDialog
from desktop.details import DetailsPane
from desktop.dialogs import Dialogs
from desktop.filter_bar import FilterBar
from desktop.menus import build_actions, show_context_menu
from desktop.models import COLUMN_KEYS, F, UploadsFilter, UploadsModel, poll_uploads
from desktop.results import ResultsActions
from desktop.schedule_panel import (
    SchedulePanel,
    load_state,
    write_pause,
    write_resume,
    write_run_now,
)
from desktop.settings_dialog import SettingsDialog
from desktop.tasks import TaskRunner
from desktop.tray import Notifier, Tray
from desktop.worker_panel import WorkerPanel, load_workers

logger = logging.getLogger(__name__)

POLL_MS = 1000


class MainWindow(QMainWindow):
    uploads_loaded = Signal()  # after every applied poll

    def __init__(self, settings: Settings, *, dialogs: Dialogs | None = None,
                 start_worker: bool = False, remember_ui: bool = True,
                 send_queued: QueueSender | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.dialogs = dialogs or Dialogs()
        self.runner = TaskRunner(settings, self, send_queued=send_queued)
        self.start_worker = start_worker
        self.service_proc: subprocess.Popen | None = None
        self.polling = self.first_load_done = False
        self.ticks = 0
        self.add_batches: list[AddVideosBatch] = []
        self.notifier = Notifier()
        self.setWindowTitle(f"PeakOps console — {settings.home}")
        self.setAcceptDrops(True)
        self.resize(1440, 900)

        self.model = UploadsModel(self)
        self.proxy = UploadsFilter(self)
        self.proxy.setSourceModel(self.model)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setSortingEnabled(True)
        self.view.horizontalHeader().setSortIndicator(0, Qt.SortOrder.DescendingOrder)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(24)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(lambda pos: show_context_menu(self, pos))
        self.view.selectionModel().selectionChanged.connect(self.on_selection)
        header = self.view.horizontalHeader()
        header.setStretchLastSection(True)
        for key, width in (("id", 50), ("original_name", 220), ("status", 95), ("mode", 70),
                           ("stage", 110), ("attempts", 65), ("size", 75), ("duration", 70),
                           ("error_category", 80), ("created_at", 125), ("finished_at", 125)):
            header.resizeSection(COLUMN_KEYS.index(key), width)

        self.filters = FilterBar()
        self.filters.statuses_changed.connect(self.proxy.set_statuses)
        self.filters.text_changed.connect(self.proxy.set_text)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filters)
        layout.addWidget(self.view)
        self.setCentralWidget(central)

        self.details = DetailsPane(self.runner)
        self.worker_panel = WorkerPanel()
        self.worker_panel.start_requested.connect(self.start_service)
        self.worker_panel.stop_requested.connect(self.stop_service)
        self.schedule_panel = SchedulePanel(settings)
        self.schedule_panel.pause_requested.connect(
            lambda: self.write(write_pause, then=self.poll_schedule))
        self.schedule_panel.resume_requested.connect(
            lambda: self.write(write_resume, then=self.poll_schedule))
        self.schedule_panel.run_now_requested.connect(
            lambda until: self.write(write_run_now, until, then=self.poll_schedule))
        self.docks = {}
        for name, title, widget, area in (
                ("details", "Details", self.details, Qt.DockWidgetArea.RightDockWidgetArea),
                ("worker", "Worker", self.worker_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
                ("schedule", "Off-peak schedule", self.schedule_panel,
                 Qt.DockWidgetArea.BottomDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock-{name}")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[name] = dock
        self.resizeDocks([self.docks["details"]], [520], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["worker"]], [240], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["worker"], self.docks["schedule"]], [900, 500],
                         Qt.Orientation.Horizontal)

        self.icon = self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
        self.setWindowIcon(self.icon)
        build_actions(self)
        self.tray = Tray(self, self.icon)
        self.results = ResultsActions(self)
        # Window geometry, docks and columns, per home folder (so tests never share them).
        self.ui_state = QSettings(str(settings.home / "console.ini"), QSettings.Format.IniFormat)
        self.remember_ui = remember_ui
        if remember_ui:
            self.restore_ui()

        self.timer = QTimer(self)
        self.timer.timeout.connect(self.poll)
        self.timer.start(POLL_MS)
        self.clock = QTimer(self)
        self.clock.timeout.connect(self.schedule_panel.tick)
        self.clock.start(1000)
        self.poll()
        self.poll_schedule()

    # -- actions ------------------------------------------------------------------------

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.view.selectionModel().selectedRows()})
        return self.proxy.ids(rows)

    def selected_statuses(self) -> set[str]:
        return {r[F["status"]] for i in self.selected_ids()
                if (r := self.model.row_by_id(i)) is not None}

    def update_actions(self) -> None:
        statuses = self.selected_statuses()
        for name in actions.ALLOWED:
            self.acts[name].setEnabled(actions.applicable(name, statuses))
        self.acts["copy"].setEnabled(bool(statuses))
        self.acts["retry_failed"].setEnabled(self.model.counts.get(lifecycle.FAILED, 0) > 0)

    def write(self, fn: Any, *args: Any, then: Any = None) -> None:
        def done(result: Any) -> None:
            if isinstance(result, operations.Outcome):
                self.statusBar().showMessage(result.summary(), 8000)
                if result.refused:
                    self.dialogs.error(self, "Not possible for every upload",
                                       "\n".join(f"{i}: {m}" for i, m in result.refused[:10]))
            (then or self.poll)()
        self.runner.write(fn, *args, on_result=done, on_error=lambda exc: self.dialogs.error(
            self, "Action failed", str(exc)))

    def run_on_selection(self, name: str, fn: Any, *extra: Any) -> None:
        ids = [i for i in self.selected_ids()
               if (r := self.model.row_by_id(i)) and r[F["status"]] in actions.ALLOWED[name]]
        if ids:
            self.write(fn, ids, *extra)

    def retry_all_failed(self, category: str | None) -> None:
        self.write(actions.retry_all_failed, category)

    def delete_selected(self) -> None:
        ids = [i for i in self.selected_ids()
               if (r := self.model.row_by_id(i)) and r[F["status"]] in actions.ALLOWED["delete"]]
        if ids and self.dialogs.confirm(
                self, "Delete uploads",
                f"Delete {len(ids)} upload(s) with their frames, labels, activity and stored "
                "files? This cannot be undone."):
            self.write(operations.delete, ids)

    def copy_details(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.runner.read(actions.details_text, ids,
                             on_result=lambda text: QApplication.clipboard().setText(text))

    # -- adding videos ------------------------------------------------------------------

    def pick_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add videos", str(Path.home()),
                                                "Videos (*.mp4 *.mov *.m4v *.mkv *.avi *.webm"
                                                " *.mts *.mpg *.ts);;All files (*)")
        if files:
            self.add_paths([Path(f) for f in files])

    def pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of videos", str(Path.home()))
        if folder:
            self.add_paths([Path(folder)])

    def add_paths(self, paths: list[Path]) -> AddVideosBatch:
        """The one way files come in: the picker, the folder picker and drag-and-drop."""
        batch = AddVideosBatch(self.runner, paths, self.mode_box.currentData(), self)
        dialog = AddVideosDialog(batch, self)
        batch.file_done.connect(lambda _r: self.poll())
        batch.finished.connect(lambda: self.add_batches.remove(batch)
                               if batch in self.add_batches else None)
        self.add_batches.append(batch)
        dialog.show()
        batch.start()
        self.last_batch, self.last_add_dialog = batch, dialog
        return batch

    def dragEnterEvent(self, event: Any) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    # -- refresh ------------------------------------------------------------------------

    def poll(self) -> None:
        if self.polling:
            return
        self.polling = True
        self.runner.read(poll_uploads, self.model.last_seen, self.model.known(),
                         on_result=self.apply_changes, on_error=self._poll_failed)
        self.runner.read(load_workers, on_result=self.on_workers, on_error=self._poll_failed)
        self.ticks += 1
        if self.ticks % 5 == 0:
            self.poll_schedule()

    def _poll_failed(self, exc: Exception) -> None:
        self.polling = False  # the next tick tries again
        self.statusBar().showMessage(f"Could not read the state database: {exc}", 5000)

    def apply_changes(self, changes: Any) -> None:
        self.polling = False
        selected = self.details.upload_id
        before = self.model.row_by_id(selected) if selected is not None else None
        transitions = self.model.apply(changes)
        self.first_load_done = True
        self.filters.set_counts(self.model.counts)
        self.update_actions()
        if selected is not None and self.model.row_by_id(selected) != before:
            self.details.reload()
        names = {i: r[F["original_name"]] for i, _, _ in transitions
                 if (r := self.model.row_by_id(i))}
        active = sum(self.model.counts.get(s, 0) for s in lifecycle.ACTIVE)
        for title, text in self.notifier.feed(transitions, active, names):
            self.tray.notify(title, text)
        self.uploads_loaded.emit()

    def on_selection(self, *_: Any) -> None:
        ids = self.selected_ids()
        self.details.show_upload(ids[0] if len(ids) == 1 else (ids[0] if ids else None))
        self.update_actions()

    def select_upload(self, upload_id: int) -> bool:
        i = self.model.pos.get(upload_id)
        if i is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(i, 0))
        if not index.isValid():
            return False
        self.view.selectRow(index.row())
        self.view.scrollTo(index)
        return True

    def poll_schedule(self) -> None:
        self.runner.read(load_state, on_result=self.schedule_panel.update_state,
                         on_error=self._poll_failed)

    # -- worker service -----------------------------------------------------------------

    def on_workers(self, data: Any) -> None:
        self.worker_panel.update_from(data)
        if self.start_worker and service.running_worker(data[0]) is None:
            self.start_service()
        self.start_worker = False

    def start_service(self) -> None:
        if self.service_proc is not None and self.service_proc.poll() is None:
            return
        self.statusBar().showMessage("Starting the worker service…", 5000)
        self.runner.call(service.start_service, self.settings,
                         on_result=lambda proc: setattr(self, "service_proc", proc),
                         on_error=lambda exc: self.dialogs.error(
                             self, "Worker service", f"Could not start it: {exc}"))

    def stop_service(self) -> None:
        w = self.worker_panel.worker
        if self.service_proc is not None and self.service_proc.poll() is None:
            self.service_proc.terminate()
            self.statusBar().showMessage("Asked the worker service to stop", 5000)
        elif w is not None:
            self.statusBar().showMessage(service.stop_pid(w["pid"], w["host"]), 8000)

    # -- settings, about, state ---------------------------------------------------------

    def open_settings(self) -> None:
        path = self.settings.config_file or default_config_path()
        dialog = SettingsDialog(self.settings, path, self)
        if dialog.exec() and dialog.saved is not None:
            self.schedule_panel.set_settings(dialog.saved)
            self.statusBar().showMessage(f"Settings saved to {path}; restart the worker", 8000)

    def about(self) -> None:
        QMessageBox.about(self, "About PeakOps",
                          f"<b>PeakOps</b> {core.__version__}<br>Frames and labels from "
                          "inspection videos, inside a memory budget.<br>"
                          f"Home: {self.settings.home}")

    def restore_ui(self) -> None:
        s = self.ui_state
        if isinstance(geometry := s.value("geometry"), QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state := s.value("state"), QByteArray):
            self.restoreState(state)
        if isinstance(header := s.value("columns"), QByteArray):
            self.view.horizontalHeader().restoreState(header)

    def save_ui(self) -> None:
        self.ui_state.setValue("geometry", self.saveGeometry())
        self.ui_state.setValue("state", self.saveState())
        self.ui_state.setValue("columns", self.view.horizontalHeader().saveState())
        self.ui_state.sync()

    def closeEvent(self, event: Any) -> None:
        if self.remember_ui:
            self.save_ui()
        self.timer.stop()
        self.clock.stop()
        for batch in self.add_batches:
            batch.cancel()
        if self.service_proc is not None and self.service_proc.poll() is None:
            self.service_proc.terminate()  # we started it, we stop it
        self.tray.hide()
        self.runner.shutdown()
        super().closeEvent(event)

