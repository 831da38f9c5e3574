"""The morning report, driven with explicit window times over a really processed home."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from core.analysis.rekognition import period_calls_key
from core.app import open_app
from core.errors import MemoryLimitError, PeakOpsError
from core.intake import submit_file
from core.jobs import pipeline
from core.results import report
from core.store import heartbeat, lifecycle, queries, state
from tests.helpers import make_settings, run_cli

# Tuesday 2025-03-04 22:00 to Wednesday 06:00, UTC: in the past, so the CLI's clock
# (which only decides "has it closed") agrees with the times the test writes.
START = datetime(2025, 3, 4, 22, 0, tzinfo=UTC)
END = datetime(2025, 3, 5, 6, 0, tzinfo=UTC)
HOSTILE = "pier <b>3</b> & <script>alert(1)</script>.mp4"


def at(hours: float) -> float:
    """Epoch seconds ``hours`` after the window opened."""
    return (START + timedelta(hours=hours)).timestamp()


def run(app, upload_id, claim_at, end_at, *, peak_kib=None):
    """Claim at ``claim_at``, run the real pipeline, record the outcome at ``end_at``."""
    assert lifecycle.claim(app.db, upload_id, "worker@test:1", lease_seconds=600, now=claim_at)
    try:
        pipeline.run(app, upload_id, "worker@test:1")
    except PeakOpsError as exc:
        return lifecycle.fail(app.db, upload_id, exc, owner="worker@test:1",
                              status=lifecycle.FAILED, peak_rss_kib=peak_kib, now=end_at)
    lifecycle.complete(app.db, upload_id, "worker@test:1", peak_rss_kib=peak_kib, now=end_at)
    return lifecycle.DONE


@pytest.fixture
def night(tmp_path, clip_h264, clip_noaudio, clip_10s, clip_vp9, clip_rotated):
    """A night: one upload before the window, two done and one failed in it (one after
    a memory kill), one still deferred, restarts in and after the window."""
    settings = make_settings(tmp_path / "home", max_frames_per_video=12,
                             offpeak_windows="mon-fri 22:00-06:00",
                             rekognition_max_calls_per_window=50)
    app = open_app(settings)
    ids = {}
    for key, clip in (("before", clip_rotated), ("hostile", clip_h264),
                      ("missing", clip_noaudio), ("memory", clip_10s)):
        ids[key] = submit_file(app, clip, mode=lifecycle.MODE_OFFPEAK).upload_id
        assert lifecycle.dispatch(app.db, ids[key], message="test window", now=at(-3))
    # A name with markup, as an API caller may give (a file name cannot hold the "/").
    app.db.execute("UPDATE uploads SET original_name = ? WHERE id = ?",
                   [HOSTILE, ids["hostile"]])
    ids["deferred"] = submit_file(app, clip_vp9, mode=lifecycle.MODE_OFFPEAK).upload_id

    assert run(app, ids["before"], at(-2), at(-1.9)) == lifecycle.DONE
    assert run(app, ids["hostile"], at(1), at(1.1), peak_kib=300_000) == lifecycle.DONE
    # The stored video vanished: the real fetch fails with an input error.
    app.store.delete(queries.get_upload(app.db, ids["missing"])["storage_key"])
    assert run(app, ids["missing"], at(1.5), at(1.6)) == lifecycle.FAILED
    # Killed over the hard limit once, then done at the next degrade level.
    assert lifecycle.claim(app.db, ids["memory"], "worker@test:1", lease_seconds=600, now=at(2))
    lifecycle.fail(app.db, ids["memory"], MemoryLimitError("process tree reached 512000 KiB"),
              owner="worker@test:1", status=lifecycle.QUEUED, level=1,
              peak_rss_kib=512_000, now=at(2.1))
    heartbeat.record_restart(app.db, "worker@test:1", "hard-limit", upload_id=ids["memory"],
                             rss_kib=512_000, message="process tree reached 512000 KiB",
                             now=at(2.1))
    heartbeat.record_restart(app.db, "worker@test:1", "tasks", message="5 jobs done",
                             now=at(9))  # after the window
    assert run(app, ids["memory"], at(2.2), at(2.5)) == lifecycle.DONE
    state.put(app.db, period_calls_key("2025-03-04"), 42)
    yield app, ids
    app.close()


def test_report_counts_what_the_window_did(night):
    app, ids = night
    data = report.write_report(app, start=START, end=END, now=END)
    assert data.path == app.settings.home / "reports" / "2025-03-04.html"
    assert [line.id for line in data.processed] == [ids["hostile"], ids["memory"]]
    assert [(line.id, line.category) for line in data.failed] == [(ids["missing"], "input")]
    assert "missing" in data.failed[0].message
    assert data.failed_by_category == {"input": 1}
    assert [line.id for line in data.deferred] == [ids["deferred"]]
    assert [(r["cause"], r["upload_id"]) for r in data.restarts] == [("hard-limit", ids["memory"])]
    assert (data.retries, data.memory_retries, len(data.memory_restarts)) == (1, 1, 1)
    assert data.rekognition_periods == {"2025-03-04": 42}
    assert data.rekognition_budget == 50
    assert data.peak_kib == 512_000
    hostile = data.processed[0]
    assert hostile.frames == 12 and hostile.peak_kib == 300_000
    assert hostile.seconds == pytest.approx(0.1 * 3600)
    assert len(hostile.thumbs) == report.THUMBS_PER_UPLOAD
    assert [t.frame_index for t in hostile.thumbs][0::7] == [0, 11]  # spread, ends included
    summary = data.summary()
    assert (summary["processed"], summary["failed"], summary["deferred"]) == (2, 1, 1)
    assert summary["memory_restarts"] == 1 and summary["peak_mb"] == 500.0


def test_report_html_is_self_contained_escaped_and_small(night):
    app, ids = night
    data = report.write_report(app, start=START, end=END, now=END)
    text = data.path.read_text("utf-8")
    assert "<script>" not in text and "<b>3</b>" not in text
    assert "pier &lt;b&gt;3&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;.mp4" in text
    sources = re.findall(r'src="([^"]*)"', text)
    # Eight thumbnails of the 12 frames, and all six of the degraded retry's frames.
    assert [line.frames for line in data.processed] == [12, 6]
    assert len(sources) == 8 + 6
    assert all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert len(text.encode()) < 150_000
    assert "42 / 50" in text  # Rekognition calls against the budget
    assert "hard-limit" in text and "process tree reached 512000 KiB" in text
    assert "Tue 2025-03-04 22:00" in text and "Wed 2025-03-05 06:00" in text
    assert text.count('class="tag failed"') == 1 and text.count('class="tag done"') == 2
    assert report.latest_report(app.settings.home) == app.settings.home / "reports" / \
        "2025-03-04.html"


def test_report_cli_prints_the_latest_or_regenerates_a_window(night):
    app, ids = night
    home = app.settings.home
    env = {"PEAKOPS_OFFPEAK_WINDOWS": "mon-fri 22:00-06:00"}
    proc = run_cli(home, "report", "--window", "2025-03-04", "--json", check=True, **env)
    summary = json.loads(proc.stdout)
    assert summary["path"] == str(home / "reports" / "2025-03-04.html")
    assert summary["window_start"] == START.isoformat()
    assert summary["window_end"] == END.isoformat()
    assert (summary["processed"], summary["failed"], summary["regenerated"]) == (2, 1, True)
    proc = run_cli(home, "report", check=True, **env)
    assert proc.stdout == f"{home / 'reports' / '2025-03-04.html'}\n"
    proc = run_cli(home, "report", "--window", "2025-03-09", **env)  # a Sunday
    assert proc.returncode == 1 and "no off-peak window is open on 2025-03-09" in proc.stderr
    assert run_cli(home, "report", "--window", "yesterday", **env).returncode == 2


def test_a_window_that_has_not_started_is_refused_and_an_open_one_reported_so_far():
    from core.errors import InputError
    from core.schedule.windows import parse_windows
    nights = parse_windows("mon-fri 22:00-06:00")
    tuesday_noon = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
    with pytest.raises(InputError, match=r"the off-peak window of 2025-03-04 \(Tue 2025-03-04 "
                                         r"22:00 to Wed 06:00\) has not started yet; `report "
                                         r"--window last` reports the last finished window"):
        report.choose_window(nights, START.date(), tuesday_noon)
    assert report.choose_window(nights, "last", tuesday_noon) == (
        datetime(2025, 3, 3, 22, 0, tzinfo=UTC), datetime(2025, 3, 4, 6, 0, tzinfo=UTC))
    midnight = datetime(2025, 3, 5, 0, 0, tzinfo=UTC)
    assert report.choose_window(nights, START.date(), midnight) == (START, midnight)
    assert report.choose_window(nights, START.date(), END + timedelta(hours=1)) == (START, END)


def test_report_cli_refuses_a_window_not_started_and_writes_nothing(tmp_path):
    home = tmp_path / "home"
    env = {"PEAKOPS_OFFPEAK_WINDOWS": "mon-fri 22:00-06:00"}
    proc = run_cli(home, "report", "--window", "2099-03-03", **env)  # a Tuesday, far ahead
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "2099-03-03 (Tue 2099-03-03 22:00 to Wed 06:00) has not started yet" in proc.stderr
    assert not (home / "reports").exists()


def test_report_of_a_period_since_the_last_report_says_what_it_covers(night):
    app, ids = night
    home = app.settings.home
    env = {"PEAKOPS_OFFPEAK_WINDOWS": "mon-fri 22:00-06:00"}
    first_event = app.db.execute("SELECT MIN(at) FROM events").fetchone()[0]
    assert report.default_since(app.db, END).timestamp() == first_event  # no report yet
    proc = run_cli(home, "report", "--since", "2025-03-04T19:00", "--until",
                   "2025-03-05T06:00", "--json", check=True, **env)
    summary = json.loads(proc.stdout)
    assert (summary["covers"], summary["start"], summary["end"]) == (
        "period", "2025-03-04T19:00:00+00:00", END.isoformat())
    assert (summary["processed"], summary["failed"]) == (3, 1)  # "before" ran at 20:00
    page = (home / "reports" / "period-20250304-1900-to-20250305-0600.html").read_text()
    assert summary["path"] == str(home / "reports" / "period-20250304-1900-to-20250305-0600.html")
    assert "<title>Report: Tue 2025-03-04 19:00 to Wed 2025-03-05 06:00 (UTC)</title>" in page
    assert "Covers Tue 2025-03-04 19:00 to Wed 2025-03-05 06:00 (UTC): every upload" in page
    # Without --since: from the end of the last report made.
    proc = run_cli(home, "report", "--until", "2025-03-05T12:00", "--json", check=True, **env)
    summary = json.loads(proc.stdout)
    assert (summary["start"], summary["end"]) == (END.isoformat(), "2025-03-05T12:00:00+00:00")
    assert (summary["processed"], summary["failed"]) == (0, 0)
    window = run_cli(home, "report", "--window", "2025-03-04", check=True, **env).stdout.strip()
    assert "Covers the off-peak window Tue 2025-03-04 22:00 to Wed 2025-03-05 06:00 (UTC)" in \
        open(window).read()
    for args in (["--since", "2025-03-05", "--until", "2025-03-04"],
                 ["--window", "last", "--since", "2025-03-04"]):
        proc = run_cli(home, "report", *args, **env)
        assert proc.returncode in (1, 2) and proc.stderr.count("\n") == 1, proc.stderr
