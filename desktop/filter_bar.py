"""Status chips with counts and the text search above the uploads table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QToolButton, QWidget

from core.store.lifecycle import STATUSES as UPLOAD_STATUSES
from desktop.models import STATUS_COLOURS

ALL = "ALL"


class FilterBar(QWidget):
    statuses_changed = Signal(set)
    text_changed = Signal(str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        self.chips: dict[str, QToolButton] = {}
        for status in (ALL, *UPLOAD_STATUSES):
            chip = QToolButton()
            chip.setCheckable(True)
            chip.setChecked(status == ALL)
            chip.setAutoRaise(False)
            colour = STATUS_COLOURS.get(status, "#424242")
            chip.setStyleSheet(
                "QToolButton { border: 1px solid #bdbdbd; border-radius: 10px; "
                "padding: 2px 6px; } "
                f"QToolButton:checked {{ background: {colour}; color: white; "
                f"border-color: {colour}; }}")
            chip.clicked.connect(lambda _checked, s=status: self._chip_clicked(s))
            layout.addWidget(chip)
            self.chips[status] = chip
        layout.addStretch(1)
        # The search box sits in the main toolbar (it can overflow there); it is owned here.
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search name, id or error…")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(160)
        self.search.setMaximumWidth(280)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(200)
        self._debounce.timeout.connect(lambda: self.text_changed.emit(self.search.text()))
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self.set_counts({})

    def _chip_clicked(self, status: str) -> None:
        if status == ALL:
            for name, chip in self.chips.items():
                chip.setChecked(name == ALL)
        else:
            self.chips[ALL].setChecked(not self.selected())
        self.statuses_changed.emit(self.selected())

    def selected(self) -> set[str]:
        return {s for s, chip in self.chips.items() if s != ALL and chip.isChecked()}

    def select(self, statuses: set[str]) -> None:
        for name, chip in self.chips.items():
            chip.setChecked(name in statuses if name != ALL else not statuses)
        self.statuses_changed.emit(self.selected())

    def set_counts(self, counts: Mapping[str, int]) -> None:
        total = sum(counts.values())
        for status, chip in self.chips.items():
            n = total if status == ALL else counts.get(status, 0)
            label = "All" if status == ALL else status.capitalize()
            chip.setText(f"{label} {n}")
