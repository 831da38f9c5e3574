"""huey, imported without psycopg, and without redis until a Redis queue is made.

huey.storage imports psycopg and redis whenever they are installed (fleet mode installs
both): psycopg for a huey storage PeakOps never uses (about 12 MB), redis with ssl and
asyncio (about 11 MB) for a Redis queue, even in a worker on the SQLite queue. Both are
hidden for that one import; :func:`enable_redis` gives huey's Redis storage the redis
module when a ``redis://`` queue is made. core.store.postgres imports psycopg when a fleet
database is configured.
"""

from __future__ import annotations

import sys

_HIDDEN = tuple(name for name in ("psycopg", "redis") if name not in sys.modules)
for _name in _HIDDEN:
    sys.modules[_name] = None  # type: ignore[assignment]  # ImportError inside huey
try:
    import huey.storage
finally:
    for _name in _HIDDEN:
        if _name in sys.modules and sys.modules[_name] is None:
            del sys.modules[_name]

from huey import Huey, RedisHuey, SqliteHuey  # noqa: E402


def enable_redis() -> None:
    """Give huey.storage the redis names it imports at its top (once per process).

    Needed only where redis was hidden at huey's import; harmless where it was not.
    """
    storage = huey.storage
    if storage.Redis is not None:
        return
    from redis import ConnectionPool, Redis
    from redis.exceptions import ConnectionError, TimeoutError  # noqa: A004

    storage.ConnectionPool, storage.Redis = ConnectionPool, Redis
    storage.ConnectionError, storage.TimeoutError = ConnectionError, TimeoutError
    storage.RedisStorage.redis_client = Redis


__all__ = ["Huey", "RedisHuey", "SqliteHuey", "enable_redis"]
