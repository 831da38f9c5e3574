"""The console and frame selection: reprocess with another plan from the Reprocess menu,
the plan in the settings dialog, and a near-duplicate's caption naming its frame."""

from __future__ import annotations

import dataclasses

from core.app import open_app
from core.media.samples import make_scene
from core.store import queries
from desktop.details import frame_caption, frame_facts
from desktop.settings_dialog import FIELDS
from tests.desktop.test_console_actions import done_upload, status_of


def test_reprocess_menu_changes_the_plan_of_the_selected_upload(qtbot, window, settings,
                                                                 tmp_path):
    video = make_scene(tmp_path / "static.mp4", "static", seconds=2.0)
    upload_id = done_upload(dataclasses.replace(settings, max_frames_per_video=3), video)
    qtbot.waitUntil(lambda: status_of(window, upload_id) == "DONE", timeout=5000)
    assert window.select_upload(upload_id)
    menu = window.acts["reprocess"].menu()
    entries = {a.text(): a for a in menu.actions()}
    assert [t.rsplit("(", 1)[1] for t in entries] == ["even)", "sharpest)", "coverage)"]
    entries["Reprocess taking more frames where the picture changes (coverage)"].trigger()
    qtbot.waitUntil(lambda: status_of(window, upload_id) == "QUEUED", timeout=5000)
    app = open_app(settings)
    try:
        assert queries.get_upload(app.db, upload_id)["frame_selection"] == "coverage"
    finally:
        app.close()


def test_settings_dialog_offers_the_three_plans():
    kinds = {key: kind for key, _, kind in FIELDS}
    assert kinds["frame_selection"] == "even|sharpest|coverage"


def test_a_near_duplicate_caption_names_the_frame_it_repeats():
    frame = {"idx": 4, "timestamp": 3.2, "duplicate_of": 3,
             "labels": [{"name": "sharp", "confidence": 88.0},
                        {"name": "near-duplicate", "confidence": 90.0}]}
    assert frame_caption(frame).splitlines() == ["#4 · 3.2 s", "sharp 88%",
                                                 "near-duplicate of #3"]
    facts = frame_facts({**frame, "stream_frame": 80, "keyframe": False, "focus": 412.0,
                         "reason": "sharpest of 5 decoded frames in the slice"}, {3: 2.4})
    assert facts.splitlines() == ["near-duplicate of frame #3 at 2.4 s",
                                  "frame 80 of the stream", "focus 412",
                                  "chosen: sharpest of 5 decoded frames in the slice"]
