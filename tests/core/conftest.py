"""The lifecycle's ``db`` runs every test that takes it on both state databases
(``database_url`` of :mod:`tests.databases`: SQLite and a real PostgreSQL)."""

from __future__ import annotations

import os
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


@pytest.fixture
def settings_env(tmp_path, monkeypatch):
    """No PEAKOPS_* variable and no user config file: the call's arguments decide."""
    for name in list(os.environ):
        if name.startswith(("PEAKOPS_", "MAX_", "CELERY_", "ENABLE_AWS")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
