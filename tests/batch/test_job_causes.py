"""A job whose process dies is recorded with a cause, never "child failed" or "exit N"
(issue #21 item 5): the job child is held at a known frame, then ended by a signal."""

from __future__ import annotations

import os
import re
import signal

import pytest

from core.media import samples
from tests.batch.test_worker import FAST, start_worker, submit, uploads
from tests.helpers import HoldPoint, cli_json, wait_for

NOT_A_CAUSE = re.compile(r"child failed|\bexit\b|exit code|returncode", re.IGNORECASE)


@pytest.mark.parametrize(("sig", "words"), [
    (signal.SIGSEGV, "the job process crashed (SIGSEGV: a fault in libav or another library)"),
    (signal.SIGABRT, "the job process crashed (SIGABRT: a fault in libav or another library)"),
])
def test_a_crashed_job_names_its_signal(tmp_path, sig, words):
    home = tmp_path / "home"
    clip = samples.make_clip(tmp_path / "site.mp4", seconds=4, width=160, height=120)
    env = {**FAST, "PEAKOPS_MAX_ATTEMPTS": "1"}
    [upload_id] = submit(home, clip, **env)
    hold = HoldPoint(tmp_path)
    hold.arm(after_frames=2)
    worker = start_worker(home, **env, **hold.env)
    try:
        held = hold.wait_reached()
        assert held["upload_id"] == upload_id
        os.kill(held["pid"], sig)  # the job child, waiting before frame 2
        wait_for(lambda: uploads(home)[upload_id]["status"] == "FAILED", timeout=120,
                 what="the crashed job to fail")
    finally:
        hold.release()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    row = uploads(home)[upload_id]
    assert words in row["error_message"], row["error_message"]
    assert not NOT_A_CAUSE.search(row["error_message"])
    events = [e["message"] for e in cli_json(home, "show", str(upload_id))["events"]]
    assert events and not any(NOT_A_CAUSE.search(m or "") for m in events), events
