"""``peakops config`` (values and origins), the README's settings table and TOML example,
and the ``[peakops]`` table form of a config file."""

from __future__ import annotations

import dataclasses
import re
import tomllib

import pytest

from core.config import Settings, load_settings, load_settings_with_origins
from core.errors import ConfigError
from tests.helpers import REPO, cli_json, run_cli

README = (REPO / "README.md").read_text(encoding="utf-8")


def public_fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(Settings)
            if not f.metadata.get("internal") and not f.metadata.get("test_only")}


def readme_settings_table() -> dict[str, tuple[list[str], str]]:
    """``{key: ([env names], default cell)}`` from the README's settings table."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| setting (TOML key) |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        key = re.findall(r"`([^`]+)`", cells[0])
        assert len(key) == 1, line
        assert key[0] not in rows, f"{key[0]} listed twice"
        rows[key[0]] = (re.findall(r"`([^`]+)`", cells[1]), cells[2])
    return rows


def test_readme_table_covers_every_setting_with_its_env_names_and_default():
    table = readme_settings_table()
    fields = public_fields()
    assert set(table) == set(fields)
    for name, (env, default_cell) in table.items():
        spec = fields[name]
        assert env == list(spec.metadata["env"]), name
        if default_cell.startswith("`"):
            literal = re.match(r"`([^`]+)`$", default_cell)
            assert literal, f"{name}: default cell {default_cell!r} is more than a literal"
            value = tomllib.loads(f"v = {literal[1]}")["v"]
            assert value == spec.default and type(value) in (type(spec.default), int), name
        else:
            assert spec.default is None, f"{name}: the README should show `{spec.default}`"


def test_readme_toml_example_loads(tmp_path):
    [example] = re.findall(r"```toml\n(.*?)```", README, re.DOTALL)
    path = tmp_path / "config.toml"
    path.write_text(example, encoding="utf-8")
    settings, origins = load_settings_with_origins({"PEAKOPS_HOME": str(tmp_path)},
                                                   config_file=path)
    written = tomllib.loads(example)
    assert written and all(getattr(settings, k) == v for k, v in written.items())
    assert {k for k, o in origins.items() if o.kind == "file"} == set(written)


def test_a_peakops_table_is_accepted_and_mixing_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[peakops]\nmax_frames_per_video = 7\ntimezone = 'Europe/Berlin'\n")
    settings = load_settings({"PEAKOPS_HOME": str(tmp_path)}, config_file=path)
    assert settings.max_frames_per_video == 7 and settings.timezone == "Europe/Berlin"
    path.write_text("max_frames_per_video = 7\n[peakops]\ntimezone = 'UTC'\n")
    with pytest.raises(ConfigError, match=r"both at the top \('max_frames_per_video'\) and "
                                          r"in a \[peakops\] table"):
        load_settings({"PEAKOPS_HOME": str(tmp_path)}, config_file=path)
    path.write_text("[worker]\nmax_frames_per_video = 7\n")
    with pytest.raises(ConfigError, match=r"unknown key 'worker'; settings are top-level keys "
                                          r"\(or keys of one \[peakops\] table\)"):
        load_settings({"PEAKOPS_HOME": str(tmp_path)}, config_file=path)


def test_config_lists_every_setting_with_its_origin(tmp_path):
    home = tmp_path / "home"
    config = tmp_path / "peakops.toml"
    config.write_text("[peakops]\nmax_frames_per_video = 7\nretention_days = 9\n")
    env = {"PEAKOPS_CONFIG": str(config), "MAX_VIDEO_SIZE_MB": "55",
           "PEAKOPS_RETENTION_DAYS": "12",
           "PEAKOPS_S3_ENDPOINT_URL": "http://keyid:s3cr3t@127.0.0.1:9000/",
           "PEAKOPS_QUEUE_URL": "redis://:s3cr3t@127.0.0.1:6379/0"}
    flag_home = tmp_path / "flagged"
    report = cli_json(home, "--home", str(flag_home), "config", **env)
    rows = {r["key"]: r for r in report["settings"]}
    assert set(rows) >= set(public_fields())
    assert report["config_file"] == str(config) and report["config_file_exists"]
    assert (rows["home"]["value"], rows["home"]["origin"], rows["home"]["source"]) == \
        (str(flag_home), "flag", "--home")
    assert (rows["max_frames_per_video"]["value"], rows["max_frames_per_video"]["origin"],
            rows["max_frames_per_video"]["source"]) == (7, "file", str(config))
    assert (rows["max_video_size_mb"]["value"], rows["max_video_size_mb"]["source"]) == \
        (55, "MAX_VIDEO_SIZE_MB")
    assert (rows["retention_days"]["value"], rows["retention_days"]["origin"]) == (12, "env")
    assert (rows["timezone"]["value"], rows["timezone"]["origin"]) == ("UTC", "default")
    assert rows["s3_endpoint_url"]["value"].startswith("http://keyid:***@127.0.0.1:9000")
    assert rows["queue_url"]["value"].startswith("redis://:***@127.0.0.1:6379")

    text = run_cli(home, "--home", str(flag_home), "config", check=True, **env).stdout
    assert "s3cr3t" not in text and "s3cr3t" not in str(report)
    lines = text.splitlines()
    assert f"file:{config}\tmax_frames_per_video=7" in lines
    assert "env:PEAKOPS_RETENTION_DAYS\tretention_days=12" in lines
    assert f"flag:--home\thome={flag_home}" in lines
    assert "default\tenable_aws_rekognition=false" in lines
    assert len(lines) == len(rows)


def test_config_shows_the_derived_hard_limit_and_hides_the_test_hook(tmp_path):
    home = tmp_path / "home"
    env = {"PEAKOPS_MAX_MEMORY_PER_CHILD": "300000"}
    rows = {r["key"]: r for r in cli_json(home, "config", **env)["settings"]}
    assert (rows["hard_memory_limit"]["value"], rows["hard_memory_limit"]["origin"],
            rows["hard_memory_limit"]["source"]) == (375000, "derived",
                                                     "1.25 x max_memory_per_child")
    assert "hold_file" not in rows
    lines = run_cli(home, "config", check=True, **env).stdout.splitlines()
    assert "derived:1.25 x max_memory_per_child\thard_memory_limit=375000" in lines
    assert not any("hold_file" in line for line in lines)
    in_force = load_settings({"PEAKOPS_HOME": str(home), **env}, config_file=tmp_path / "none")
    assert in_force.hard_memory_limit_kib == 375000  # what the supervisor enforces
    rows = {r["key"]: r for r in cli_json(home, "config", PEAKOPS_HARD_MEMORY_LIMIT="380000",
                                          PEAKOPS_HOLD_FILE=str(tmp_path / "hold"),
                                          **env)["settings"]}
    assert (rows["hard_memory_limit"]["value"], rows["hard_memory_limit"]["origin"]) == \
        (380000, "env")
    assert rows["hold_file"]["origin"] == "env"  # shown once something sets it
