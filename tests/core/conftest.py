"""The lifecycle's fixtures run every test on both state databases: SQLite in the test's
temp folder and a fresh database on the session's throwaway PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Settings
from core.db import open_database
from core.sqldb import SqlDatabase
from tests.helpers import make_settings

DATABASES = ("sqlite", "postgresql")


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (the SQLite file in the home) or a PostgreSQL URL of a fresh database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


def state_settings(home: Path, database_url: str | None, **overrides) -> Settings:
    """Settings on ``database_url``. A PostgreSQL database needs S3 storage at load; the
    tests that use these settings pass their own store to ``open_app``."""
    if database_url is not None:
        overrides = {"database_url": database_url, "storage": "s3",
                     "s3_bucket": "not-used-by-this-test", **overrides}
    return make_settings(home, **overrides)


@pytest.fixture
def db(tmp_path: Path, database_url: str | None) -> Iterator[SqlDatabase]:
    database = open_database(state_settings(tmp_path / "home", database_url))
    yield database
    database.close()
