"""The console's worker service runs on the console's settings (home and config file),
whatever the environment says: the job child gets them from its worker."""

from __future__ import annotations

import os

import pytest

from core.app import open_app
from core.config import load_settings
from core.intake import submit_file
from core.media import samples
from core.store import lifecycle, queries
from desktop.service import service_command, start_service
from tests.helpers import wait_for


@pytest.fixture
def bare_env(tmp_path, monkeypatch):
    """No PEAKOPS_* variable; the platform folders point into tmp_path."""
    for name in list(os.environ):
        if name.startswith(("PEAKOPS_", "MAX_", "CELERY_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def test_service_command_is_batch_on_the_console_home_and_config(tmp_path, bare_env):
    config = tmp_path / "peakops.toml"
    config.write_text("max_frames_per_video = 3\n")
    settings = load_settings({}, config_file=config, overrides={"home": str(tmp_path / "h")})
    argv = service_command(settings)
    assert argv[-5:] == ["--config", str(config), "--home", str(tmp_path / "h"), "batch"]


def test_service_processes_an_upload_in_the_console_home(tmp_path, bare_env):
    config = tmp_path / "peakops.toml"
    config.write_text("max_frames_per_video = 3\n")
    settings = load_settings({}, config_file=config, overrides={"home": str(tmp_path / "h")})
    clip = samples.make_clip(tmp_path / "c.mp4", seconds=2, width=160, height=120)
    app = open_app(settings)
    upload_id = submit_file(app, clip).upload_id
    proc = start_service(settings)
    try:
        wait_for(lambda: queries.get_upload(app.db, upload_id)["status"] in (
            lifecycle.DONE, lifecycle.FAILED), timeout=120, what="the upload to finish")
        row = queries.get_upload(app.db, upload_id)
        assert (row["status"], row["error_message"]) == (lifecycle.DONE, None)
        assert len(queries.detail(app.db, upload_id).as_dict()["frames"]) == 3
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        app.close()
    assert not (tmp_path / "xdg-data").exists()
