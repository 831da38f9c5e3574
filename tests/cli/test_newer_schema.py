"""A state database a newer PeakOps upgraded (schema 99, a renamed column) is refused at
open by doctor, the worker, list and submit, on SQLite and on a real PostgreSQL, and is
left as it was."""

from __future__ import annotations

import json
import re

import pytest

from core.errors import SchemaTooNewError
from core.store.db import open_database
from core.store.schema import SCHEMA_VERSION
from tests.databases import state_settings
from tests.helpers import run_cli
from tests.s3server import aws_env, moto_endpoint, new_bucket  # noqa: F401

REFUSAL = f"database schema 99 is newer than this PeakOps ({SCHEMA_VERSION}): upgrade PeakOps"


@pytest.fixture
def env(request, tmp_path, database_url) -> dict[str, str]:
    """The command line's environment for the database under test."""
    if database_url is None:
        return {}
    moto = request.getfixturevalue("moto_endpoint")
    return {**aws_env(tmp_path), "PEAKOPS_DATABASE_URL": database_url,
            "PEAKOPS_QUEUE_URL": request.getfixturevalue("redis_url"),
            "PEAKOPS_STORAGE": "s3", "PEAKOPS_S3_BUCKET": new_bucket(moto),
            "PEAKOPS_S3_ENDPOINT_URL": moto, "AWS_REGION": "us-east-1"}


def upgraded_by_a_newer_peakops(settings) -> None:
    db = open_database(settings)
    try:
        with db.transaction():
            db.execute("ALTER TABLE uploads RENAME COLUMN original_name TO file_name")
            db.set_schema_version(99)
    finally:
        db.close()


def schema_version(settings) -> int:
    from core.store.postgres import PostgresDatabase
    from core.store.sqldb import SqliteDatabase
    db = (PostgresDatabase.connect(settings.database_url)
          if settings.database_dialect == "postgresql" else SqliteDatabase.open(settings.db_path))
    try:
        return db.schema_version()
    finally:
        db.close()


def test_a_newer_schema_is_refused_by_every_command(tmp_path, database_url, env, clip_h264):
    home = tmp_path / "home"
    settings = state_settings(home, database_url)
    upgraded_by_a_newer_peakops(settings)
    with pytest.raises(SchemaTooNewError, match=re.escape(REFUSAL)):
        open_database(settings)

    for args in (["list"], ["submit", str(clip_h264)], ["worker", "--burst"]):
        proc = run_cli(home, *args, timeout=120, **env)
        assert (proc.returncode, proc.stderr) == (1, f"peakops: {REFUSAL}\n"), args
        assert "Traceback" not in proc.stdout + proc.stderr
    doctor = run_cli(home, "doctor", "--json", **env)
    checks = {c["check"]: c for c in json.loads(doctor.stdout)}
    assert doctor.returncode == 1
    assert (checks["database"]["ok"], checks["database"]["detail"]) == (False, REFUSAL)
    assert schema_version(settings) == 99  # nothing was written
