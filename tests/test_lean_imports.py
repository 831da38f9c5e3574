"""What a job child and a worker load (issue 22 item 2): each promise checked in a fresh
interpreter after a real job on a real clip, by the packages left in ``sys.modules``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from core.app import open_app
from core.intake import submit_file
from core.store import queries
from tests.helpers import REPO, make_settings

_SETTINGS = """
import json, sys
from pathlib import Path
from core.config import load_settings
home = Path(sys.argv[1])
settings = load_settings({"PEAKOPS_HOME": str(home)}, config_file=home.parent / "none.toml",
                         overrides={"max_frames_per_video": 3})
"""

# What the job child does (core.jobs.child.main): its module, open_app, one job run.
_CHILD = _SETTINGS + """
from core.jobs import child, pipeline
app = child.open_app(settings)
status = pipeline.process_now(app, int(sys.argv[2]), "lean-test")
print(json.dumps({"status": status, "loaded": sorted({n.split(".")[0] for n in sys.modules})}))
"""

# A real worker on the SQLite queue: burst run, its job in a real job child.
_WORKER = _SETTINGS + """
from batch.worker import Worker
worker = Worker(settings, burst=True)
code = worker.run()
print(json.dumps({"code": code, "loaded": sorted({n.split(".")[0] for n in sys.modules})}))
"""


def submitted(tmp_path, clip) -> tuple:
    home = tmp_path / "home"
    app = open_app(make_settings(home, max_frames_per_video=3))
    try:
        upload_id = submit_file(app, clip).upload_id
    finally:
        app.close()
    return home, upload_id


def run_script(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def status_of(home, upload_id) -> str:
    app = open_app(make_settings(home))
    try:
        return queries.get_upload(app.db, upload_id)["status"]
    finally:
        app.close()


def test_a_local_store_job_child_loads_no_s3_queue_or_bulk_sql_packages(tmp_path, clip_h264):
    home, upload_id = submitted(tmp_path, clip_h264)
    out = run_script(_CHILD, str(home), str(upload_id))
    assert out["status"] == "DONE"
    loaded = set(out["loaded"])
    assert "av" in loaded  # the job really decoded with libav
    assert not loaded & {"boto3", "botocore", "s3transfer", "redis", "huey", "psycopg",
                         "sqlite_utils", "apscheduler", "PySide6", "psutil", "email",
                         "_hashlib"}


def test_a_worker_on_the_sqlite_queue_loads_no_redis_and_no_pillow(tmp_path, clip_h264):
    home, upload_id = submitted(tmp_path, clip_h264)
    out = run_script(_WORKER, str(home))
    assert out["code"] == 0
    assert status_of(home, upload_id) == "DONE"  # the job ran, in its own child
    loaded = set(out["loaded"])
    assert "huey" in loaded  # the queue was opened
    assert not loaded & {"redis", "ssl", "asyncio", "PIL", "av", "boto3", "botocore",
                         "psycopg", "sqlite_utils", "PySide6", "email"}


# A Redis queue in a process where huey was imported with redis hidden: huey's Redis
# storage gets redis when the queue is made, and a down server reads as unreachable.
_REDIS_QUEUE = _SETTINGS.replace('overrides={', 'overrides={"queue_url": sys.argv[2], ') + """
from batch.queue import QueueUnreachableError, make_queue
import huey.storage
hidden_at_import = huey.storage.RedisStorage.redis_client is None
try:
    make_queue(settings).enqueue([1])
    outcome = "sent"
except QueueUnreachableError as exc:
    outcome = str(exc)
print(json.dumps({"hidden": hidden_at_import, "outcome": outcome,
                  "loaded": sorted({n.split(".")[0] for n in sys.modules})}))
"""


def test_a_redis_queue_still_loads_redis_when_it_is_made(tmp_path):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = run_script(_REDIS_QUEUE, str(tmp_path / "home"), f"redis://127.0.0.1:{port}/0")
    assert out["hidden"] is True  # huey's Redis storage had no redis until the queue was made
    assert "redis" in out["loaded"]
    assert out["outcome"].startswith(f"queue redis://127.0.0.1:{port}/0 unreachable")
