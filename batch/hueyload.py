"""huey, imported without psycopg.

huey.storage imports psycopg whenever it is installed (fleet mode installs it), for a
huey storage PeakOps never uses: about 12 MB in every worker, a tenth of the memory
budget the worker's tree has on a 4K video. psycopg is hidden for that one import only;
core.store.sqldb imports it when a fleet database is configured.
"""

from __future__ import annotations

import sys

_hide = "psycopg" not in sys.modules
if _hide:
    sys.modules["psycopg"] = None  # type: ignore[assignment]  # ImportError inside huey
try:
    import huey.storage  # noqa: F401
finally:
    if _hide and "psycopg" in sys.modules and sys.modules["psycopg"] is None:
        del sys.modules["psycopg"]

from huey import Huey, RedisHuey, SqliteHuey  # noqa: E402

__all__ = ["Huey", "RedisHuey", "SqliteHuey"]
