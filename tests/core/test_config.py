"""Settings precedence, the seed's variable names, and errors that name the key."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config import Settings, load_settings
from core.errors import ConfigError
from tests.helpers import run_cli


def load(tmp_path, env=None, toml=None, **overrides):
    path = tmp_path / "config.toml"
    if toml is not None:
        path.write_text(toml)
    return load_settings({"PEAKOPS_HOME": str(tmp_path / "home"), **(env or {})},
                         config_file=path, overrides=overrides)


def test_defaults_match_the_runbook(tmp_path):
    s = load(tmp_path)
    assert (s.max_video_size_mb, s.max_frames_per_video, s.enable_aws_rekognition) == (100, 20, False)
    assert s.max_memory_per_child == 400000 and s.hard_memory_limit_kib == 500000
    assert s.max_tasks_per_child == 5 and s.storage == "local"
    assert s.home == tmp_path / "home" and s.db_path == tmp_path / "home" / "peakops.db"


def test_precedence_file_then_env_then_flags(tmp_path):
    toml = "max_frames_per_video = 7\nmax_video_size_mb = 50\nretention_days = 3\n"
    s = load(tmp_path, env={"MAX_FRAMES_PER_VIDEO": "9"}, toml=toml, retention_days="1")
    assert s.max_video_size_mb == 50          # file
    assert s.max_frames_per_video == 9        # env beats file
    assert s.retention_days == 1.0            # flag beats file


def test_seed_names_and_peakops_names(tmp_path):
    s = load(tmp_path, env={"CELERY_WORKER_MAX_MEMORY_PER_CHILD": "300000",
                            "ENABLE_AWS_REKOGNITION": "False"})
    assert s.max_memory_per_child == 300000 and s.enable_aws_rekognition is False
    s = load(tmp_path, env={"CELERY_WORKER_MAX_MEMORY_PER_CHILD": "300000",
                            "PEAKOPS_MAX_MEMORY_PER_CHILD": "200000",
                            "PEAKOPS_HARD_MEMORY_LIMIT": "300000"})
    assert s.max_memory_per_child == 200000 and s.hard_memory_limit_kib == 300000


@pytest.mark.parametrize("env, key", [
    ({"MAX_VIDEO_SIZE_MB": "lots"}, "MAX_VIDEO_SIZE_MB"),
    ({"MAX_FRAMES_PER_VIDEO": "0"}, "MAX_FRAMES_PER_VIDEO"),
    ({"ENABLE_AWS_REKOGNITION": "maybe"}, "ENABLE_AWS_REKOGNITION"),
    ({"PEAKOPS_STORAGE": "ftp"}, "PEAKOPS_STORAGE"),
    ({"PEAKOPS_STORAGE": "s3"}, "PEAKOPS_S3_BUCKET"),
])
def test_bad_values_name_the_key_and_form(tmp_path, env, key):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env=env)
    assert key in str(info.value)
    assert "expected" in str(info.value) or "required" in str(info.value)


def test_bad_config_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'max_frame'"):
        load(tmp_path, toml="max_frame = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path, toml="max_frames_per_video = \n")
    with pytest.raises(ConfigError, match="max_frames_per_video: expected a positive"):
        load(tmp_path, toml="max_frames_per_video = 'x'\n")


def test_settings_are_frozen(tmp_path):
    with pytest.raises(dataclasses.FrozenInstanceError):
        load(tmp_path).max_frames_per_video = 3


NAMES = [f.name for f in dataclasses.fields(Settings) if not f.metadata.get("internal")]


@given(key=st.sampled_from(NAMES), value=st.one_of(st.text(max_size=20), st.integers(),
                                                   st.floats(), st.booleans()))
def test_any_value_loads_or_fails_naming_the_key(tmp_path_factory, key, value):
    tmp = tmp_path_factory.mktemp("cfg")
    try:
        load_settings({"PEAKOPS_HOME": str(tmp)}, config_file=tmp / "none.toml",
                      overrides={key: value})
    except ConfigError as exc:
        assert (f"--{key.replace('_', '-')}" in str(exc) or "PEAKOPS_S3_BUCKET" in str(exc)
                or "PEAKOPS_DATABASE_URL" in str(exc))


def test_period_call_budget(tmp_path):
    assert load(tmp_path).rekognition_max_calls_per_window == 0  # no limit
    s = load(tmp_path, env={"PEAKOPS_REKOGNITION_MAX_CALLS_PER_WINDOW": "250"})
    assert s.rekognition_max_calls_per_window == 250
    assert load(tmp_path, toml="rekognition_max_calls_per_window = 0\n"
                ).rekognition_max_calls_per_window == 0
    for bad in ("-1", "many", "2.5"):
        with pytest.raises(ConfigError, match="noon to noon") as caught:
            load(tmp_path, env={"PEAKOPS_REKOGNITION_MAX_CALLS_PER_WINDOW": bad})
        assert caught.value.evidence["key"] == "rekognition_max_calls_per_window"


@pytest.mark.parametrize("env, key, accepted", [
    ({"PEAKOPS_LEASE_SECONDS": "0"}, "PEAKOPS_LEASE_SECONDS", "from 5"),
    ({"PEAKOPS_LEASE_SECONDS": "2"}, "PEAKOPS_LEASE_SECONDS", "from 5"),
    ({"MAX_FRAMES_PER_VIDEO": "100000000"}, "MAX_FRAMES_PER_VIDEO", "up to 10000"),
    ({"PEAKOPS_FRAME_MAX_WIDTH": "1"}, "PEAKOPS_FRAME_MAX_WIDTH", "from 32 to 8192"),
    ({"PEAKOPS_HARD_MEMORY_LIMIT": "1"}, "PEAKOPS_HARD_MEMORY_LIMIT", "from 16384"),
    ({"PEAKOPS_MAX_MEMORY_PER_CHILD": "1"}, "PEAKOPS_MAX_MEMORY_PER_CHILD", "from 16384"),
    ({"PEAKOPS_HARD_MEMORY_LIMIT": "100000", "PEAKOPS_MAX_MEMORY_PER_CHILD": "200000"},
     "PEAKOPS_HARD_MEMORY_LIMIT", "at or above the soft limit"),
    ({"MAX_VIDEO_SIZE_MB": "1e23"}, "MAX_VIDEO_SIZE_MB", "up to 1048576"),
    ({"MAX_VIDEO_SIZE_MB": "100000000000000000000000"}, "MAX_VIDEO_SIZE_MB", "up to 1048576"),
])
def test_values_that_would_break_every_job_fail_at_load(tmp_path, env, key, accepted):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env=env)
    message = str(info.value)
    assert "\n" not in message and message.startswith(key) and accepted in message


def test_range_edges_are_accepted(tmp_path):
    s = load(tmp_path, env={"PEAKOPS_LEASE_SECONDS": "5", "MAX_FRAMES_PER_VIDEO": "10000",
                            "PEAKOPS_FRAME_MAX_WIDTH": "32", "PEAKOPS_HARD_MEMORY_LIMIT": "16384",
                            "PEAKOPS_MAX_MEMORY_PER_CHILD": "16384"})
    assert (s.lease_seconds, s.max_frames_per_video, s.frame_max_width) == (5.0, 10000, 32)
    assert s.hard_memory_limit_kib == 16384


def test_hard_limit_in_a_config_file_below_the_soft_one_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*: hard_memory_limit: expected a hard"):
        load(tmp_path, toml="hard_memory_limit = 20000\n")


def test_a_named_config_file_must_exist(tmp_path):
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=f"config file {missing}: no such file"):
        load_settings({"PEAKOPS_HOME": str(tmp_path), "PEAKOPS_CONFIG": str(missing)})
    with pytest.raises(ConfigError, match="no such file"):
        load_settings({"PEAKOPS_HOME": str(tmp_path)}, config_file=missing, config_required=True)
    assert load_settings({"PEAKOPS_HOME": str(tmp_path), "PEAKOPS_CONFIG": os.devnull}
                         ).max_frames_per_video == 20


def test_cli_config_flag_naming_a_missing_file_fails_in_one_line(tmp_path):
    missing = tmp_path / "missing.toml"
    proc = run_cli(tmp_path / "home", "--config", str(missing), "list")
    assert proc.returncode == 1
    assert proc.stderr == f"peakops: config file {missing}: no such file\n"
    proc = run_cli(tmp_path / "home", "list", PEAKOPS_CONFIG=str(missing))
    assert proc.returncode == 1 and proc.stderr.strip().endswith("no such file")


# --------------------------------------------------------------------------- fleet URLs

PG = "postgresql://ops:s3cret-pw@db.internal:5432/peakops"
S3 = {"PEAKOPS_STORAGE": "s3", "PEAKOPS_S3_BUCKET": "inspections"}


def test_fleet_urls_default_to_the_home_folder(tmp_path):
    s = load(tmp_path)
    assert s.database_url is None and s.queue_url is None
    assert s.database_dialect == "sqlite" and s.db_path == tmp_path / "home" / "peakops.db"


def test_fleet_urls_load(tmp_path):
    s = load(tmp_path, env={"PEAKOPS_DATABASE_URL": PG,
                            "PEAKOPS_QUEUE_URL": "redis://:q-pw@cache:6379/0", **S3})
    assert s.database_dialect == "postgresql" and s.database_url == PG
    assert s.queue_url == "redis://:q-pw@cache:6379/0"
    s = load(tmp_path, env={"PEAKOPS_DATABASE_URL": f"sqlite:///{tmp_path}/elsewhere.db"})
    assert s.database_dialect == "sqlite" and s.db_path == tmp_path / "elsewhere.db"


@pytest.mark.parametrize("env, key", [
    ({"PEAKOPS_DATABASE_URL": "mysql://u:p@h/db"}, "PEAKOPS_DATABASE_URL"),
    ({"PEAKOPS_DATABASE_URL": "postgresql:///nohost"}, "PEAKOPS_DATABASE_URL"),
    ({"PEAKOPS_DATABASE_URL": "sqlite://"}, "PEAKOPS_DATABASE_URL"),
    ({"PEAKOPS_DATABASE_URL": "sqlite:relative.db"}, "PEAKOPS_DATABASE_URL"),
    ({"PEAKOPS_QUEUE_URL": "sqlite://host/queue.db"}, "PEAKOPS_QUEUE_URL"),
    ({"PEAKOPS_QUEUE_URL": "amqp://u:p@rabbit/"}, "PEAKOPS_QUEUE_URL"),
    ({"PEAKOPS_QUEUE_URL": "redis://:pw@cache:port/0"}, "PEAKOPS_QUEUE_URL"),
])
def test_bad_fleet_urls_name_the_key_in_one_line(tmp_path, env, key):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env={**env, **S3})
    message = str(info.value)
    assert message.startswith(f"{key}: expected") and "\n" not in message
    assert ":p@" not in message and ":pw@" not in message  # the password is not echoed


def test_postgresql_requires_s3_storage(tmp_path):
    with pytest.raises(ConfigError, match="PEAKOPS_DATABASE_URL: .*PEAKOPS_STORAGE=s3") as info:
        load(tmp_path, env={"PEAKOPS_DATABASE_URL": PG})
    assert "s3cret-pw" not in str(info.value)
    assert info.value.evidence["key"] == "database_url"
    assert load(tmp_path, env={"PEAKOPS_DATABASE_URL": PG, **S3}).storage == "s3"


def test_passwords_never_printed(tmp_path):
    s = load(tmp_path, env={"PEAKOPS_DATABASE_URL": PG + "?sslmode=require&password=q2",
                            "PEAKOPS_QUEUE_URL": "rediss://default:r-pw@cache:6380/1",
                            "PEAKOPS_S3_ENDPOINT_URL": "https://key:s3-pw@minio:9000", **S3})
    shown = s.public_dict()
    assert shown["database_url"] == \
        "postgresql://ops:***@db.internal:5432/peakops?sslmode=require&password=***"
    assert shown["queue_url"] == "rediss://default:***@cache:6380/1"
    assert shown["s3_endpoint_url"] == "https://key:***@minio:9000"
    for text in (repr(s), str(s), str(shown)):
        for secret in ("s3cret-pw", "q2", "r-pw", "s3-pw"):
            assert secret not in text
    assert s.database_url == PG + "?sslmode=require&password=q2"  # the value itself is intact


# --------------------------------------------------------------------------- bounded reads


def test_config_values_of_the_wrong_toml_type_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"max_frames_per_video: expected a positive whole "
                                          r"number up to \d+, got the string '20' \(TOML: write"):
        load(tmp_path, toml='max_frames_per_video = "20"\n')
    with pytest.raises(ConfigError, match="enable_aws_rekognition: .*got the string 'true'"):
        load(tmp_path, toml='enable_aws_rekognition = "true"\n')
    with pytest.raises(ConfigError, match=r"timezone: .*got the number 5 \(TOML: quote text\)"):
        load(tmp_path, toml="timezone = 5\n")
    with pytest.raises(ConfigError, match="max_frames_per_video: .*got true/false True"):
        load(tmp_path, toml="max_frames_per_video = true\n")
    loaded = load(tmp_path, toml="max_frames_per_video = 7\nlease_seconds = 60\n"
                                 "enable_aws_rekognition = false\ntimezone = 'Europe/Paris'\n")
    assert (loaded.max_frames_per_video, loaded.lease_seconds) == (7, 60.0)
    assert load(tmp_path, env={"PEAKOPS_MAX_FRAMES_PER_VIDEO": "9"}).max_frames_per_video == 9


def test_config_file_must_be_a_small_regular_file(tmp_path):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)  # nobody writes: reading it would block forever
    for path, why in ((fifo, "is not a regular file"), (Path("/dev/zero"), "is not a regular file"),
                      (tmp_path, "is a folder")):
        with pytest.raises(ConfigError, match=f"config file {path}: {why}"):
            load_settings({"PEAKOPS_HOME": str(tmp_path)}, config_file=path, config_required=True)
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="over 1024 KiB, too large for a config file"):
        load_settings({"PEAKOPS_HOME": str(tmp_path)}, config_file=big, config_required=True)


def test_cli_config_from_dev_zero_or_a_fifo_fails_in_one_line(tmp_path):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        proc = run_cli(tmp_path / "home", "--config", path, "list", timeout=30)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
        assert "is not a regular file" in proc.stderr
