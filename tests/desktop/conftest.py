"""Console tests run real widgets offscreen; set the platform before any Qt import."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from desktop.dialogs import ScriptedDialogs  # noqa: E402
from tests.helpers import make_settings  # noqa: E402


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def settings(home):
    return make_settings(home)


@pytest.fixture
def dialogs():
    return ScriptedDialogs(answer=True)


@pytest.fixture
def window(qtbot, settings, dialogs):
    from batch.queue import sender  # as `peakops console` wires it
    from desktop.app import MainWindow
    win = MainWindow(settings, dialogs=dialogs, send_queued=sender(settings))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.first_load_done and win.worker_panel.loaded, timeout=10000)
    yield win
    win.close()
