"""User text (file names, error messages, labels) shown literally, never as rich text.

Qt guesses: a QLabel, tooltip or message box whose text looks like HTML is rendered as
HTML, so a file named ``<img src=...>.mp4`` would load a local image. Labels that show
user text are plain-text labels; tooltips are rich text by nature, so user text goes
into them escaped; in rich labels, user text is escaped with :func:`escape`.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtWidgets import QLabel, QMessageBox


def escape(text: object) -> str:
    """``text`` for insertion into rich text (a label or message that also has markup)."""
    return html.escape("" if text is None else str(text))


def tooltip(text: object) -> str:
    """A tooltip that shows ``text`` as it is, line breaks kept."""
    return GuiQt.convertFromPlainText("" if text is None else str(text))


def plain_label(label: QLabel) -> QLabel:
    """Make ``label`` show its text literally."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def message_box(icon: QMessageBox.Icon, parent, title: str, text: str,
                buttons: QMessageBox.StandardButton = QMessageBox.StandardButton.Ok,
                default: QMessageBox.StandardButton = QMessageBox.StandardButton.NoButton
                ) -> QMessageBox:
    """A QMessageBox whose text is plain (the static helpers guess, and may render HTML)."""
    box = QMessageBox(icon, title, text, buttons, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    if default != QMessageBox.StandardButton.NoButton:
        box.setDefaultButton(default)
    return box
