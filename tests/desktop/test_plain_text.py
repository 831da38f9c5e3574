"""File names and messages are shown as the text they are, never rendered as HTML."""

from __future__ import annotations

import shutil

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QMessageBox

from core.app import open_app
from core.errors import InputError
from core.intake import submit_file
from core.store import lifecycle
from desktop.models import COLUMN_KEYS, TOOLTIP

NAME = "<h1><font color=#00a000>APPROVED<img src=seal.png> & co.mp4"


def shown(tip: str) -> str:
    """What Qt displays for a tooltip (tooltips that look like HTML are rendered)."""
    if not GuiQt.mightBeRichText(tip):
        return tip
    document = QTextDocument()
    document.setHtml(tip)
    return document.toPlainText()


def label_shows(label) -> str:
    """A label's text as Qt displays it: rendered when the format says rich, or when it
    is AutoText (the default) and the text looks like HTML."""
    text, fmt = label.text(), label.textFormat()
    if fmt == Qt.TextFormat.PlainText or (fmt == Qt.TextFormat.AutoText
                                         and not GuiQt.mightBeRichText(text)):
        return text
    document = QTextDocument()
    document.setHtml(text)
    return document.toPlainText()


def test_details_title_tooltips_and_table_show_a_hostile_name_literally(
        qtbot, window, settings, clip_h264, tmp_path):
    hostile = tmp_path / NAME
    shutil.copyfile(clip_h264, hostile)
    (tmp_path / "seal.png").write_bytes(b"not really a picture")
    app = open_app(settings)
    upload_id = submit_file(app, hostile).upload_id
    lifecycle.fail(app.db, upload_id, InputError(f"{NAME}: <b>not</b> a video"),
              status=lifecycle.FAILED)
    app.close()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5000)

    window.view.selectRow(0)
    details = window.details
    qtbot.waitUntil(lambda: details.detail is not None, timeout=5000)
    assert label_shows(details.title) == f"{NAME}  ·  upload {upload_id}"
    assert f"{NAME}: <b>not</b> a video" in label_shows(details.error)
    submitted = details.events.topLevelItem(0)
    assert NAME in shown(submitted.toolTip(2))

    model = window.model
    name_column = COLUMN_KEYS.index("original_name")
    assert shown(model.data(model.index(0, name_column), TOOLTIP)) == NAME

def test_message_boxes_are_plain_text(qtbot):
    from desktop.plain import message_box

    box = message_box(QMessageBox.Icon.Question, None, "Cancel?", f"Cancel {NAME}?")
    qtbot.addWidget(box)
    assert box.textFormat() == Qt.TextFormat.PlainText and box.text() == f"Cancel {NAME}?"
