"""Worker panel, schedule panel, settings dialog, tray notifier, actions rules."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from core import operations
from core.app import open_app
from core.config import load_settings
from core.errors import StateError
from core.maintenance import delete_upload
from core.store import heartbeat, lifecycle, state
from desktop import actions
from desktop.schedule_panel import PAUSE_AFTER_CURRENT, RUN_NOW_UNTIL, countdown
from desktop.settings_dialog import SettingsDialog
from desktop.tray import Notifier
from desktop.worker_panel import worker_state


def beat(settings, **fields):
    app = open_app(settings)
    try:
        heartbeat.beat(app.db, "worker@test:1", pid=1, host="test", **fields)
        heartbeat.record_restart(app.db, "worker@test:1", "hard-limit", upload_id=7,
                                 rss_kib=52000, message="process tree reached 52000 KiB")
        heartbeat.record_restart(app.db, "worker@test:1", "tasks", message="5 jobs done")
    finally:
        app.close()


def test_worker_panel_shows_job_memory_and_restarts_by_cause(qtbot, window, settings):
    beat(settings, state="busy", upload_id=7, stage="analysing", progress_done=3,
         progress_total=20, rss_kib=204800, peak_kib=250000, soft_limit_kib=400000,
         hard_limit_kib=500000, jobs_done=4, child_starts=2)
    panel = window.worker_panel
    qtbot.waitUntil(lambda: panel.worker is not None, timeout=5000)
    assert panel.state.text().startswith("running")
    assert panel.job.text() == "upload 7 — analysing 3/20"
    assert "200 MB now" in panel.memory.text() and "hard 488 MB" in panel.memory.text()
    assert panel.restarts.text() == "hard-limit 1, tasks 1"
    assert panel.recent.topLevelItemCount() == 2
    assert panel.sparkline.samples[-1] == 204800 and panel.sparkline.hard == 500000
    assert not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    image = panel.sparkline.grab().toImage()  # paintEvent runs without error
    assert image.width() > 0


def test_a_stale_heartbeat_is_a_warning_not_running():
    row = {"state": "busy", "stale": True, "age_s": 42.0}
    text, colour = worker_state(row)
    assert text == "not responding (heartbeat 42 s old)" and colour == "#e65100"
    assert worker_state({"state": "idle", "stale": False, "age_s": 1})[0] == "running — idle"
    assert worker_state(None)[0] == "no worker has run yet"


def test_schedule_buttons_write_the_scheduler_state(qtbot, window, settings):
    panel = window.schedule_panel
    qtbot.waitUntil(lambda: "_deferred" in panel.values, timeout=5000)
    assert panel.status.text().startswith("Off-peak window")
    assert "in " in panel.change.text() or "around the clock" in panel.change.text()
    qtbot.waitUntil(lambda: panel.pause_button.isEnabled(), timeout=5000)
    panel.pause_button.click()
    qtbot.waitUntil(lambda: panel.resume_button.isEnabled(), timeout=5000)
    assert not panel.pause_button.isEnabled() and "paused until resumed" in panel.override.text()
    app = open_app(settings)
    try:
        assert state.get(app.db, PAUSE_AFTER_CURRENT) is True
    finally:
        app.close()
    panel.run_now_button.click()
    qtbot.waitUntil(lambda: panel.pause_button.isEnabled(), timeout=5000)
    app = open_app(settings)
    try:
        assert state.get(app.db, RUN_NOW_UNTIL) > time.time()
        assert state.get(app.db, PAUSE_AFTER_CURRENT) is None
    finally:
        app.close()
    assert "running now until" in panel.override.text()


def test_schedule_buttons_follow_the_pause_state(qtbot, settings):
    from desktop.schedule_panel import SchedulePanel
    panel = SchedulePanel(settings)
    qtbot.addWidget(panel)
    panel.update_state({"_deferred": 2})
    assert panel.pause_button.isEnabled() and panel.run_now_button.isEnabled()
    assert not panel.resume_button.isEnabled()
    assert "2 upload(s) waiting for off-peak" in panel.override.text()
    panel.update_state({PAUSE_AFTER_CURRENT: True, "_deferred": 2})
    assert not panel.pause_button.isEnabled() and panel.resume_button.isEnabled()


def test_schedule_text_for_a_fixed_moment(qtbot, settings):
    from desktop.schedule_panel import SchedulePanel
    panel = SchedulePanel(settings)
    qtbot.addWidget(panel)
    panel.tick(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))  # a Wednesday noon
    assert panel.status.text() == "Off-peak window closed"
    assert panel.change.text() == "opens in 10 h 00 min (Wed 22:00)"
    assert countdown(datetime(2026, 1, 2, tzinfo=UTC) - datetime(2026, 1, 1, tzinfo=UTC)) \
        == "1 d 0 h 00 min"


def test_settings_dialog_refuses_bad_values_with_core_message(qtbot, settings, tmp_path):
    path = tmp_path / "config" / "config.toml"
    dialog = SettingsDialog(settings, path)
    qtbot.addWidget(dialog)
    dialog.widgets["max_frames_per_video"].setText("-3")
    dialog.on_save()
    assert "max_frames_per_video" in dialog.message.text()
    assert "positive whole number" in dialog.message.text() and not path.exists()

    dialog.widgets["max_frames_per_video"].setText("12")
    dialog.widgets["offpeak_windows"].setText("someday 25:00-26:00")
    dialog.on_save()
    assert dialog.message.text().startswith("Not saved") and not path.exists()

    dialog.widgets["offpeak_windows"].setText("mon-fri 20:00-05:00")
    dialog.widgets["storage"].setCurrentText("local")
    dialog.on_save()
    assert dialog.saved is not None and path.exists()
    reread = load_settings({"PEAKOPS_HOME": str(settings.home)}, config_file=path)
    assert reread.max_frames_per_video == 12 and reread.offpeak_windows == "mon-fri 20:00-05:00"
    assert "storage" not in path.read_text()  # defaults are not pinned


def test_notifier_reports_failures_and_the_end_of_a_batch():
    n = Notifier()
    assert n.feed([(1, None, "QUEUED"), (2, None, "QUEUED")], 2, {}) == []
    assert n.feed([(1, "QUEUED", "PROCESSING")], 2, {}) == []
    assert n.feed([(1, "PROCESSING", "FAILED")], 1, {1: "a.mp4"}) == [
        ("Upload failed", "a.mp4 (upload 1)")]
    assert n.feed([(2, "PROCESSING", "DONE")], 0, {}) == [("Batch finished", "1 done, 1 failed")]
    assert n.feed([], 0, {}) == []


def test_actions_follow_the_lifecycle_and_delete_refuses_running_uploads(settings):
    assert actions.applicable("retry", {"FAILED", "DONE"})
    assert actions.applicable("retry", {"DONE"})  # as `peakops retry` (core.store.lifecycle)
    assert not actions.applicable("retry", {"QUEUED", "PROCESSING"})
    assert actions.applicable("cancel", {"PROCESSING"})
    assert not actions.applicable("delete", {"PROCESSING"})
    app = open_app(settings)
    try:
        upload_id = lifecycle.create_upload(app.db, original_name="x.mp4", sha256="1", size=1,
                                       mode="now", owner="o", lease_seconds=60)
        with pytest.raises(StateError, match="cancel it before deleting"):
            delete_upload(app, upload_id)
        outcome = operations.delete(app, [upload_id])
        assert outcome.changed == [] and outcome.refused[0][0] == upload_id
        lifecycle.cancel(app.db, upload_id)
        assert operations.delete(app, [upload_id]).changed == [upload_id]
        assert app.db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0] == 0
    finally:
        app.close()
