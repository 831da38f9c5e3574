"""Reading the TOML config file, safely: only a regular file of sane size, only known keys
of the right TOML types. The values are parsed and checked by :mod:`core.config`."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import ConfigError

FORMAT_HINT = ("settings are top-level keys (or keys of one [peakops] table) named as in "
               "`peakops config`, e.g. max_frames_per_video = 20")


MAX_CONFIG_BYTES = 1024 * 1024
"""A config file is a few hundred bytes; anything past this is not one (``/dev/zero``)."""


def _read_bounded(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist. Only a regular file (or
    ``/dev/null``, read as empty) up to :data:`MAX_CONFIG_BYTES` is read: a FIFO would
    block forever and ``/dev/zero`` never ends."""
    if os.path.realpath(path) == os.devnull:
        return b""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"config file {path}: is not a regular file (a device, FIFO or "
                              "socket); name a TOML file")
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path}: over {MAX_CONFIG_BYTES // 1024} KiB, too large "
                          "for a config file")
    return data


def read_toml(path: Path, *, required: bool, table: str,
              known: Mapping[str, dataclasses.Field]) -> dict[str, Any]:
    """The raw values of a TOML config file: top-level keys, or the keys of one ``[table]``.

    Every key must be one of ``known`` (the settings' fields), with a value of the field's
    TOML type. A missing file means defaults (``{}``), unless ``required``.
    """
    import tomllib  # a file is read: not in a job child, whose settings are given

    try:
        data = tomllib.loads(_read_bounded(path).decode("utf-8"))
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path}: no such file") from None
        return {}
    except IsADirectoryError:
        raise ConfigError(f"config file {path}: is a folder, not a file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {exc.start} is "
                          f"{exc.object[exc.start:exc.start + 1]!r})") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read: {exc.strerror}") from None
    if isinstance(data.get(table), dict):  # a [peakops] table holds the same keys
        if len(data) > 1:
            others = ", ".join(repr(k) for k in data if k != table)
            raise ConfigError(f"config file {path}: keys both at the top ({others}) and in "
                              f"a [{table}] table; use one or the other", key=table)
        data = data[table]
    for key, raw in data.items():
        if key not in known:
            raise ConfigError(f"config file {path}: unknown key {key!r}; {FORMAT_HINT}",
                              key=key)
        _check_toml_type(path, known[key], raw)
    return data


def _check_toml_type(path: Path, spec: dataclasses.Field, raw: Any) -> None:
    """TOML has types: ``max_frames_per_video = "20"`` is a string where a number belongs,
    refused as one (the environment's text values are parsed; a file's are not)."""
    kind = str(spec.type).split("|")[0].strip()
    if kind in ("int", "float"):
        ok = isinstance(raw, int | float) and not isinstance(raw, bool)
    elif kind == "bool":
        ok = isinstance(raw, bool)
    else:
        ok = isinstance(raw, str)
    if not ok:
        got = {bool: "true/false", int: "the number", float: "the number",
               str: "the string"}.get(type(raw), f"a TOML {type(raw).__name__}")
        hint = ("write numbers and true/false without quotes" if isinstance(raw, str)
                else "quote text")
        raise ConfigError(f"config file {path}: {spec.name}: expected {spec.metadata['form']}, "
                          f"got {got} {raw!r} (TOML: {hint})", key=spec.name)
