"""The console's details say when an upload started at a learned degrade level."""

from __future__ import annotations

from core.app import open_app, process_owner
from core.intake import submit_file
from core.jobs import learned
from core.media.facts import ProbeResult
from core.store import lifecycle


def test_details_show_the_learned_start_level(qtbot, window, settings, clip_h264):
    app = open_app(settings)
    try:
        upload_id = submit_file(app, clip_h264).upload_id
        owner = process_owner("test")
        row = lifecycle.claim(app.db, upload_id, owner, lease_seconds=60)
        facts = ProbeResult.from_json(row["probe"])
        learned.record(app.db, 99, facts, level=0, peak_kib=152_576, over_limit=True)
        row = learned.begin(app.db, row)
        lifecycle.complete(app.db, upload_id, owner, peak_rss_kib=60_000)
    finally:
        app.close()
    window.poll()
    qtbot.waitUntil(lambda: window.select_upload(upload_id), timeout=10000)
    details = window.details
    qtbot.waitUntil(lambda: details.detail is not None, timeout=10000)
    size = f"{facts.height}p" if facts.height < 2160 else "4K"
    assert details.fact_labels["Attempts"].text() == (
        f"1 (degrade level 1)\nstarted at level 1: {size} H.264 peaked at 149 MB at level 0 "
        "on upload 99")
