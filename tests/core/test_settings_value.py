"""Settings travel between processes as plain values and come back equal and validated."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.config import load_settings, settings_from_dict
from core.errors import ConfigError


def test_round_trip_through_json_keeps_every_value(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("max_frames_per_video = 7\n")
    settings = load_settings({"PEAKOPS_HARD_MEMORY_LIMIT": "90000",
                              "PEAKOPS_MAX_MEMORY_PER_CHILD": "80000"}, config_file=config,
                             overrides={"home": str(tmp_path / "h")})
    again = settings_from_dict(json.loads(json.dumps(settings.to_dict())))
    # log_level is normalised to lower case on parsing; every other value is identical
    assert again == dataclasses.replace(settings, log_level=settings.log_level.lower())
    assert (again.home, again.config_file, again.max_frames_per_video,
            again.hard_memory_limit) == (tmp_path / "h", config, 7, 90000)


def test_a_bad_value_is_refused_with_its_key(tmp_path):
    values = load_settings({}, overrides={"home": str(tmp_path)}).to_dict()
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({**values, "max_attempts": 0})
    assert caught.value.evidence["key"] == "max_attempts" and "max_attempts" in str(caught.value)


def test_urls_reach_the_child_whole_and_are_shown_redacted(tmp_path):
    url = "redis://worker:s3cret-pass@127.0.0.1:6390/0"
    settings = load_settings({"PEAKOPS_QUEUE_URL": url}, overrides={"home": str(tmp_path)})
    assert settings_from_dict(json.loads(json.dumps(settings.to_dict()))).queue_url == url
    assert "s3cret-pass" not in json.dumps(settings.public_dict()) + repr(settings)


@pytest.mark.parametrize(("key", "value"), [
    ("max_frames_per_video", 0), ("max_memory_per_child", 10), ("lease_seconds", 1.0),
    ("timezone", "Mars/Olympus"), ("offpeak_windows", "someday 25:00-26:00"),
    ("max_attempts", True), ("queue_url", "ftp://queue.example"),
])
def test_the_value_itself_refuses_what_the_loader_refuses(tmp_path, key, value):
    """Checked inside the value too: a Settings made directly or by ``dataclasses.replace``
    cannot hold what the loader would refuse; the message names the setting."""
    settings = load_settings({}, overrides={"home": str(tmp_path)})
    with pytest.raises(ConfigError) as by_loader:
        load_settings({}, overrides={"home": str(tmp_path), key: value})
    assert by_loader.value.evidence["key"] == key
    with pytest.raises(ConfigError) as by_value:
        dataclasses.replace(settings, **{key: value})
    assert by_value.value.evidence["key"] == key
    assert str(by_value.value).startswith(f"Settings.{key}: ")


def test_the_value_checks_the_rules_between_settings(tmp_path):
    settings = load_settings({}, overrides={"home": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"^Settings.hard_memory_limit: expected a hard limit "
                                          r"at or above the soft limit"):
        dataclasses.replace(settings, max_memory_per_child=80000, hard_memory_limit=70000)
    with pytest.raises(ConfigError, match="PEAKOPS_S3_BUCKET: required"):
        dataclasses.replace(settings, storage="s3")
    with pytest.raises(ConfigError) as caught:  # the loader names where the value came from
        load_settings({"PEAKOPS_HARD_MEMORY_LIMIT": "70000",
                       "PEAKOPS_MAX_MEMORY_PER_CHILD": "80000"},
                      overrides={"home": str(tmp_path)})
    assert str(caught.value).startswith("PEAKOPS_HARD_MEMORY_LIMIT: expected a hard limit")
    fine = dataclasses.replace(settings, max_frames_per_video=3, log_level="debug")
    assert (fine.max_frames_per_video, fine.log_level) == (3, "debug")
