"""The environment handed to programs that are not ours (core/procenv.py)."""

from __future__ import annotations

from core.procenv import clean_env

BUNDLE = "/opt/peakops/_internal"


def test_frozen_restores_the_original_library_path():
    env = {"PATH": "/usr/bin", "LD_LIBRARY_PATH": BUNDLE, "LD_LIBRARY_PATH_ORIG": "/usr/local/lib"}
    assert clean_env(env, frozen=True) == {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/usr/local/lib"}


def test_frozen_without_an_original_drops_the_variable():
    env = {"PATH": "/usr/bin", "LD_LIBRARY_PATH": BUNDLE}
    assert clean_env(env, frozen=True) == {"PATH": "/usr/bin"}


def test_not_frozen_returns_a_copy_unchanged():
    env = {"LD_LIBRARY_PATH": "/x", "LD_LIBRARY_PATH_ORIG": "/y"}
    result = clean_env(env, frozen=False)
    assert result == env and result is not env


def test_default_is_this_process(monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", "/somewhere")
    assert clean_env()["LD_LIBRARY_PATH"] == "/somewhere"  # pytest is not a frozen app
