"""Command-line conventions (issue 16): exit codes, help text, summaries on stdout, quiet
pipes, JSON from ``process`` in every case, live workers in ``status``, ids never reused."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from cli.main import build_parser
from core.store import heartbeat, lifecycle
from core.store.db import connect
from tests.helpers import cli_env, cli_json, run_cli


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.mark.parametrize("args", [
    ["windows", "--at", "garbage"],
    ["cleanup", "--days", "-1"],
    ["list", "--limit", "-5"],
    ["list", "--limit", "0"],
    ["list", "--status", "bogus"],
    ["export", "--status", "bogus"],
    ["no-such-command"],
])
def test_usage_errors_exit_2_with_one_usage_line(home, args):
    proc = run_cli(home, *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_help_describes_every_command_and_hides_internal_ones(home):
    top = run_cli(home, "--help", check=True).stdout
    assert "==SUPPRESS==" not in top and "_job-child" not in top
    parser = build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    shown = {a.dest: a.help for a in sub._choices_actions}
    for name, command in sub.choices.items():
        if name.startswith("_"):
            assert name not in shown
            continue
        assert shown.get(name), f"{name} has no one-line help"
        assert f"  {name} " in top, name
        assert command.description, f"{name} has no description"
        assert "==SUPPRESS==" not in command.format_help()  # what `peakops NAME --help` prints
    wrong = run_cli(home, "no-such-command")
    assert "invalid choice: 'no-such-command'" in wrong.stderr and "_job-child" not in wrong.stderr
    listing = run_cli(home, "list", "--help", check=True).stdout
    for status in ("done", "failed", "deferred"):
        assert listing.lower().count(status) == 1, listing  # choices listed once


def test_process_json_prints_a_record_for_a_file_rejected_at_submit(home, text_as_mp4, tmp_path):
    proc = run_cli(home, "process", str(text_as_mp4), "--json")
    assert proc.returncode == 1
    record = json.loads(proc.stdout)
    assert isinstance(record["upload_id"], int) and record["id"] == record["upload_id"]
    assert record["status"] == "FAILED" and record["category"] == "input"
    assert record["path"] == str(text_as_mp4) and "notes.mp4" in record["error"]
    assert proc.stderr.count("\n") == 1  # the one-line reason

    missing = run_cli(home, "process", str(tmp_path / "gone.mp4"), "--json")
    assert missing.returncode == 1
    record = json.loads(missing.stdout)
    assert record["upload_id"] is None and record["status"] == "REJECTED"
    assert record["category"] == "input"


def test_process_json_has_the_upload_id(home, clip_h264):
    record = cli_json(home, "process", str(clip_h264))
    assert record["upload_id"] == record["id"] and record["status"] == "DONE"


def test_reset_stuck_summary_goes_to_stdout(home):
    proc = run_cli(home, "reset-stuck", check=True)
    assert proc.stdout.strip() == "0 stuck upload(s) reset" and proc.stderr == ""


def test_info_log_lines_only_with_v(home, clip_h264, clip_noaudio):
    quiet = run_cli(home, "submit", str(clip_h264), check=True)
    assert quiet.stderr == ""
    verbose = run_cli(home, "-v", "submit", str(clip_noaudio), check=True)
    assert " INFO core.intake: upload 2: noaudio.mp4 stored" in verbose.stderr
    assert " DEBUG " not in verbose.stderr


# --------------------------------------------------------------------------- pipes


def _fill(home, uploads: int = 0, frames: int = 0, workers: int = 0) -> None:
    """Rows enough that the output overflows a pipe buffer (64 KiB) many times over."""
    db = connect(home / "peakops.db")
    for n in range(uploads):
        upload_id = lifecycle.create_upload(db, original_name=f"clip-{n:04d}.mp4", sha256=f"{n:064x}",
                                       size=1000, mode=lifecycle.MODE_NOW, owner="test",
                                       lease_seconds=60, now=1_700_000_000 + n)
        lifecycle.cancel(db, upload_id, now=1_700_000_000 + n)
    if frames:
        upload_id = db.execute("SELECT MIN(id) FROM uploads").fetchone()[0]
        db.conn.executemany(
            "INSERT INTO frames (upload_id, idx, timestamp, storage_key, width, height) "
            "VALUES (?, ?, ?, ?, 320, 240)",
            [(upload_id, i, i * 0.5, f"frames/{upload_id}/{i:04d}.jpg") for i in range(frames)])
    for n in range(workers):
        heartbeat.beat(db, f"worker@old-host:{n}", pid=n, host="old-host", state="stopped",
                       jobs_done=n, last_seen=1_700_000_000 + n)
    db.conn.close()


def _into_head(home, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    """``peakops ARGS | head -1`` with real pipes; the producer's exit and stderr."""
    producer = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=home.parent,
                                env=cli_env(home), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-1"], stdin=producer.stdout, stdout=subprocess.PIPE)
    producer.stdout.close()  # head alone reads it now
    first = head.communicate(timeout=120)[0].decode()
    err = producer.stderr.read().decode()
    producer.stderr.close()
    code = producer.wait(timeout=120)
    return subprocess.CompletedProcess(args, code, "", err), first


@pytest.mark.parametrize(("args", "first"), [
    (["list", "--json"], "["),
    (["export"], "upload_id,"),
    (["status", "--all"], "uploads   "),
    (["status"], "uploads   "),
])
def test_piping_into_head_is_quiet(home, args, first):
    _fill(home, uploads=400, frames=3000, workers=600)
    proc, line = _into_head(home, *args)
    assert line.startswith(first), line
    assert proc.stderr == "", proc.stderr
    assert proc.returncode in (0, 141)


# --------------------------------------------------------------------------- workers


def test_status_shows_live_workers_and_all_shows_the_history(home):
    now = 1_700_000_000.0
    db = connect(home / "peakops.db")
    heartbeat.beat(db, "worker@a:1", state="idle", last_seen=now - 2)
    heartbeat.beat(db, "worker@a:2", state="stopped", last_seen=now - 3)
    heartbeat.beat(db, "worker@b:3", state="busy", last_seen=now - 3600)  # died
    assert [w["name"] for w in heartbeat.workers(db, now=now, live_only=True)] == ["worker@a:1"]
    assert len(heartbeat.workers(db, now=now)) == 3
    db.conn.close()
    # Through the CLI, on the wall clock: none of these is live now.
    assert cli_json(home, "status")["workers"] == []
    assert {w["name"] for w in cli_json(home, "status", "--all")["workers"]} == {
        "worker@a:1", "worker@a:2", "worker@b:3"}
    assert "none running (--all for the history)" in run_cli(home, "status", check=True).stdout


def test_cleanup_prunes_workers_not_seen_for_a_day(home):
    db = connect(home / "peakops.db")
    now = time.time()
    heartbeat.beat(db, "worker@old:1", state="stopped", last_seen=now - 2 * 86400)
    heartbeat.beat(db, "worker@recent:2", state="stopped", last_seen=now - 3600)
    heartbeat.record_restart(db, "worker@old:1", "tasks", message="5 jobs", now=now - 2 * 86400)
    db.conn.close()
    summary = cli_json(home, "cleanup")
    assert summary["workers"] == 1
    assert [w["name"] for w in cli_json(home, "status", "--all")["workers"]] == ["worker@recent:2"]
    assert len(cli_json(home, "status")["recent_restarts"]) == 1  # the record stays


# --------------------------------------------------------------------------- ids


def test_upload_ids_are_never_reused_after_cleanup(home, clip_h264, clip_noaudio, clip_vp9):
    first = int(run_cli(home, "submit", str(clip_h264), check=True).stdout.split("\t")[0])
    newest = int(run_cli(home, "submit", str(clip_noaudio), check=True).stdout.split("\t")[0])
    assert newest > first
    run_cli(home, "cancel", str(newest), check=True)
    assert cli_json(home, "cleanup", "--days", "0")["uploads"] == 1
    assert [u["id"] for u in cli_json(home, "list")] == [first]
    after = int(run_cli(home, "submit", str(clip_vp9), check=True).stdout.split("\t")[0])
    assert after > newest
