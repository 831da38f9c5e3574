"""The scheduler writes the morning report when a window closes (time injected via tick)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from batch.scheduler import Runtime
from core.intake import submit_file
from core.jobs import pipeline
from core.store import lifecycle, queries
from tests.helpers import make_settings

OPEN = datetime(2025, 3, 4, 23, 0, tzinfo=UTC)     # Tuesday, inside 22:00-06:00
LAST_MINUTE = datetime(2025, 3, 5, 5, 59, 58, tzinfo=UTC)
CLOSED = datetime(2025, 3, 5, 6, 0, 1, tzinfo=UTC)


@pytest.fixture
def runtime(tmp_path):
    settings = make_settings(tmp_path / "home", offpeak_windows="mon-fri 22:00-06:00",
                             max_frames_per_video=4)
    rt = Runtime(settings, BackgroundScheduler(timezone="UTC"))
    yield rt
    rt.close()


def test_closing_tick_writes_the_report_with_why_uploads_still_wait(runtime, clip_h264,
                                                                    clip_10s):
    app = runtime.app
    a = submit_file(app, clip_h264, mode=lifecycle.MODE_OFFPEAK).upload_id
    b = submit_file(app, clip_10s, mode=lifecycle.MODE_OFFPEAK).upload_id
    runtime.tick(OPEN - timedelta(hours=2))  # closed: the first tick writes no report
    reports = app.settings.home / "reports"
    assert not reports.exists()

    assert runtime.tick(OPEN).open
    assert queries.get_upload(app.db, a)["status"] == lifecycle.QUEUED  # lookahead 1: b waits
    assert lifecycle.claim(app.db, a, "worker@test:1", lease_seconds=600,
                      now=OPEN.timestamp() + 5)
    pipeline.run(app, a, "worker@test:1")
    lifecycle.complete(app.db, a, "worker@test:1", now=OPEN.timestamp() + 60)
    plan = runtime.tick(LAST_MINUTE)  # two seconds left: b does not fit
    assert [d.upload_id for d in plan.deferred()] == [b]
    assert not reports.exists()

    runtime.tick(CLOSED)
    path = reports / "2025-03-04.html"
    text = path.read_text("utf-8")
    assert "Tue 2025-03-04 22:00" in text and "Wed 2025-03-05 06:00" in text
    assert text.count('class="tag done"') == 1 and "clip.mp4" in text
    assert "does not fit before close" in text  # the scheduler's own reason for b
    assert text.count('src="data:image/jpeg;base64,') == 4
    written = path.stat().st_mtime_ns
    runtime.tick(CLOSED + timedelta(minutes=1))  # still closed: not written again
    assert sorted(p.name for p in reports.iterdir()) == ["2025-03-04.html"]
    assert path.stat().st_mtime_ns == written
