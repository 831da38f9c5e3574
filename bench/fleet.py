"""Fleet figures: jobs per minute with 1, 2 and 3 workers, and the per-job cost of
PostgreSQL + Redis against SQLite, on the same 20 short clips on this machine.

``python -m bench.fleet`` (or ``make bench-fleet``) starts its own throwaway PostgreSQL,
redis-server and moto S3 server on loopback (the test suite's servers), and for each
configuration a fresh database, queue and bucket:

- ``sqlite``: one worker, SQLite state, SQLite queue, local store (the one-machine default);
- ``sqlite+s3``: one worker, SQLite state and queue, the moto S3 store;
- ``fleet xN``: N workers (1, 2, 3), each with its own home, on PostgreSQL, Redis and
  the moto S3 store.

The workers are started and idle before the clips are submitted (from another process);
a run's span is the first claim to the last finish, on the database's clock. ``job s``
is the mean claim-to-done time of one job, as its worker recorded it. Figures only:
nothing here passes or fails. All the servers share this machine's cores with the
workers, so the curve says how the fleet code scales here, not what N machines give.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.approaches import cli, peakops_env

CLIPS = 20
FRAMES = 5
TIMEOUT_S = 600.0


def make_clips(folder: Path, count: int) -> list[Path]:
    from core.media.samples import make_clip
    folder.mkdir(parents=True, exist_ok=True)
    return [make_clip(folder / f"site-{i:02d}.mp4", seconds=2.0 + 0.1 * i, width=320,
                      height=240, keyint=25) for i in range(count)]


@contextlib.contextmanager
def servers() -> Iterator[dict]:
    """PostgreSQL, Redis and moto S3 on loopback for the length of the benchmark."""
    from moto.server import ThreadedMotoServer

    from tests.servers import postgres_server, redis_server
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        with postgres_server() as pg, redis_server() as redis:
            yield {"pg": pg, "redis": redis, "s3": f"http://{host}:{port}"}
    finally:
        moto.stop()


def config_env(kind: str, parts: dict, workdir: Path) -> tuple[dict[str, str], object]:
    """Environment shared by a configuration's processes, and how to read its database."""
    from tests.s3server import DUMMY_CREDENTIALS, new_bucket
    env = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": str(FRAMES), "PEAKOPS_LOG_LEVEL": "warning",
           "AWS_REGION": "us-east-1", **DUMMY_CREDENTIALS,
           "AWS_CONFIG_FILE": str(workdir / "aws-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "aws-credentials")}
    if kind != "sqlite":
        env.update({"PEAKOPS_STORAGE": "s3", "PEAKOPS_S3_ENDPOINT_URL": parts["s3"],
                    "PEAKOPS_S3_BUCKET": new_bucket(parts["s3"], "bench")})
    if kind == "fleet":
        import redis
        name = parts["pg"].create_database()
        env["PEAKOPS_DATABASE_URL"] = parts["pg"].url(name)
        env["PEAKOPS_QUEUE_URL"] = parts["redis"].url(0)
        redis.Redis.from_url(env["PEAKOPS_QUEUE_URL"]).flushdb()
        return env, env["PEAKOPS_DATABASE_URL"]
    return env, workdir / "w0" / "home" / "peakops.db"


def query(where, sql: str) -> list[tuple]:
    if isinstance(where, str):
        import psycopg
        with psycopg.connect(where, autocommit=True) as conn:
            return conn.execute(sql).fetchall()
    import sqlite3
    with contextlib.closing(sqlite3.connect(where, timeout=30)) as conn:
        return conn.execute(sql).fetchall()


def wait(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_config(kind: str, workers: int, parts: dict, clips: list[Path], root: Path) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-{workers}-", dir=root))
    env, where = config_env(kind, parts, workdir)
    procs = []
    try:
        for n in range(workers):
            home = workdir / f"w{n}" / "home"
            home.mkdir(parents=True)
            with (workdir / f"worker-{n}.log").open("wb") as log:
                procs.append(subprocess.Popen(
                    cli("worker"), env={**peakops_env(home), **env}, cwd=workdir,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True))
        wait(lambda: len(_idle(where)) == workers, "the workers to start")
        # SQLite is one machine: the submitter shares the worker's home (its database).
        submit_home = workdir / ("w0" if kind != "fleet" else "submitter") / "home"
        subprocess.run(cli("submit", *map(str, clips)), env={**peakops_env(submit_home), **env},
                       cwd=workdir, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, timeout=TIMEOUT_S)
        wait(lambda: query(where, "SELECT COUNT(*) FROM uploads WHERE status "
                                  "IN ('DONE', 'FAILED')")[0][0] == len(clips), "the jobs")
        done, first, last = query(where, "SELECT COUNT(*), MIN(started_at), MAX(finished_at) "
                                          "FROM uploads WHERE status = 'DONE'")[0]
        jobs = [b - a for a, b in query(where, "SELECT started_at, finished_at FROM uploads "
                                               "WHERE status = 'DONE'")]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    span = last - first
    return {"config": kind if kind != "fleet" else f"fleet x{workers}", "workers": workers,
            "done": done, "span_s": span, "jobs_per_min": done / span * 60,
            "job_s": statistics.mean(jobs)}


def _idle(where) -> list[tuple]:
    try:
        return query(where, "SELECT name FROM workers WHERE state = 'idle'")
    except Exception:  # the database or its tables are not there yet
        return []


def table(rows: list[dict]) -> str:
    lines = [f"{'configuration':<14}{'workers':>8}{'done':>6}{'span s':>9}{'jobs/min':>10}"
             f"{'job s':>8}{'speed-up':>10}"]
    base = next((r["jobs_per_min"] for r in rows if r["config"] == "fleet x1"), None)
    for r in rows:
        speedup = f"{r['jobs_per_min'] / base:.2f}x" if base and r["config"].startswith(
            "fleet") else ""
        lines.append(f"{r['config']:<14}{r['workers']:>8}{r['done']:>6}{r['span_s']:>9.1f}"
                     f"{r['jobs_per_min']:>10.1f}{r['job_s']:>8.2f}{speedup:>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=CLIPS, help="clips per run (default 20)")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    print(f"this machine: {os.cpu_count()} cores; PostgreSQL, Redis, moto S3 and every "
          "worker share them", flush=True)
    with tempfile.TemporaryDirectory(prefix="peakops-bench-fleet-") as tmp:
        root = Path(tmp)
        clips = make_clips(root / "clips", args.clips)
        rows = []
        with servers() as parts:
            for kind, workers in (("sqlite", 1), ("sqlite+s3", 1), ("fleet", 1), ("fleet", 2),
                                  ("fleet", 3)):
                rows.append(run_config(kind, workers, parts, clips, root))
                print(table(rows).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    fleet, lite = (next(r for r in rows if r["config"] == c) for c in ("fleet x1", "sqlite+s3"))
    inside = fleet["job_s"] - lite["job_s"]
    between = fleet["span_s"] / fleet["done"] - lite["span_s"] / lite["done"]
    print(f"\nper-job cost of PostgreSQL + Redis against SQLite, one worker, same S3 store: "
          f"{inside * 1000:+.0f} ms inside a job (claim to done), {between * 1000:+.0f} ms "
          f"per job over the whole run (queue pickup included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
