"""Settings: one frozen value, loaded once per entry point and passed down.

Precedence: defaults < config file (TOML) < environment < explicit overrides (CLI flags).
The seed runbook's variable names (``MAX_VIDEO_SIZE_MB``, ``MAX_FRAMES_PER_VIDEO``,
``ENABLE_AWS_REKOGNITION``, ``CELERY_WORKER_MAX_MEMORY_PER_CHILD``) keep working beside
the ``PEAKOPS_*`` names; where both are set the ``PEAKOPS_*`` name wins.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.config_file import read_toml
from core.errors import ConfigError
from core.urls import redacted_url, url_scheme

APP_NAME = "peakops"

# Accepted ranges of the settings that size a job: outside them every job would fail or
# the machine would run out of memory, so they are refused at load.
MAX_VIDEO_MB = 1024 * 1024                  # 1 TiB
MAX_FRAMES = 10_000
FRAME_WIDTHS = (32, 8192)
MEMORY_KIB = (16 * 1024, 1024 * 1024 * 1024)  # 16 MiB .. 1 TiB
LEASE_SECONDS = (5.0, 86400.0)              # the worker renews the lease every second


def _int_in(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value).strip()) if not isinstance(value, int) else value
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError
        return number
    return parse


_positive_int = _int_in(1)
_non_negative_int = _int_in(0)


def _float_in(minimum: float, maximum: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        number = _non_negative_float(value)
        if not minimum <= number <= maximum:
            raise ValueError
        return number
    return parse


def _non_negative_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError
    return number


def _positive_float(value: Any) -> float:
    number = _non_negative_float(value)
    if number == 0:
        raise ValueError
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    return value.strip()


def _optional_text(value: Any) -> str | None:
    text = _text(value)
    return text or None


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value).lower()
        if text not in allowed:
            raise ValueError
        return text
    return parse


def _path(value: Any) -> Path:
    text = _text(value)
    if not text:
        raise ValueError
    return Path(text).expanduser()


def _optional_path(value: Any) -> Path | None:
    text = _text(value)
    return Path(text).expanduser() if text else None


def _service_url(*schemes: str) -> Callable[[Any], str | None]:
    """A URL with one of ``schemes``: a host for a server, a path for ``sqlite:///``."""
    def parse(value: Any) -> str | None:
        text = _text(value)
        if not text:
            return None
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in schemes:
            raise ValueError
        if scheme == "sqlite":  # sqlite:///absolute/path only: no host, no relative path
            if not text[len("sqlite:"):].startswith("///") or not parts.path.strip("/"):
                raise ValueError
        elif not parts.hostname:
            raise ValueError
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
        return text
    return parse


def _confidence(value: Any) -> float:
    number = _non_negative_float(value)
    if number > 100:
        raise ValueError
    return number


class _Explained(ValueError):
    """A refusal whose message says what exactly is wrong (shown after the source)."""


def _timezone(value: Any) -> str:
    text = _text(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError from None
    return text


def _windows(value: Any) -> str:
    from core.schedule.windows import parse_windows  # pure parsing, no dependency of its own

    text = _text(value)
    try:
        parse_windows(text, "UTC")
    except ConfigError as exc:  # "offpeak_windows: at column 5: expected a day name ..."
        raise _Explained(str(exc).removeprefix("offpeak_windows: ")) from None
    return text


def _setting(default: Any, parse: Callable[[Any], Any], form: str, *env: str,
             url: bool = False, test_only: bool = False) -> Any:
    """A setting; ``url=True`` marks a URL that may hold a password (shown redacted);
    ``test_only`` one that only tests set (left out of the README's table)."""
    return field(default=default,
                 metadata={"parse": parse, "form": form, "env": env, "url": url,
                           "test_only": test_only})


@dataclass(frozen=True)
class Settings:
    """Every tunable of PeakOps. Memory figures are KiB, as Celery spells them."""

    home: Path = _setting(None, _path, "a folder path", "PEAKOPS_HOME")
    max_video_size_mb: int = _setting(
        100, _int_in(1, MAX_VIDEO_MB), f"a positive whole number of megabytes up to {MAX_VIDEO_MB}",
        "PEAKOPS_MAX_VIDEO_SIZE_MB", "MAX_VIDEO_SIZE_MB")
    max_frames_per_video: int = _setting(
        20, _int_in(1, MAX_FRAMES), f"a positive whole number up to {MAX_FRAMES}",
        "PEAKOPS_MAX_FRAMES_PER_VIDEO", "MAX_FRAMES_PER_VIDEO")
    frame_max_width: int = _setting(
        1280, _int_in(*FRAME_WIDTHS),
        f"a whole number of pixels from {FRAME_WIDTHS[0]} to {FRAME_WIDTHS[1]}",
        "PEAKOPS_FRAME_MAX_WIDTH")
    frame_selection: str = _setting(
        "sharpest", _choice("even", "sharpest", "coverage"),
        "even (the middle of each equal slice), sharpest (the sharpest frame decoded near "
        "each middle) or coverage (more frames where the picture changes)",
        "PEAKOPS_FRAME_SELECTION", "FRAME_SELECTION")
    enable_aws_rekognition: bool = _setting(
        False, _bool, "true or false",
        "PEAKOPS_ENABLE_AWS_REKOGNITION", "ENABLE_AWS_REKOGNITION")
    max_memory_per_child: int = _setting(
        400000, _int_in(*MEMORY_KIB),
        f"a whole number of KiB from {MEMORY_KIB[0]} to {MEMORY_KIB[1]} (400000 = ~400 MB)",
        "PEAKOPS_MAX_MEMORY_PER_CHILD", "CELERY_WORKER_MAX_MEMORY_PER_CHILD")
    hard_memory_limit: int | None = _setting(
        None, _int_in(*MEMORY_KIB),
        f"a whole number of KiB from {MEMORY_KIB[0]} to {MEMORY_KIB[1]}, at or above the "
        "soft limit (max_memory_per_child)", "PEAKOPS_HARD_MEMORY_LIMIT")
    memory_cgroup: bool = _setting(
        True, _bool, "true or false (false: the hard limit is only sampled)",
        "PEAKOPS_MEMORY_CGROUP")
    max_tasks_per_child: int = _setting(
        5, _positive_int, "a positive whole number",
        "PEAKOPS_MAX_TASKS_PER_CHILD", "CELERY_WORKER_MAX_TASKS_PER_CHILD")
    job_timeout: float = _setting(
        1800.0, _non_negative_float, "seconds (0 = no limit)", "PEAKOPS_JOB_TIMEOUT")
    stall_timeout: float = _setting(
        300.0, _non_negative_float, "seconds (0 = no limit)", "PEAKOPS_STALL_TIMEOUT")
    lease_seconds: float = _setting(
        60.0, _float_in(*LEASE_SECONDS),
        f"seconds from {LEASE_SECONDS[0]:g} (a few heartbeats) to {LEASE_SECONDS[1]:g}",
        "PEAKOPS_LEASE_SECONDS")
    db_busy_timeout: float = _setting(
        30.0, _float_in(1.0, 3600.0), "seconds from 1 to 3600", "PEAKOPS_DB_BUSY_TIMEOUT")
    max_attempts: int = _setting(
        3, _positive_int, "a positive whole number", "PEAKOPS_MAX_ATTEMPTS")
    retry_backoff: float = _setting(
        10.0, _non_negative_float, "seconds", "PEAKOPS_RETRY_BACKOFF")
    retention_days: float = _setting(
        30.0, _non_negative_float, "days", "PEAKOPS_RETENTION_DAYS")
    storage: str = _setting("local", _choice("local", "s3"), "local or s3", "PEAKOPS_STORAGE")
    s3_bucket: str | None = _setting(None, _optional_text, "a bucket name", "PEAKOPS_S3_BUCKET")
    s3_prefix: str = _setting("peakops/", _text, "a key prefix", "PEAKOPS_S3_PREFIX")
    s3_endpoint_url: str | None = _setting(
        None, _optional_text, "a URL", "PEAKOPS_S3_ENDPOINT_URL", url=True)
    aws_region: str | None = _setting(
        None, _optional_text, "an AWS region name", "AWS_REGION", "AWS_DEFAULT_REGION")
    rekognition_endpoint_url: str | None = _setting(
        None, _optional_text, "a URL", "PEAKOPS_REKOGNITION_ENDPOINT_URL", url=True)
    database_url: str | None = _setting(
        None, _service_url("sqlite", "postgresql", "postgres"),
        "a postgresql://user:password@host:5432/db or sqlite:///path/to/peakops.db URL "
        "(empty = peakops.db in the home folder)", "PEAKOPS_DATABASE_URL", url=True)
    queue_url: str | None = _setting(
        None, _service_url("sqlite", "redis", "rediss"),
        "a redis://:password@host:6379/0 or sqlite:///path/to/queue.db URL "
        "(empty = queue.db in the home folder)", "PEAKOPS_QUEUE_URL", url=True)
    rekognition_max_labels: int = _setting(
        10, _positive_int, "a positive whole number", "PEAKOPS_REKOGNITION_MAX_LABELS")
    rekognition_min_confidence: float = _setting(
        70.0, _confidence, "a percentage 0-100", "PEAKOPS_REKOGNITION_MIN_CONFIDENCE")
    rekognition_max_calls_per_upload: int = _setting(
        20, _positive_int, "a positive whole number", "PEAKOPS_REKOGNITION_MAX_CALLS_PER_UPLOAD")
    rekognition_max_calls_per_window: int = _setting(
        0, _non_negative_int,
        "a whole number of calls per day, noon to noon in `timezone`, so that a nightly "
        "off-peak window like 22:00-06:00 is one period (0 = no limit)",
        "PEAKOPS_REKOGNITION_MAX_CALLS_PER_WINDOW")
    offpeak_windows: str = _setting(
        "mon-fri 22:00-06:00; sat,sun 00:00-24:00", _windows,
        "a weekly schedule like 'mon-fri 22:00-06:00; sat,sun 00:00-24:00'",
        "PEAKOPS_OFFPEAK_WINDOWS")
    timezone: str = _setting("UTC", _timezone, "an IANA time zone like Europe/Berlin",
                             "PEAKOPS_TIMEZONE")
    window_end_policy: str = _setting(
        "soft", _choice("soft", "hard"), "soft or hard", "PEAKOPS_WINDOW_END_POLICY")
    dispatch_lookahead: int = _setting(
        1, _positive_int, "a positive whole number of uploads", "PEAKOPS_DISPATCH_LOOKAHEAD")
    dispatch_interval: float = _setting(
        30.0, _positive_float, "seconds", "PEAKOPS_DISPATCH_INTERVAL")
    log_level: str = _setting(
        "INFO", _choice("debug", "info", "warning", "error"), "debug, info, warning or error",
        "PEAKOPS_LOG_LEVEL")
    hold_file: Path | None = _setting(
        None, _optional_path,
        "a file path; for tests: while it exists, a job waits before each frame past the "
        "count the file holds", "PEAKOPS_HOLD_FILE", test_only=True)
    config_file: Path | None = field(default=None, metadata={"internal": True})

    def __post_init__(self) -> None:
        """Every value is checked here too, against the same forms and ranges as the
        loader's, so a Settings made directly (a script, a test, ``dataclasses.replace``)
        can never hold a value the loader would refuse. None means not set."""
        for name in _fields():
            value = getattr(self, name)
            if value is not None:
                _parse(name, str(value) if isinstance(value, Path) else value,
                       f"Settings.{name}")
        _check_combination(lambda key: getattr(self, key), lambda key: f"Settings.{key}")

    @property
    def hard_memory_limit_kib(self) -> int:
        """The kill line: explicit, or 1.25 x the soft limit."""
        return self.hard_memory_limit or int(self.max_memory_per_child * 1.25)

    @property
    def max_video_bytes(self) -> int:
        return self.max_video_size_mb * 1024 * 1024

    @property
    def database_dialect(self) -> str:
        """``postgresql`` for a fleet's shared database, ``sqlite`` otherwise."""
        return "postgresql" if url_scheme(self.database_url) in ("postgresql", "postgres") \
            else "sqlite"

    @property
    def db_path(self) -> Path:
        """The SQLite state database (meaningless when ``database_dialect`` is postgresql).

        ``sqlite:///srv/peakops.db`` and ``sqlite:////srv/peakops.db`` both name the absolute
        path ``/srv/peakops.db``.
        """
        return _sqlite_path(self.database_url) or self.home / "peakops.db"

    @property
    def queue_path(self) -> Path:
        """The SQLite Huey queue (meaningless when ``queue_url`` is a Redis URL)."""
        return _sqlite_path(self.queue_url) or self.home / "queue.db"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    def to_dict(self) -> dict[str, Any]:
        """Settings as plain JSON values, passwords included: for the job child's pipe
        (:func:`settings_from_dict`), never for display."""
        return {f.name: (str(v) if isinstance(v, Path) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    def public_dict(self) -> dict[str, Any]:
        """Settings as plain values, safe to print: passwords in URLs are redacted."""
        return {name: (redacted_url(v) if _fields()[name].metadata.get("url") else v)
                if name in _fields() else v for name, v in self.to_dict().items()}

    def __repr__(self) -> str:  # the generated repr would print passwords
        fields = ", ".join(f"{k}={v!r}" for k, v in self.public_dict().items())
        return f"Settings({fields})"


def _sqlite_path(url: str | None) -> Path | None:
    if url_scheme(url) != "sqlite":
        return None
    return Path("/" + unquote(urlsplit(url).path).lstrip("/"))


def default_config_path() -> Path:
    import platformdirs  # where a default is asked for: not in a job child (its settings are given)

    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(Settings) if not f.metadata.get("internal")}


def _parse(name: str, raw: Any, source: str) -> Any:
    spec = _fields()[name]
    try:
        return spec.metadata["parse"](raw)
    except _Explained as exc:
        raise ConfigError(f"{source}: {exc}", key=name) from None
    except (ValueError, TypeError):
        shown = redacted_url(raw) if spec.metadata.get("url") and isinstance(raw, str) else raw
        raise ConfigError(
            f"{source}: expected {spec.metadata['form']}, got {shown!r}", key=name) from None


def read_config_file(path: Path, *, required: bool = False) -> dict[str, Any]:
    """Read a TOML config file into raw values; unknown keys and wrong TOML types are
    errors (typos matter). A missing file means defaults, unless ``required`` (a path the
    operator named). Reading itself is :mod:`core.config_file`'s."""
    return read_toml(path, required=required, table=APP_NAME, known=_fields())


def load_settings(env: Mapping[str, str] | None = None, *, config_file: Path | None = None,
                  overrides: Mapping[str, Any] | None = None,
                  config_required: bool = False) -> Settings:
    """Build Settings from defaults, the TOML file, the environment and overrides.

    ``env`` defaults to ``os.environ``; tests pass a dict. ``config_file`` defaults to
    ``PEAKOPS_CONFIG`` or the platform config dir. A file named by ``PEAKOPS_CONFIG``, or
    passed with ``config_required`` (``--config``), must exist. Raises ConfigError naming
    the key and the accepted form.
    """
    return load_settings_with_origins(env, config_file=config_file, overrides=overrides,
                                      config_required=config_required)[0]


@dataclass(frozen=True)
class Origin:
    """Where a setting's value came from, as ``git config --show-origin`` says it."""

    kind: str  # "default", "file", "env" or "flag"
    source: str = ""  # the file's path, the variable's or the flag's name

    def __str__(self) -> str:
        return f"{self.kind}:{self.source}" if self.source else self.kind


def _named(origin: Origin, key: str) -> str:
    """How a message names where ``key``'s value came from."""
    return f"config file {origin.source}: {key}" if origin.kind == "file" else origin.source


def load_settings_with_origins(
        env: Mapping[str, str] | None = None, *, config_file: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        config_required: bool = False) -> tuple[Settings, dict[str, Origin]]:
    """:func:`load_settings`, and for every setting where its value came from."""
    env = os.environ if env is None else env
    if config_file is not None:
        path, required = config_file, config_required
    elif env.get("PEAKOPS_CONFIG"):
        path, required = Path(env["PEAKOPS_CONFIG"]).expanduser(), True
    else:
        path, required = default_config_path(), False
    values: dict[str, Any] = {}
    origins = dict.fromkeys(_fields(), Origin("default"))
    for key, raw in read_config_file(path, required=required).items():
        values[key] = _parse(key, raw, f"config file {path}: {key}")
        origins[key] = Origin("file", str(path))
    for name, spec in _fields().items():
        for var in spec.metadata["env"]:  # first listed name wins
            if var in env and env[var].strip() != "":
                values[name] = _parse(name, env[var], var)
                origins[name] = Origin("env", var)
                break
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in _fields():
            raise ConfigError(f"unknown setting {key!r}", key=key)
        flag = f"--{key.replace('_', '-')}"
        values[key] = _parse(key, raw, flag)
        origins[key] = Origin("flag", flag)
    values.setdefault("home", default_home())
    defaults = {name: spec.default for name, spec in _fields().items()}
    # Checked before the value is built, so the message names where each value came from.
    _check_combination(lambda key: values.get(key, defaults[key]),
                       lambda key: _named(origins[key], key))
    return Settings(**values, config_file=path), origins


def _check_combination(get: Callable[[str], Any], named: Callable[[str], str]) -> None:
    """The rules between settings; ``get(key)`` reads a value, ``named(key)`` says where it
    came from in a message. Raises ConfigError."""
    storage, database_url = get("storage"), get("database_url")
    if storage == "s3" and not get("s3_bucket"):
        raise ConfigError("PEAKOPS_S3_BUCKET: required when PEAKOPS_STORAGE=s3", key="s3_bucket")
    if url_scheme(database_url) in ("postgresql", "postgres") and storage != "s3":
        raise ConfigError("PEAKOPS_DATABASE_URL: a PostgreSQL database is shared by workers on "
                          "other machines, which cannot read this machine's local store; set "
                          "PEAKOPS_STORAGE=s3", key="database_url")
    hard, soft = get("hard_memory_limit"), get("max_memory_per_child")
    if hard is not None and soft is not None and hard < soft:
        raise ConfigError(
            f"{named('hard_memory_limit')}: expected a hard limit at or above the soft limit "
            f"max_memory_per_child ({soft} KiB), got {hard}", key="hard_memory_limit")


def settings_from_dict(values: Mapping[str, Any]) -> Settings:
    """Rebuild the Settings another process resolved, from :meth:`Settings.to_dict`.

    The job child gets its worker's settings this way (``--home`` and ``--config``
    included), never from its own environment. Each value is validated again.
    """
    known = _fields()
    parsed: dict[str, Any] = {}
    for key, raw in values.items():
        if key == "config_file" or raw is None:
            continue
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}", key=key)
        parsed[key] = _parse(key, raw, key)
    config_file = values.get("config_file")
    parsed.setdefault("home", default_home())
    return Settings(**parsed, config_file=Path(config_file) if config_file else None)
