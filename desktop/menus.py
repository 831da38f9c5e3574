"""The main window's actions: toolbar, menus, context menu and keyboard shortcuts.

What each action does lives in :mod:`core.operations` and the window's slots; which
uploads it applies to is :data:`desktop.actions.ALLOWED`.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QMainWindow,
    QMenu,
    QSizePolicy,
    QStyle,
    QToolButton,
    QWidget,
)

from core import errors, operations
from core.store import lifecycle

Window = QMainWindow
"""The console's main window (:class:`desktop.app.MainWindow`, which calls this module): named
by its Qt base so this module does not import the window back."""


def _action(window: Window, name: str, text: str, slot: Any, shortcut: str | None = None,
            icon: QStyle.StandardPixmap | None = None, tip: str = "") -> QAction:
    action = QAction(text, window)
    if icon is not None:
        action.setIcon(window.style().standardIcon(icon))
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.setToolTip(f"{tip or text} ({shortcut})" if shortcut else (tip or text))
    action.triggered.connect(slot)
    window.addAction(action)
    window.acts[name] = action
    return action


def build_actions(window: Window) -> None:
    """Create the actions, the toolbar and the menu bar of ``window``."""
    window.acts = {}
    sp = QStyle.StandardPixmap

    def a(*args: Any, **kwargs: Any) -> QAction:
        return _action(window, *args, **kwargs)

    a("add", "Add videos…", window.pick_files, "Ctrl+O", sp.SP_FileDialogNewFolder)
    a("add_folder", "Add a folder…", window.pick_folder, "Ctrl+Shift+O")
    a("retry", "Retry", lambda: window.run_on_selection("retry", operations.retry), "Ctrl+R",
      sp.SP_BrowserReload)
    a("retry_failed", "Retry all failed", lambda: window.retry_all_failed(None),
      "Ctrl+Shift+R")
    a("reprocess", "Reprocess", lambda: window.run_on_selection("reprocess",
                                                              operations.reprocess),
      "Ctrl+Shift+E", tip="Drop frames and labels, process again from the stored video")
    a("reanalyse", "Re-analyse", lambda: window.run_on_selection("reanalyse",
                                                               operations.analyze),
      "Ctrl+Shift+A", tip="Keep the frames, analyse them again")
    a("cancel", "Cancel", lambda: window.run_on_selection("cancel", operations.cancel),
      "Ctrl+Shift+X", sp.SP_BrowserStop)
    a("offpeak", "Move to off-peak", lambda: window.run_on_selection(
        "offpeak", operations.set_mode, lifecycle.MODE_OFFPEAK), "Ctrl+Shift+D")
    a("now", "Process now", lambda: window.run_on_selection(
        "now", operations.set_mode, lifecycle.MODE_NOW), "Ctrl+Shift+N", sp.SP_MediaPlay)
    a("reset_stuck", "Reset stuck", lambda: window.write(operations.reset_stuck),
      tip="Return uploads whose worker is gone (lease expired or process dead)")
    a("delete", "Delete…", window.delete_selected, "Del", sp.SP_TrashIcon)
    a("copy", "Copy details", window.copy_details, "Ctrl+C")
    a("settings", "Settings…", window.open_settings, "Ctrl+,")
    a("refresh", "Refresh", window.poll, "F5")
    a("about", "About PeakOps", window.about)
    retry_menu = QMenu(window)
    retry_menu.addAction("All failed", lambda: window.retry_all_failed(None))
    for category in errors.CATEGORIES:
        retry_menu.addAction(f"Failed with {category} errors",
                             lambda c=category: window.retry_all_failed(c))
    window.acts["retry_failed"].setMenu(retry_menu)
    reprocess_menu = QMenu(window)
    for selection, what in (("even", "the middle of each slice"),
                            ("sharpest", "the sharpest frame of each slice"),
                            ("coverage", "more frames where the picture changes")):
        reprocess_menu.addAction(f"Reprocess taking {what} ({selection})",
                                 lambda s=selection: window.run_on_selection(
                                     "reprocess", operations.reprocess, s))
    window.acts["reprocess"].setMenu(reprocess_menu)
    add_menu = QMenu(window)
    add_menu.addAction(window.acts["add"])
    add_menu.addAction(window.acts["add_folder"])
    window.acts["add"].setMenu(add_menu)

    bar = window.addToolBar("Main")
    bar.setObjectName("toolbar-main")
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    bar.addAction(window.acts["add"])
    window.mode_box = QComboBox()
    window.mode_box.addItem("Process now", lifecycle.MODE_NOW)
    window.mode_box.addItem("Off-peak", lifecycle.MODE_OFFPEAK)
    window.mode_box.setToolTip("How newly added videos are processed")
    bar.addWidget(window.mode_box)
    bar.addSeparator()
    for name in ("retry", "retry_failed", "reprocess", "reanalyse", "cancel", "offpeak",
                 "now", "delete"):
        bar.addAction(window.acts[name])
    spacer = QWidget()
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    bar.addWidget(spacer)
    bar.addWidget(window.filters.search)
    for name in ("add", "retry_failed", "reprocess"):
        button = bar.widgetForAction(window.acts[name])
        if isinstance(button, QToolButton):
            button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
    menu = window.menuBar()
    file_menu = menu.addMenu("&File")
    for name in ("add", "add_folder", "settings"):
        file_menu.addAction(window.acts[name])
    file_menu.addAction("Quit", QKeySequence.StandardKey.Quit, window.close)
    uploads = menu.addMenu("&Uploads")
    for name in ("retry", "retry_failed", "reprocess", "reanalyse", "cancel", "offpeak",
                 "now", "reset_stuck", "delete", "copy", "refresh"):
        uploads.addAction(window.acts[name])
    view_menu = menu.addMenu("&View")
    for dock in window.docks.values():
        view_menu.addAction(dock.toggleViewAction())
    menu.addMenu("&Help").addAction(window.acts["about"])
    window.update_actions()


def show_context_menu(window: Window, pos: Any) -> None:
    menu = QMenu(window)
    for name in ("retry", "reprocess", "reanalyse", "cancel", "offpeak", "now", "delete"):
        if window.acts[name].isEnabled():
            menu.addAction(window.acts[name])
    menu.addSeparator()
    menu.addAction(window.acts["copy"])
    menu.addAction(window.acts["retry_failed"])
    menu.popup(window.view.viewport().mapToGlobal(pos))
