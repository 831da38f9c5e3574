"""Pause, resume, run-now and retry from the console and from the command line leave the
same state behind: two homes seeded alike, one driven through the console's widgets, the
other through `peakops` as a real process."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batch.queue import make_queue
from core.app import open_app
from core.errors import InputError
from core.schedule import offpeak
from core.store import lifecycle, queries
from tests.helpers import make_settings, run_cli


def _spec() -> str:
    """A daily one-hour window opening 2-3 hours from now: closed now, next opening
    within run-now's 12 h cap, so run-now's end is the same moment for both."""
    start = (datetime.now(UTC).hour + 2) % 24
    return f"daily {start:02d}:00-{start + 1:02d}:00"


SPEC = _spec()


@pytest.fixture
def settings(home):  # the console's home (the `window` fixture opens it)
    return make_settings(home, offpeak_windows=SPEC)


@pytest.fixture
def cli_home(tmp_path):
    return tmp_path / "cli-home"


def seed(settings) -> dict[str, int]:
    """A dispatched off-peak upload (QUEUED), a waiting one (DEFERRED), a FAILED and a
    DONE upload, with the same ids in every home."""
    app = open_app(settings)
    ids = {}
    try:
        for name, mode in (("dispatched", "off-peak"), ("waiting", "off-peak"),
                           ("failed", "now"), ("done", "now")):
            upload_id = lifecycle.create_upload(app.db, original_name=f"{name}.mp4", sha256=name,
                                           size=1, mode=mode, owner="seed", lease_seconds=60)
            lifecycle.mark_stored(app.db, upload_id, storage_key=f"videos/{name}", probe={})
            ids[name] = upload_id
        lifecycle.dispatch(app.db, ids["dispatched"], message="window open")
        for name in ("failed", "done"):
            lifecycle.claim(app.db, ids[name], "seed", lease_seconds=60)
        lifecycle.fail(app.db, ids["failed"], InputError("bad frames"), owner="seed",
                  status=lifecycle.FAILED)
        lifecycle.complete(app.db, ids["done"], "seed")
    finally:
        app.close()
    return ids


def snapshot(settings) -> dict:
    app = open_app(settings)
    try:
        uploads = {u["id"]: (u["status"], u["mode"], u["attempts"], u["error_category"])
                   for u in queries.list_uploads(app.db)}
        control = offpeak.read_control(app.db).as_dict()
        events = [(e["upload_id"], e["kind"]) for e in app.db.query(
            "SELECT upload_id, kind FROM events ORDER BY id")]
    finally:
        app.close()
    queue = sorted((t.name, t.args[0]) for t in make_queue(settings).huey.pending())
    return {"uploads": uploads, "control": control, "events": events, "queue": queue}


def test_pause_resume_and_run_now_from_console_and_cli_agree(qtbot, window, settings,
                                                             cli_home):
    cli_settings = make_settings(cli_home, offpeak_windows=SPEC)
    seed(settings), seed(cli_settings)
    panel = window.schedule_panel
    qtbot.waitUntil(lambda: panel.pause_button.isEnabled(), timeout=5000)

    def cli(*args):
        return run_cli(cli_home, *args, check=True, PEAKOPS_OFFPEAK_WINDOWS=SPEC)

    panel.pause_button.click()
    cli("pause", "--after-current")
    qtbot.waitUntil(lambda: snapshot(settings)["control"]["pause_after_current"], timeout=5000)
    paused = snapshot(settings)
    assert paused == snapshot(cli_settings)
    assert paused["uploads"][1][0] == "DEFERRED"  # the queued off-peak upload was withdrawn

    qtbot.waitUntil(lambda: panel.resume_button.isEnabled(), timeout=5000)
    panel.resume_button.click()
    cli("resume")
    qtbot.waitUntil(lambda: not snapshot(settings)["control"]["pause_after_current"],
                    timeout=5000)
    assert snapshot(settings) == snapshot(cli_settings)

    panel.run_now_button.click()
    cli("run-now")
    qtbot.waitUntil(lambda: bool(snapshot(settings)["control"]["run_now_until"]), timeout=5000)
    ran = snapshot(settings)
    assert ran == snapshot(cli_settings)
    assert ran["control"]["run_now_until"] > datetime.now(UTC).timestamp()


def test_retry_from_console_and_cli_agree(qtbot, window, settings, cli_home):
    cli_settings = make_settings(cli_home, offpeak_windows=SPEC)
    ids = seed(settings)
    seed(cli_settings)
    window.poll()
    qtbot.waitUntil(lambda: window.model.row_by_id(ids["done"]) is not None, timeout=5000)
    for name in ("failed", "done"):
        assert window.select_upload(ids[name])
        assert window.acts["retry"].isEnabled()
        window.acts["retry"].trigger()
        qtbot.waitUntil(lambda n=name: snapshot(settings)["uploads"][ids[n]][0] == "QUEUED",
                        timeout=5000)
    run_cli(cli_home, "retry", str(ids["failed"]), str(ids["done"]), check=True)
    retried = snapshot(settings)
    assert retried == snapshot(cli_settings)
    assert retried["queue"] == [("process_video_upload", ids["failed"]),
                                ("process_video_upload", ids["done"])]
