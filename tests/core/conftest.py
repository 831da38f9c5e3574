"""The lifecycle's ``db`` runs every test that takes it on both state databases
(``database_url`` of :mod:`tests.databases`: SQLite and a real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.store.db import open_database
from core.store.sqldb import SqlDatabase
from tests.databases import state_settings


@pytest.fixture
def db(tmp_path: Path, database_url: str | None) -> Iterator[SqlDatabase]:
    database = open_database(state_settings(tmp_path / "home", database_url))
    yield database
    database.close()
