"""Off-peak windows and the time zone are checked when settings load, not when the
scheduler first needs them: one line naming the key, from every command."""

from __future__ import annotations

import pytest

from core.config import load_settings
from core.errors import ConfigError
from tests.helpers import run_cli


@pytest.mark.parametrize(("env", "key", "needle"), [
    ({"PEAKOPS_OFFPEAK_WINDOWS": "every night"}, "offpeak_windows",
     "PEAKOPS_OFFPEAK_WINDOWS: at column 1: expected a day name"),
    ({"PEAKOPS_OFFPEAK_WINDOWS": "mon-fri 22:00-25:00"}, "offpeak_windows",
     "PEAKOPS_OFFPEAK_WINDOWS: at column"),
    ({"PEAKOPS_TIMEZONE": "Mars/Olympus"}, "timezone",
     "PEAKOPS_TIMEZONE: expected an IANA time zone like Europe/Berlin, got 'Mars/Olympus'"),
    ({"PEAKOPS_TIMEZONE": "../../etc/passwd"}, "timezone", "PEAKOPS_TIMEZONE: expected"),
])
def test_a_bad_schedule_fails_at_load_naming_the_key(tmp_path, env, key, needle):
    with pytest.raises(ConfigError) as caught:
        load_settings(env, config_file=tmp_path / "none.toml")
    assert needle in str(caught.value) and caught.value.evidence["key"] == key


def test_a_bad_schedule_in_the_config_file_names_the_file_and_key(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('offpeak_windows = "weekends"\n')
    with pytest.raises(ConfigError, match=r"c\.toml: offpeak_windows: at column 1"):
        load_settings({}, config_file=config)


def test_good_schedules_load(tmp_path):
    settings = load_settings({"PEAKOPS_OFFPEAK_WINDOWS": "daily 01:00-02:00",
                              "PEAKOPS_TIMEZONE": "Europe/Berlin"},
                             config_file=tmp_path / "none.toml")
    assert (settings.offpeak_windows, settings.timezone) == ("daily 01:00-02:00",
                                                             "Europe/Berlin")
    never = tmp_path / "never.toml"
    never.write_text('offpeak_windows = ""\n')  # an empty spec: never open, run-now only
    assert load_settings({}, config_file=never).offpeak_windows == ""


@pytest.mark.parametrize("args", [("doctor",), ("submit", "--off-peak", "x.mp4")])
def test_doctor_and_submit_refuse_a_bad_time_zone_in_one_line(tmp_path, args):
    proc = run_cli(tmp_path / "home", *args, PEAKOPS_TIMEZONE="Mars/Olympus")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "peakops: PEAKOPS_TIMEZONE: expected an IANA time zone like Europe/Berlin, "
        "got 'Mars/Olympus'"]
