"""The queue on Huey's Redis storage (a real redis-server) and on SQLite, the default."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys

import pytest
import redis as redis_client
from huey import RedisHuey, SqliteHuey

from batch.queue import QueueUnreachableError, describe_queue, make_huey, make_queue
from core.media import samples
from tests.helpers import REPO, cli_env, cli_json, make_settings, run_cli, wait_for
from tests.servers import HOST, free_port, redis_server

FAST = {"PEAKOPS_MAX_FRAMES_PER_VIDEO": "4", "PEAKOPS_RETRY_BACKOFF": "0"}
REDIS_KEY = "huey.redis.peakops"  # Huey's list for the queue named "peakops"


def waiting_in_redis(url: str) -> int:
    client = redis_client.Redis.from_url(url)
    try:
        return client.llen(REDIS_KEY)
    finally:
        client.close()


def test_default_queue_is_sqlite_in_the_home(tmp_path):
    settings = make_settings(tmp_path / "home")
    huey = make_huey(settings)
    assert isinstance(huey, SqliteHuey) and huey.storage.filename == str(
        tmp_path / "home" / "queue.db")
    assert describe_queue(settings).startswith(f"SQLite at {tmp_path / 'home' / 'queue.db'}")


def test_sqlite_queue_url_names_the_file(tmp_path):
    settings = make_settings(tmp_path / "home", queue_url=f"sqlite:///{tmp_path}/q/jobs.db")
    queue = make_queue(settings)
    assert queue.enqueue([7]) == 1
    assert queue.pending_upload_ids() == {7} and (tmp_path / "q" / "jobs.db").exists()
    assert not (tmp_path / "home" / "queue.db").exists()


def test_redis_queue_holds_upload_ids(tmp_path, redis_url, redis_instance):
    settings = make_settings(tmp_path / "home", queue_url=redis_url)
    queue = make_queue(settings)
    assert isinstance(queue.huey, RedisHuey)
    assert queue.enqueue([3, 1, 2]) == 3
    assert waiting_in_redis(redis_url) == 3
    assert queue.pending_upload_ids() == {1, 2, 3}
    shown = describe_queue(settings)
    assert shown.endswith("(3 message(s) waiting)") and "***@" in shown
    assert redis_instance.password not in shown
    assert not (tmp_path / "home" / "queue.db").exists()


def test_unreachable_redis_is_named_without_its_password(tmp_path):
    url = f"redis://:pw-nobody-9@{HOST}:{free_port()}/0"
    with pytest.raises(QueueUnreachableError) as info:
        describe_queue(make_settings(tmp_path / "home", queue_url=url))
    message = str(info.value)
    assert message.startswith(f"queue redis://:***@{HOST}:") and "pw-nobody-9" not in message


def test_burst_worker_without_its_queue_fails_in_one_line(tmp_path):
    url = f"redis://:pw-gone-3@{HOST}:{free_port()}/0"
    proc = run_cli(tmp_path / "home", "worker", "--burst", PEAKOPS_QUEUE_URL=url)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"peakops: queue redis://:***@{HOST}:") and "unreachable" in last
    assert "pw-gone-3" not in proc.stderr


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("queue-clips")
    return [samples.make_clip(folder / f"dock-{i}.mp4", seconds=2 + i, width=160, height=120)
            for i in range(2)]  # different lengths: different content, not duplicates


def test_worker_burst_consumes_the_redis_queue(tmp_path, redis_url, two_clips):
    """State on SQLite in one home, queue on Redis: legal on a single machine."""
    home = tmp_path / "home"
    env = {**FAST, "PEAKOPS_QUEUE_URL": redis_url}
    proc = run_cli(home, "submit", *map(str, two_clips), check=True, **env)
    ids = [int(line.split("\t")[0]) for line in proc.stdout.splitlines()]
    assert len(set(ids)) == 2 and waiting_in_redis(redis_url) == 2

    worker = run_cli(home, "worker", "--burst", timeout=300, **env)
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert "re-sent" not in worker.stderr  # every message came through Redis
    assert waiting_in_redis(redis_url) == 0
    rows = {u["id"]: u for u in cli_json(home, "list", **env)}
    assert {rows[i]["status"] for i in ids} == {"DONE"}
    assert not (home / "queue.db").exists()




def test_worker_rides_out_a_redis_restart(tmp_path, two_clips):
    home, log = tmp_path / "home", tmp_path / "worker.log"
    port = free_port()
    with redis_server(port=port) as first:
        env = {**FAST, "PEAKOPS_QUEUE_URL": first.url()}
        with log.open("w") as err:
            worker = subprocess.Popen(
                [sys.executable, "-m", "cli", "worker"], cwd=tmp_path,
                env=cli_env(home, **env), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err)
        try:
            first_id = int(run_cli(home, "submit", str(two_clips[0]), check=True,
                                   **env).stdout.split("\t")[0])
            status = lambda i: {u["id"]: u for u in cli_json(home, "list")}[i]["status"]  # noqa: E731
            wait_for(lambda: status(first_id) == "DONE", what="the first upload", timeout=120)
        except BaseException:
            worker.kill()
            raise
    try:  # Redis is gone: the worker waits for it instead of exiting
        wait_for(lambda: "unreachable" in log.read_text(), what="the worker to notice", timeout=120)
        assert worker.poll() is None
        with redis_server(port=port, password=first.password):
            second_id = int(run_cli(home, "submit", str(two_clips[1]), check=True,
                                    **env).stdout.split("\t")[0])
            assert second_id != first_id
            wait_for(lambda: status(second_id) == "DONE", what="the upload sent after the restart", timeout=120)
            assert "reachable again" in log.read_text()
            assert first.password not in log.read_text()
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_the_worker_loads_no_psycopg_for_huey():
    """huey imports psycopg whenever it is installed; a worker on SQLite must not pay for it
    (about 12 MB of the tree's budget), and a fleet worker still gets it when it needs it."""
    code = ("import sys, batch.worker; assert 'psycopg' not in sys.modules, 'loaded'; "
            "import psycopg, huey.storage; print(psycopg.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "psycopg", proc.stderr


def test_one_queue_per_process_and_one_redis_connection_for_every_send(tmp_path, redis_url):
    from batch.queue import client_name, close_queues, sender, shared_queue
    settings = make_settings(tmp_path / "home", queue_url=redis_url)
    observer = redis_client.Redis.from_url(redis_url)

    def ours() -> int:  # this process's queue connections, by the name they carry
        return sum(1 for c in observer.client_list() if c["name"] == client_name())
    try:
        close_queues()
        gc.collect()  # queues earlier tests made and dropped close their connections
        wait_for(lambda: ours() == 0, what="earlier queues' connections to close", timeout=10)
        send = sender(settings)
        for upload_id in range(1, 21):  # submit, retry, the console: one send each
            send([upload_id], "process")
        assert shared_queue(settings) is shared_queue(settings)
        assert shared_queue(settings).pending_upload_ids() == set(range(1, 21))
        assert ours() == 1  # one pool, one connection, for twenty sends
        close_queues()
        wait_for(lambda: ours() == 0, what="the queue's connection to close", timeout=10)
    finally:
        close_queues()
        observer.close()
