"""Property tests: file-name sanitising, and the config loader from the environment and
from a TOML file (overrides are covered in tests/core/test_config.py; the window spec
parser in tests/batch/test_windows.py::test_parser_returns_or_raises_config_error)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from core import config as config_module
from core.config import load_settings
from core.errors import ConfigError
from core.intake import MAX_NAME_CHARS, display_name

ENV_NAMES = sorted({var for f in config_module._fields().values() for var in f.metadata["env"]}
                   - {"PEAKOPS_HOME"})
KEYS = sorted(set(config_module._fields()) - {"home"})


@settings(max_examples=400, deadline=None, database=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("utf-8", "surrogateescape"))))
@example("")
@example("/")
@example("..")
@example("a/b/\x00\x1b[31mred.mp4")
@example("\u202egnp.mp4")  # right-to-left override
@example("x" * 5000)
def test_display_name_is_safe_text(raw: str) -> None:
    name = display_name(raw)
    assert name and len(name) <= MAX_NAME_CHARS
    assert "/" not in name and "\x00" not in name
    assert not any(unicodedata.category(ch).startswith("C") for ch in name), repr(name)
    assert name == name.strip()


@settings(max_examples=300, deadline=None, database=None)
@given(var=st.sampled_from(ENV_NAMES), value=st.text(max_size=30))
def test_any_environment_value_loads_or_names_the_variable(tmp_path_factory, var: str,
                                                           value: str) -> None:
    home = tmp_path_factory.mktemp("cfg")
    env = {"PEAKOPS_HOME": str(home), var: value}
    try:
        load_settings(env, config_file=home / "none.toml")
    except ConfigError as exc:
        assert var in str(exc) or "PEAKOPS_S3_BUCKET" in str(exc), str(exc)
        assert "expected" in str(exc) or "required" in str(exc)


toml_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=False),
    st.booleans(), st.text(max_size=20), st.lists(st.integers(), max_size=3))


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(value, repr(value))
    if isinstance(value, str):
        return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
                             for c in value) + '"'
    return repr(value)


@settings(max_examples=300, deadline=None, database=None)
@given(key=st.one_of(st.sampled_from(KEYS), st.from_regex(r"[a-z_]{1,12}", fullmatch=True)),
       value=toml_values)
def test_any_config_file_value_loads_or_names_the_key(tmp_path_factory, key: str,
                                                      value) -> None:
    folder = tmp_path_factory.mktemp("cfg")
    path: Path = folder / "config.toml"
    path.write_text(f"{key} = {_toml(value)}\n")
    try:
        load_settings({"PEAKOPS_HOME": str(folder)}, config_file=path)
    except ConfigError as exc:
        assert str(path) in str(exc) and (repr(key) in str(exc) or f"{key}:" in str(exc)
                                          or "PEAKOPS_S3_BUCKET" in str(exc)), str(exc)


@settings(max_examples=100, deadline=None, database=None)
@given(st.binary(max_size=200))
def test_any_config_file_bytes_load_or_fail_naming_the_file(tmp_path_factory, data: bytes):
    folder = tmp_path_factory.mktemp("cfg")
    path = folder / "config.toml"
    path.write_bytes(data)
    try:
        load_settings({"PEAKOPS_HOME": str(folder)}, config_file=path)
    except ConfigError as exc:
        assert f"config file {path}" in str(exc), str(exc)
