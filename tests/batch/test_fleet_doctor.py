"""`peakops doctor` on a fleet's parts: PostgreSQL, Redis and S3, each checked on its own."""

from __future__ import annotations

import json

import pytest

from core.store.schema import SCHEMA_VERSION
from tests.helpers import run_cli
from tests.s3server import aws_env, moto_endpoint, new_bucket  # noqa: F401
from tests.servers import HOST, free_port


@pytest.fixture
def fleet_env(tmp_path, postgres_url, redis_url, moto_endpoint):  # noqa: F811
    bucket = new_bucket(moto_endpoint)
    return {**aws_env(tmp_path), "PEAKOPS_DATABASE_URL": postgres_url,
            "PEAKOPS_QUEUE_URL": redis_url, "PEAKOPS_STORAGE": "s3",
            "PEAKOPS_S3_BUCKET": bucket, "PEAKOPS_S3_ENDPOINT_URL": moto_endpoint,
            "AWS_REGION": "us-east-1"}


def doctor(tmp_path, env, *secrets: str) -> tuple[int, dict[str, dict]]:
    proc = run_cli(tmp_path / "home", "doctor", "--json", **env)
    for secret in secrets:  # nothing the operator sees holds a password
        assert secret not in proc.stdout and secret not in proc.stderr
    return proc.returncode, {c["check"]: c for c in json.loads(proc.stdout)}


def test_doctor_checks_every_fleet_part(tmp_path, fleet_env, postgres_instance,
                                        redis_instance):
    secrets = (postgres_instance.password, redis_instance.password)
    code, checks = doctor(tmp_path, fleet_env, *secrets)
    assert code == 0, checks
    assert set(checks) == {"ffmpeg", "home", "database", "queue", "storage", "analyzer", "memory"}
    assert checks["memory"]["detail"], checks["memory"]
    assert checks["database"]["detail"].startswith("PostgreSQL 15.")
    assert "peakops:***@127.0.0.1" in checks["database"]["detail"]
    assert f"(schema {SCHEMA_VERSION}, 0 uploads)" in checks["database"]["detail"]
    assert checks["queue"]["detail"].startswith(f"Redis at redis://:***@{HOST}:")
    assert fleet_env["PEAKOPS_S3_BUCKET"] in checks["storage"]["detail"]


@pytest.mark.parametrize("part", ["database", "queue"])
def test_doctor_names_the_unreachable_part(tmp_path, fleet_env, postgres_instance,
                                           redis_instance, part):
    nowhere = free_port()
    env = dict(fleet_env)
    if part == "database":
        env["PEAKOPS_DATABASE_URL"] = \
            f"postgresql://peakops:{postgres_instance.password}@{HOST}:{nowhere}/peakops"
    else:
        env["PEAKOPS_QUEUE_URL"] = f"redis://:{redis_instance.password}@{HOST}:{nowhere}/0"
    code, checks = doctor(tmp_path, env, postgres_instance.password, redis_instance.password)
    assert code == 1
    assert [name for name, c in checks.items() if not c["ok"]] == [part]
    detail = checks[part]["detail"]
    assert f"{HOST}:{nowhere}" in detail and "unreachable" in detail and "\n" not in detail


def test_postgresql_with_a_local_store_is_refused_at_start(tmp_path, postgres_url,
                                                           postgres_instance):
    proc = run_cli(tmp_path / "home", "doctor", PEAKOPS_DATABASE_URL=postgres_url)
    assert proc.returncode == 1
    assert "PEAKOPS_DATABASE_URL" in proc.stderr and "PEAKOPS_STORAGE=s3" in proc.stderr
    assert postgres_instance.password not in proc.stderr + proc.stdout
