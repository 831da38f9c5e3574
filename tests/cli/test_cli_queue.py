"""Commands that make uploads QUEUED change the state at once and send the ids to the
queue; a refused upload is one line on stderr, exit 1, and keeps its state and error."""

from __future__ import annotations

import pytest

from batch.queue import make_queue
from core.media import samples
from tests.helpers import cli_json, make_settings, run_cli

FAST = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "3"}


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def pending(home):
    return sorted((t.name, t.args[0]) for t in make_queue(make_settings(home)).huey.pending())


def test_reprocess_and_analyze_refuse_an_upload_without_a_stored_video(home, text_as_mp4):
    proc = run_cli(home, "submit", str(text_as_mp4))
    assert proc.returncode == 1
    [failed] = cli_json(home, "list")
    for command in ("reprocess", "analyze", "retry"):
        proc = run_cli(home, command, str(failed["id"]))
        assert proc.returncode == 1, command
        assert "has no stored video" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
        [row] = cli_json(home, "list")
        assert (row["status"], row["error_message"]) == ("FAILED", failed["error_message"])
    assert pending(home) == []


def test_reprocess_and_analyze_queue_at_once_and_the_worker_runs_them(home, tmp_path):
    first = samples.make_clip(tmp_path / "a.mp4", seconds=2, width=160, height=120)
    second = samples.make_clip(tmp_path / "b.mp4", seconds=2, width=176, height=144)
    a = cli_json(home, "process", str(first), **FAST)
    b = cli_json(home, "process", str(second), **FAST)
    assert (a["status"], b["status"]) == ("DONE", "DONE")
    proc = run_cli(home, "reprocess", str(a["id"]), "999", **FAST)
    assert proc.returncode == 1 and "no upload with id 999" in proc.stderr
    assert proc.stdout.split() == [str(a["id"]), "QUEUED"]
    proc = run_cli(home, "analyze", str(b["id"]), check=True, **FAST)
    assert proc.stdout.split() == [str(b["id"]), "QUEUED"]
    again = run_cli(home, "analyze", str(b["id"]), **FAST)  # QUEUED now: says why not
    assert again.returncode == 1 and again.stdout == "", again.stdout
    assert again.stderr.count("\n") == 1 and f"upload {b['id']} is QUEUED: it already " \
        "waits for a worker, which labels its frames when it runs" in again.stderr
    reprocessed, reanalysed = (cli_json(home, "show", str(i)) for i in (a["id"], b["id"]))
    assert reprocessed["status"] == "QUEUED" and reprocessed["frames"] == []
    assert reanalysed["status"] == "QUEUED" and len(reanalysed["frames"]) == 3
    assert all(f["labels"] == [] and f["analyzed_at"] is None for f in reanalysed["frames"])
    # One task for every kind: the upload's state says what is left to do.
    assert pending(home) == [("process_video_upload", a["id"]), ("process_video_upload", b["id"])]
    assert run_cli(home, "worker", "--burst", **FAST).returncode == 0
    for upload_id in (a["id"], b["id"]):
        done = cli_json(home, "show", str(upload_id))
        assert done["status"] == "DONE" and len(done["frames"]) == 3
        assert all(f["labels"] for f in done["frames"])
    assert pending(home) == []
