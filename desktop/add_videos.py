"""Adding videos: expand dropped/picked paths, submit each file off the UI thread.

Every file goes through :func:`core.operations.submit` (size cap, probe, duplicate
check) as its own write task, so other writes can run between files. Rejected files
are listed with the reason. Cancelling skips the files not started yet and interrupts
the copy in progress (core records that upload as FAILED, "submission interrupted").
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from core import operations
from core.app import App
from core.errors import PeakOpsError
from core.intake import display_name
from core.store import lifecycle
from desktop.models import human_size
from desktop.plain import tooltip
from desktop.tasks import TaskRunner

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mts", ".m2ts", ".ts",
                  ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".h264", ".hevc"}
"""Inside dropped folders only these are taken; files picked one by one are all tried."""


class SubmitCancelled(BaseException):
    """Raised from the progress callback to stop a copy (BaseException: core cleans up)."""


@dataclass
class FileResult:
    index: int
    name: str
    ok: bool
    text: str
    upload_id: int | None = None
    status: str | None = None


def expand_paths(paths: list[Path]) -> list[tuple[Path, int]]:
    """Files with their sizes: given files as they are, folders walked for videos."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found += [Path(root) / f for f in sorted(files)
                          if Path(f).suffix.lower() in VIDEO_SUFFIXES]
        else:
            found.append(path)
    result = []
    for path in found:
        try:
            result.append((path, path.stat().st_size))
        except OSError:
            result.append((path, 0))
    return result


class AddVideosBatch(QObject):
    """One drop or pick: a list of files submitted one after another."""

    expanded = Signal(list)           # [(path, size)]
    progress = Signal(int, int)       # file index, bytes done
    file_done = Signal(object)        # FileResult
    finished = Signal()

    def __init__(self, runner: TaskRunner, paths: list[Path], mode: str,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner, self.paths, self.mode = runner, paths, mode
        self.files: list[tuple[Path, int]] = []
        self.results: list[FileResult] = []
        self.cancelled = False
        self.queued_ids: list[int] = []

    def start(self) -> None:
        self.runner.call(expand_paths, self.paths, on_result=self._expanded,
                         on_error=lambda exc: self._expanded([]))

    def cancel(self) -> None:
        self.cancelled = True

    def _expanded(self, files: list[tuple[Path, int]]) -> None:
        self.files = files
        self.expanded.emit(files)
        if not files:
            self.finished.emit()
        for index, (path, _size) in enumerate(files):
            self.runner.write(self._submit_one, index, path, on_result=self._done,
                              on_error=lambda exc, i=index, p=path: self._done(
                                  FileResult(i, display_name(p), False, f"error: {exc}")))

    def _submit_one(self, app: App, index: int, path: Path) -> FileResult:
        """Runs on the write thread."""
        name = display_name(path)
        if self.cancelled:
            return FileResult(index, name, False, "cancelled before it started")
        done = 0

        def on_progress(delta: int) -> None:
            nonlocal done
            if self.cancelled:
                raise SubmitCancelled
            done += delta
            self.progress.emit(index, done)

        try:
            result = operations.submit(app, path, off_peak=self.mode == lifecycle.MODE_OFFPEAK,
                                       on_progress=on_progress)
        except SubmitCancelled:
            return FileResult(index, name, False, "cancelled during the copy")
        except PeakOpsError as exc:
            return FileResult(index, name, False, f"rejected ({exc.category}): {exc}",
                              upload_id=exc.upload_id)
        if result.duplicate:
            return FileResult(index, name, True, f"already there: upload {result.upload_id} "
                              f"({result.status})", result.upload_id, result.status)
        return FileResult(index, name, True, f"upload {result.upload_id}: {result.status}",
                          result.upload_id, result.status)

    def _done(self, result: FileResult) -> None:
        self.results.append(result)
        self.file_done.emit(result)
        if len(self.results) == len(self.files):
            self.finished.emit()

    @property
    def rejected(self) -> list[FileResult]:
        return [r for r in self.results if not r.ok]


class AddVideosDialog(QDialog):
    """Per-file and overall progress (bytes and percent), results and a Cancel button."""

    def __init__(self, batch: AddVideosBatch, parent: Any = None) -> None:
        super().__init__(parent)
        self.batch = batch
        mode = "off-peak" if batch.mode == lifecycle.MODE_OFFPEAK else "process now"
        self.setWindowTitle(f"Adding videos ({mode})")
        self.resize(760, 360)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["File", "Size", "Progress", "Result"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.overall = QProgressBar()
        self.overall_label = QLabel("Looking at the files…")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.on_cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        buttons.addWidget(self.overall_label, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.overall)
        layout.addLayout(buttons)
        self.sizes: list[int] = []
        self.done_bytes: list[int] = []
        self.bars: list[QProgressBar] = []
        batch.expanded.connect(self.on_expanded)
        batch.progress.connect(self.on_progress)
        batch.file_done.connect(self.on_file_done)
        batch.finished.connect(self.on_finished)

    def on_expanded(self, files: list[tuple[Path, int]]) -> None:
        self.table.setRowCount(len(files))
        self.sizes = [size for _, size in files]
        self.done_bytes = [0] * len(files)
        for row, (path, size) in enumerate(files):
            self.table.setItem(row, 0, QTableWidgetItem(display_name(path)))
            self.table.setItem(row, 1, QTableWidgetItem(human_size(size)))
            bar = QProgressBar()
            bar.setRange(0, 100)
            self.table.setCellWidget(row, 2, bar)
            self.bars.append(bar)
            self.table.setItem(row, 3, QTableWidgetItem("waiting"))
        if not files:
            self.overall_label.setText("No video files found there.")
        self._update_overall()

    def on_progress(self, index: int, done: int) -> None:
        if index >= len(self.bars):
            return
        self.done_bytes[index] = done
        size = self.sizes[index] or 1
        self.bars[index].setValue(min(100, done * 100 // size))
        self._update_overall()

    def on_file_done(self, result: FileResult) -> None:
        if result.index >= len(self.bars):
            return
        self.done_bytes[result.index] = self.sizes[result.index]  # dealt with, either way
        if result.ok:
            self.bars[result.index].setValue(100)
        item = QTableWidgetItem(result.text)
        item.setToolTip(tooltip(result.text))
        if not result.ok:
            item.setForeground(Qt.GlobalColor.red)
        self.table.setItem(result.index, 3, item)
        self._update_overall()

    def _update_overall(self) -> None:
        total = sum(self.sizes) or 1
        done = sum(self.done_bytes)
        percent = min(100, done * 100 // total)
        self.overall.setValue(percent)
        finished = len(self.batch.results)
        self.overall_label.setText(
            f"{finished} of {len(self.sizes)} files · {human_size(done)} of "
            f"{human_size(sum(self.sizes))} ({percent}%)")

    def on_cancel(self) -> None:
        self.batch.cancel()
        self.cancel_button.setEnabled(False)

    def on_finished(self) -> None:
        self.cancel_button.setEnabled(False)
        rejected = len(self.batch.rejected)
        added = len(self.batch.results) - rejected
        self.overall_label.setText(f"Done: {added} added, {rejected} not added"
                                   + (" (see Result)" if rejected else ""))
