"""A fleet worker rides out its state database and its queue going away (issue #23 item 6).

Real servers the test stops and starts: PostgreSQL (pg_ctl stop/start on the same data)
and redis-server (stopped, then started again on the same port). The worker says so once
when each goes and once when it is back, keeps running, and processes what is submitted
afterwards.
"""

from __future__ import annotations

import signal

from core.media import samples
from tests.fleet.test_fleet import DEADLINE_S, rows, start_worker
from tests.helpers import HoldPoint, run_cli, wait_for
from tests.s3server import aws_env, moto_endpoint, new_bucket  # noqa: F401
from tests.servers import free_port, postgres_server, redis_server

GONE = "waiting for it, retrying with a backoff"
BACK = "is reachable again after"


def test_the_worker_rides_out_a_database_and_a_queue_outage(tmp_path, moto_endpoint):  # noqa: F811
    clips = [samples.make_clip(tmp_path / f"site-{i}.mp4", seconds=1 + 0.2 * i, width=160,
                               height=120) for i in range(3)]
    log = tmp_path / "worker.log"
    redis_port = free_port()
    worker = None
    with postgres_server() as pg:
        url = pg.url(pg.create_database())
        submitter = tmp_path / "submitter" / "home"
        submitter.parent.mkdir()

        def submit_and_finish(clip, env) -> None:
            done = run_cli(submitter, "submit", str(clip), timeout=120, **env)
            assert done.returncode == 0, done.stderr
            upload_id = int(done.stdout.split("\t")[0])
            wait_for(lambda: rows(
                url, "SELECT status FROM uploads WHERE id = %s", [upload_id]) == [("DONE",)],
                     what=f"upload {upload_id} DONE",
                     logs=[log], timeout=DEADLINE_S, interval=0.2)

        try:
            with redis_server(port=redis_port) as first_redis:
                env = {**aws_env(tmp_path), "PEAKOPS_DATABASE_URL": url,
                       "PEAKOPS_QUEUE_URL": first_redis.url(), "PEAKOPS_STORAGE": "s3",
                       "PEAKOPS_S3_BUCKET": new_bucket(moto_endpoint, "outage"),
                       "PEAKOPS_S3_ENDPOINT_URL": moto_endpoint, "AWS_REGION": "us-east-1",
                       "PEAKOPS_MAX_FRAMES_PER_VIDEO": "3", "PEAKOPS_RETRY_BACKOFF": "0"}
                worker = start_worker(tmp_path / "worker" / "home", env, log)
                submit_and_finish(clips[0], env)

                pg.stop()  # the state database goes away while the worker idles
                wait_for(lambda: log.read_text().count(GONE) == 1,
                         what="the worker to say the database is gone",
                         logs=[log], timeout=DEADLINE_S, interval=0.2)
                assert worker.poll() is None
                pg.start()
                wait_for(lambda: log.read_text().count(BACK) == 1,
                         what="the worker to say the database is back",
                         logs=[log], timeout=DEADLINE_S, interval=0.2)
                submit_and_finish(clips[1], env)
            # redis-server stopped: the queue goes away
            wait_for(lambda: log.read_text().count(GONE) == 2,
                     what="the worker to say the queue is gone",
                     logs=[log], timeout=DEADLINE_S, interval=0.2)
            assert worker.poll() is None
            with redis_server(port=redis_port, password=first_redis.password):
                wait_for(lambda: log.read_text().count(BACK) == 2,
                         what="the worker to say the queue is back",
                         logs=[log], timeout=DEADLINE_S, interval=0.2)
                submit_and_finish(clips[2], env)
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=60) == 0
        finally:
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()
    text = log.read_text()
    assert (text.count(GONE), text.count(BACK)) == (2, 2), text[-3000:]
    assert "database" in text.split(GONE)[0].splitlines()[-1]
    assert "queue" in text.split(GONE)[1].splitlines()[-1]
    assert "Traceback" not in text, text[-3000:]
    assert first_redis.password not in text and pg.password not in text


def test_a_database_outage_during_a_job_costs_no_attempt(tmp_path, moto_endpoint,  # noqa: F811
                                                         redis_url):  # noqa: F811
    """Issue #23 item 7: the job is held at frame 2, PostgreSQL is stopped, the job goes on
    into the outage and ends; its outcome waits for the database, which then comes back:
    the upload ends DONE and the outage counted no attempt."""
    clip = samples.make_clip(tmp_path / "site.mp4", seconds=2, width=160, height=120)
    log = tmp_path / "worker.log"
    hold = HoldPoint(tmp_path)
    hold.arm(after_frames=2)
    worker = None
    with postgres_server() as pg:
        url = pg.url(pg.create_database())
        env = {**aws_env(tmp_path), "PEAKOPS_DATABASE_URL": url, "PEAKOPS_QUEUE_URL": redis_url,
               "PEAKOPS_STORAGE": "s3", "PEAKOPS_S3_BUCKET": new_bucket(moto_endpoint, "outage"),
               "PEAKOPS_S3_ENDPOINT_URL": moto_endpoint, "AWS_REGION": "us-east-1",
               "PEAKOPS_MAX_FRAMES_PER_VIDEO": "4", "PEAKOPS_RETRY_BACKOFF": "0",
               "PEAKOPS_MAX_ATTEMPTS": "1"}  # one counted attempt would be the last
        try:
            worker = start_worker(tmp_path / "worker" / "home", {**env, **hold.env}, log)
            (tmp_path / "submitter").mkdir()
            done = run_cli(tmp_path / "submitter" / "home", "submit", str(clip), **env)
            assert done.returncode == 0, done.stderr
            upload_id = int(done.stdout.split("\t")[0])
            assert hold.wait_reached()["upload_id"] == upload_id
            pg.stop()
            hold.release()  # the job goes on into the outage
            wait_for(lambda: "its outcome waits for the database" in log.read_text(),
                     what="the outcome to wait for the database",
                     logs=[log], timeout=DEADLINE_S, interval=0.2)
            assert worker.poll() is None
            pg.start()
            wait_for(lambda: rows(
                url, "SELECT status FROM uploads WHERE id = %s", [upload_id]) == [("DONE",)],
                     what=f"upload {upload_id} DONE",
                     logs=[log], timeout=DEADLINE_S, interval=0.2)
            [(attempts, frames)] = rows(
                url, "SELECT attempts, (SELECT COUNT(*) FROM frames WHERE upload_id = %s) "
                "FROM uploads WHERE id = %s", [upload_id, upload_id])
            assert (attempts, frames) == (1, 4)
            kinds = [k for (k,) in rows(url, "SELECT kind FROM events WHERE upload_id = %s "
                                        "ORDER BY id", [upload_id])]
            assert "failed" not in kinds and kinds[-1] == "done", kinds
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
        finally:
            hold.release()
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()
    text = log.read_text()
    assert "outcome written" in text and "Traceback" not in text, text[-3000:]


def test_redis_going_away_during_a_job_leaves_the_worker_running(tmp_path, moto_endpoint,  # noqa: F811
                                                                 postgres_url):
    """Issue #23 item 6 as reported: Redis stops while a job runs (held at frame 1); the job
    ends DONE, the worker says the queue is gone, waits, and goes on when it is back."""
    clips = [samples.make_clip(tmp_path / f"site-{i}.mp4", seconds=1 + 0.3 * i, width=160,
                               height=120) for i in range(2)]
    log = tmp_path / "worker.log"
    hold = HoldPoint(tmp_path)
    hold.arm(after_frames=1)
    port = free_port()
    worker = None
    base = {**aws_env(tmp_path), "PEAKOPS_DATABASE_URL": postgres_url, "PEAKOPS_STORAGE": "s3",
            "PEAKOPS_S3_BUCKET": new_bucket(moto_endpoint, "outage"),
            "PEAKOPS_S3_ENDPOINT_URL": moto_endpoint, "AWS_REGION": "us-east-1",
            "PEAKOPS_MAX_FRAMES_PER_VIDEO": "3", "PEAKOPS_RETRY_BACKOFF": "0"}
    (tmp_path / "submitter").mkdir()

    def status(upload_id):
        return rows(postgres_url, "SELECT status FROM uploads WHERE id = %s", [upload_id])

    try:
        with redis_server(port=port) as first:
            env = {**base, "PEAKOPS_QUEUE_URL": first.url()}
            worker = start_worker(tmp_path / "worker" / "home", {**env, **hold.env}, log)
            done = run_cli(tmp_path / "submitter" / "home", "submit", str(clips[0]), **env)
            assert done.returncode == 0, done.stderr
            first_id = int(done.stdout.split("\t")[0])
            assert hold.wait_reached()["upload_id"] == first_id
        hold.release()  # Redis is gone; the job goes on and ends
        wait_for(lambda: status(first_id) == [("DONE",)], what="the held upload DONE", logs=[log], timeout=DEADLINE_S, interval=0.2)
        wait_for(lambda: log.read_text().count(GONE) == 1,
                 what="the worker to say the queue is gone",
                 logs=[log], timeout=DEADLINE_S, interval=0.2)
        assert worker.poll() is None
        with redis_server(port=port, password=first.password):
            wait_for(lambda: log.read_text().count(BACK) == 1,
                     what="the worker to say the queue is back",
                     logs=[log], timeout=DEADLINE_S, interval=0.2)
            done = run_cli(tmp_path / "submitter" / "home", "submit", str(clips[1]), **env)
            assert done.returncode == 0, done.stderr
            second_id = int(done.stdout.split("\t")[0])
            wait_for(lambda: status(second_id) == [("DONE",)],
                     what="the next upload DONE",
                     logs=[log], timeout=DEADLINE_S, interval=0.2)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
    finally:
        hold.release()
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
    text = log.read_text()
    assert (text.count(GONE), text.count(BACK)) == (1, 1) and "Traceback" not in text, \
        text[-3000:]
