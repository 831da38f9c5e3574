"""Two consoles on operators' desktops sharing a fleet's PostgreSQL database and S3
bucket: each shows every worker with its host, and a retry, a cancel or a pause taken in
one is seen in the other (the actions go through core, which runs on either database)."""

from __future__ import annotations

import pytest

from core.app import open_app
from core.errors import StorageError
from core.intake import submit_file
from core.store import heartbeat, lifecycle, state
from desktop.schedule_panel import PAUSE_AFTER_CURRENT
from desktop.worker_panel import FLEET_COLUMNS
from tests.desktop.test_console_actions import status_of
from tests.helpers import make_settings
from tests.s3server import aws_env, moto_endpoint, new_bucket  # noqa: F401


@pytest.fixture
def fleet_settings(tmp_path, postgres_url, moto_endpoint, monkeypatch):  # noqa: F811
    for name, value in aws_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    bucket = new_bucket(moto_endpoint, "console")
    return lambda home: make_settings(
        tmp_path / home, database_url=postgres_url, storage="s3", s3_bucket=bucket,
        s3_endpoint_url=moto_endpoint, aws_region="us-east-1")


def console(qtbot, settings, dialogs):
    from desktop.app import MainWindow
    win = MainWindow(settings, dialogs=dialogs)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.first_load_done and win.worker_panel.loaded, timeout=10000)
    return win


def fleet_cells(window) -> dict[str, dict[str, str]]:
    tree = window.worker_panel.fleet
    rows = (tree.topLevelItem(i) for i in range(tree.topLevelItemCount()))
    return {row.text(0): {col: row.text(n) for n, col in enumerate(FLEET_COLUMNS)}
            for row in rows}


def test_two_consoles_see_every_worker_and_each_other_s_actions(qtbot, fleet_settings,
                                                                 dialogs, clip_h264):
    first, second = fleet_settings("desk-a"), fleet_settings("desk-b")
    app = open_app(first)
    try:
        upload_id = submit_file(app, clip_h264).upload_id  # stored in the shared bucket
        lifecycle.claim(app.db, upload_id, "worker@rig-a:7", lease_seconds=60)
        lifecycle.fail(app.db, upload_id, StorageError("bucket unreachable"),
                  owner="worker@rig-a:7", status=lifecycle.FAILED)
        heartbeat.beat(app.db, "worker@rig-a:7", pid=7, host="rig-a", state="idle",
                       rss_kib=81920, peak_kib=102400)
        heartbeat.beat(app.db, "worker@rig-b:9", pid=9, host="rig-b", state="busy",
                       upload_id=upload_id, rss_kib=40960, peak_kib=40960)
    finally:
        app.close()
    one, two = console(qtbot, first, dialogs), console(qtbot, second, dialogs)
    try:
        for window in (one, two):
            qtbot.waitUntil(lambda w=window: len(fleet_cells(w)) == 2, timeout=5000)
            cells = fleet_cells(window)
            assert {c["Host"] for c in cells.values()} == {"rig-a", "rig-b"}
            assert cells["worker@rig-a:7"]["Memory"] == "80 MB (peak 100)"
            assert cells["worker@rig-b:9"]["State"] == "running — busy"
            assert cells["worker@rig-b:9"]["Job"] == f"upload {upload_id}"
        qtbot.waitUntil(lambda: status_of(two, upload_id) == "FAILED", timeout=5000)
        assert one.select_upload(upload_id)
        one.acts["retry"].trigger()  # retried on one desk ...
        qtbot.waitUntil(lambda: status_of(two, upload_id) == "QUEUED", timeout=10000)
        assert two.select_upload(upload_id)  # ... seen and cancelled on the other
        qtbot.waitUntil(lambda: two.acts["cancel"].isEnabled(), timeout=5000)
        two.acts["cancel"].trigger()
        qtbot.waitUntil(lambda: status_of(one, upload_id) == "CANCELLED", timeout=10000)
        # A pause on one desk pauses the fleet's batch: the other console shows it.
        qtbot.waitUntil(lambda: one.schedule_panel.pause_button.isEnabled(), timeout=5000)
        one.schedule_panel.pause_button.click()
        qtbot.waitUntil(lambda: two.schedule_panel.resume_button.isEnabled(), timeout=10000)
        assert "paused until resumed" in two.schedule_panel.override.text()
        app = open_app(first)
        try:
            assert state.get(app.db, PAUSE_AFTER_CURRENT) is True
        finally:
            app.close()
    finally:
        one.close()
        two.close()
