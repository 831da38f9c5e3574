"""A fleet on one machine: three `peakops worker` processes, each with its own home,
sharing a real PostgreSQL database, a real Redis queue and an S3 bucket on moto's server.

Twenty clips are submitted from a fourth process. One worker is killed with SIGKILL while
its job surely runs (held at the hold point after its first frame); the others finish
everything, the killed worker's upload included, once the reaper sees its owner is gone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from core.media import samples
from tests.helpers import HoldPoint, cli_env, run_cli, wait_for
from tests.s3server import aws_env, moto_endpoint, new_bucket, s3_client  # noqa: F401

CLIPS = 20
FRAMES = 3
DEADLINE_S = 120.0
CLOSING = {"done", "retry", "failed", "released", "cancelled"}
"""Events that end a lease; a ``claimed`` event starts one."""


@pytest.fixture
def bucket(moto_endpoint):  # noqa: F811
    return new_bucket(moto_endpoint, "fleet")


@pytest.fixture
def fleet_env(tmp_path, postgres_url, redis_url, moto_endpoint, bucket):  # noqa: F811
    return {**aws_env(tmp_path), "PEAKOPS_DATABASE_URL": postgres_url,
            "PEAKOPS_QUEUE_URL": redis_url, "PEAKOPS_STORAGE": "s3",
            "PEAKOPS_S3_BUCKET": bucket, "PEAKOPS_S3_ENDPOINT_URL": moto_endpoint,
            "AWS_REGION": "us-east-1", "PEAKOPS_MAX_FRAMES_PER_VIDEO": str(FRAMES),
            # A lease long enough for a loaded machine's heartbeat to keep it; the
            # reaper runs every half lease, and frees a dead local owner's upload at once.
            "PEAKOPS_LEASE_SECONDS": "10", "PEAKOPS_RETRY_BACKOFF": "0"}


def short_clips(folder: Path) -> list[Path]:
    """Twenty distinct clips (lengths differ, so no two are duplicates), 160x120."""
    folder.mkdir()
    return [samples.make_clip(folder / f"site-{i:02d}.mp4", seconds=1.0 + 0.1 * i,
                              width=160, height=120, keyint=25) for i in range(CLIPS)]


def start_worker(home: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "cli", "worker"], cwd=home.parent,
                                env=cli_env(home, **env), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)


def rows(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()




def test_three_workers_twenty_clips_one_killed(tmp_path, fleet_env, postgres_url):
    clips = short_clips(tmp_path / "clips")
    hold = HoldPoint(tmp_path)
    hold.arm(after_frames=1)  # the victim's first job stops after one stored frame
    logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
    procs: list[subprocess.Popen] = []
    try:
        # The victim starts alone, so the first upload is surely its own.
        procs.append(start_worker(tmp_path / "w0" / "home", {**fleet_env, **hold.env}, logs[0]))
        (tmp_path / "submitter").mkdir()
        submit = run_cli(tmp_path / "submitter" / "home", "submit", *map(str, clips), "--json",
                         timeout=180, **fleet_env)
        assert submit.returncode == 0, submit.stderr
        held = hold.wait_reached(timeout=DEADLINE_S)
        victim_upload = held["upload_id"]
        for n in (1, 2):
            procs.append(start_worker(tmp_path / f"w{n}" / "home", fleet_env, logs[n]))
        wait_for(lambda: rows(
            postgres_url, "SELECT COUNT(*) FROM uploads WHERE status = 'DONE'")[0][0] >= 2,
                 what="the other workers to finish uploads while the victim holds",
                 logs=logs, timeout=DEADLINE_S, interval=0.2)
        (owner,) = rows(postgres_url, "SELECT lease_owner FROM uploads WHERE id = %s",
                        [victim_upload])[0]
        assert owner.endswith(f":{procs[0].pid}"), owner  # it is running there, now
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        hold.release()

        def all_done():
            left = rows(postgres_url, "SELECT COUNT(*) FROM uploads WHERE status != 'DONE'")
            return left[0][0] == 0 and rows(postgres_url, "SELECT COUNT(*) FROM uploads")[0][0]
        assert wait_for(all_done, what="every upload DONE", logs=logs, timeout=DEADLINE_S, interval=0.2) == CLIPS
    finally:
        hold.release()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    assert rows(postgres_url, "SELECT COUNT(*) FROM uploads WHERE status = 'PROCESSING'") == [(0,)]
    # Each frame stored once: one row per (upload, index), one object per row, no stray ones.
    frames = rows(postgres_url, "SELECT upload_id, idx, storage_key FROM frames")
    assert len(frames) == CLIPS * FRAMES
    assert len({(u, i) for u, i, _ in frames}) == len(frames)
    listed = s3_client(fleet_env["PEAKOPS_S3_ENDPOINT_URL"]).list_objects_v2(Bucket=fleet_env["PEAKOPS_S3_BUCKET"],
                                  Prefix="peakops/frames/")
    stored = {o["Key"].removeprefix("peakops/") for o in listed.get("Contents", [])}
    assert stored == {key for _, _, key in frames}
    # Never two live leases on one upload: in each upload's activity log a claim only
    # follows the end of the previous one.
    for (upload_id,) in rows(postgres_url, "SELECT id FROM uploads"):
        leased = None
        for kind, message in rows(postgres_url, "SELECT kind, message FROM events "
                                  "WHERE upload_id = %s ORDER BY id", [upload_id]):
            if kind == "claimed":
                assert leased is None, f"upload {upload_id}: claimed while {leased} held it"
                leased = message
            elif kind in CLOSING:
                leased = None
    # The killed worker's upload was taken back by the reaper and finished elsewhere.
    attempts, owner_events = rows(
        postgres_url, "SELECT attempts, (SELECT string_agg(message, ' | ' ORDER BY id) "
        "FROM events WHERE upload_id = u.id AND kind IN ('claimed', 'retry')) "
        "FROM uploads u WHERE id = %s", [victim_upload])[0]
    assert attempts == 2, owner_events
    assert f":{procs[0].pid}" in owner_events and "stopped renewing its lease" in owner_events
    workers = rows(postgres_url, "SELECT name, host FROM workers")
    assert len(workers) == 3 and all(host for _, host in workers)
