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
    settings = load_settings({"PEAKOPS_HARD_MEMORY_LIMIT": "90000"}, config_file=config,
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
