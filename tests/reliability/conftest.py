"""Reliability suite fixtures. ``--soak`` (registered in tests/conftest.py) runs longer."""

from __future__ import annotations

import pytest

SOAK_TIMEOUT_S = 3600


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--soak"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        for item in items:
            if "reliability" in item.nodeid:
                item.add_marker(pytest.mark.timeout(SOAK_TIMEOUT_S))
