"""Tray icon and notifications: an upload failed, a batch finished."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from core.store import lifecycle

ACTIVE = set(lifecycle.ACTIVE)


class Notifier:
    """Turns status transitions into messages (pure; the tray only shows them).

    A batch is a run of work: it starts when something becomes active and finishes when
    nothing is active any more.
    """

    def __init__(self) -> None:
        self.busy = False
        self.done = self.failed = 0

    def feed(self, transitions: list[tuple[int, str | None, str]], active_now: int,
             names: dict[int, str]) -> list[tuple[str, str]]:
        messages = []
        for upload_id, old, new in transitions:
            if old is None:  # first sighting (initial load or a new row): no news
                if new in ACTIVE:
                    self.busy = True
                continue
            if new in ACTIVE:
                self.busy = True
            elif new == lifecycle.DONE:
                self.done += 1
            elif new == lifecycle.FAILED:
                self.failed += 1
                messages.append(("Upload failed",
                                 f"{names.get(upload_id, upload_id)} (upload {upload_id})"))
        if self.busy and active_now == 0:
            messages.append(("Batch finished", f"{self.done} done, {self.failed} failed"))
            self.busy, self.done, self.failed = False, 0, 0
        return messages


class Tray:
    def __init__(self, window: QWidget, icon: QIcon) -> None:
        self.icon: QSystemTrayIcon | None = None
        self.shown: list[tuple[str, str]] = []
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return
        self.icon = QSystemTrayIcon(icon, window)
        menu = QMenu(window)
        menu.addAction("Show console", window.showNormal)
        menu.addAction("Quit", window.close)
        self.icon.setContextMenu(menu)
        self.icon.setToolTip("PeakOps")
        self.icon.activated.connect(lambda _reason: (window.showNormal(), window.raise_()))
        self.icon.show()

    def notify(self, title: str, text: str) -> None:
        self.shown.append((title, text))
        if self.icon is not None and self.icon.supportsMessages():
            self.icon.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information, 8000)

    def hide(self) -> Any:
        if self.icon is not None:
            self.icon.hide()
