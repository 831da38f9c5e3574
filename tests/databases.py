"""Run a test on both state databases: SQLite in the test's temp folder and a fresh
database on the session's throwaway PostgreSQL server (``tests.servers``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
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
