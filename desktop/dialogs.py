"""Confirmations and messages through one small service, so logic is testable without modals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget


class Dialogs:
    """The real thing: modal message boxes."""

    def confirm(self, parent: QWidget | None, title: str, text: str) -> bool:
        answer = QMessageBox.question(parent, title, text,
                                      QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def error(self, parent: QWidget | None, title: str, text: str) -> None:
        QMessageBox.warning(parent, title, text)

    def info(self, parent: QWidget | None, title: str, text: str) -> None:
        QMessageBox.information(parent, title, text)

    def save_path(self, parent: QWidget | None, title: str, suggested: Path,
                  filters: str) -> Path | None:
        """Where to save a file; None when the operator cancels."""
        name, _ = QFileDialog.getSaveFileName(parent, title, str(suggested), filters)
        return Path(name) if name else None


class ScriptedDialogs(Dialogs):
    """For tests and the screenshot mode: answers given up front, every question recorded."""

    def __init__(self, answer: bool = True, save_to: Path | None = None) -> None:
        self.answer = answer
        self.save_to = save_to
        self.asked: list[tuple[str, str]] = []
        self.shown: list[tuple[str, str, str]] = []

    def confirm(self, parent: Any, title: str, text: str) -> bool:
        self.asked.append((title, text))
        return self.answer

    def error(self, parent: Any, title: str, text: str) -> None:
        self.shown.append(("error", title, text))

    def info(self, parent: Any, title: str, text: str) -> None:
        self.shown.append(("info", title, text))

    def save_path(self, parent: Any, title: str, suggested: Path, filters: str) -> Path | None:
        self.asked.append((title, str(suggested)))
        return self.save_to
