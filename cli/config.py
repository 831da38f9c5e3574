"""``peakops config``: every setting's effective value and where it came from.

Modelled on ``git config --list --show-origin``: one ``ORIGIN<TAB>key=value`` line per
setting, the origin being ``default``, ``file:PATH``, ``env:VAR`` or ``flag:--NAME``
(``derived:HOW`` for a value computed from another setting).
Passwords in URLs are shown as ``***``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from cli.main import print_json
from core.config import Settings, load_settings_with_origins


def settings_list(settings: Settings, origins: dict) -> list[dict[str, Any]]:
    """``[{"key", "value", "origin", "source"}]`` in the order Settings defines them.

    A test hook (``hold_file``) is left out unless something set it. A limit left empty
    shows the value in force, with the origin ``derived`` and what it is derived from.
    """
    values = settings.public_dict()  # passwords in URLs redacted
    test_only = {f.name for f in dataclasses.fields(Settings) if f.metadata.get("test_only")}
    rows = []
    for key, origin in origins.items():
        if key in test_only and origin.kind == "default":
            continue
        row = {"key": key, "value": values[key], "origin": origin.kind,
               "source": origin.source or None}
        if key == "hard_memory_limit" and values[key] is None:
            row.update(value=settings.hard_memory_limit_kib, origin="derived",
                       source="1.25 x max_memory_per_child")
        rows.append(row)
    return rows


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    # Loaded again to learn the origins; the same inputs give the same values.
    settings, origins = load_settings_with_origins(
        config_file=Path(args.config) if args.config else None,
        overrides={"home": args.home})
    rows = settings_list(settings, origins)
    path = settings.config_file
    if args.json:
        print_json({"config_file": str(path) if path else None,
                    "config_file_exists": bool(path and path.is_file()), "settings": rows})
        return 0
    for row in rows:
        origin = f"{row['origin']}:{row['source']}" if row["source"] else row["origin"]
        print(f"{origin}\t{row['key']}={_text(row['value'])}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "config", help="every setting's value and where it came from",
        description="List every setting's effective value with its origin (default, "
                    "file:PATH, env:VAR or flag:--NAME), like git config --list "
                    "--show-origin. Passwords in URLs are shown as ***.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_config)
