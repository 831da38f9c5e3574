"""Wiring: the state database, store, analyzer and extractor one entry point works with."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from core import home
from core.analysis.local import Analyzer, LocalAnalyzer
from core.config import Settings
from core.errors import DatabaseError
from core.liveness import host_id
from core.media import FrameExtractor, default_extractor
from core.storage.local import LocalStore, ObjectStore
from core.store.db import open_database
from core.store.sqldb import SqlDatabase

QueueSender = Callable[[list[int], str], None]
"""An entry point's hook that puts uploads an operation made QUEUED on the worker's
queue: ``send(upload_ids, kind)``, kind ``process``, ``reprocess`` or ``analyze``."""


@dataclass
class App:
    """What core functions need, built once from Settings and passed down."""

    settings: Settings
    db: SqlDatabase
    store: ObjectStore
    analyzer: Analyzer
    extractor: FrameExtractor
    send_queued: QueueSender | None = None

    def queued(self, upload_ids: Iterable[int], kind: str = "process") -> list[int]:
        """Hand uploads made QUEUED to the entry point's queue hook; return the ids.

        Without a hook nothing is sent: a running worker still finds QUEUED uploads, as
        it re-sends them whenever its queue is empty.
        """
        ids = list(upload_ids)
        if ids and self.send_queued is not None:
            self.send_queued(ids, kind)
        return ids

    def close(self) -> None:
        self.db.close()


def make_store(settings: Settings) -> ObjectStore:
    if settings.storage == "s3":
        from core.storage.s3 import S3Store  # boto3 is only loaded when S3 is configured
        return S3Store.from_settings(settings)
    return LocalStore(settings.home / "objects")


def make_analyzer(settings: Settings) -> Analyzer:
    if settings.enable_aws_rekognition:
        from core.analysis.rekognition import RekognitionAnalyzer
        return RekognitionAnalyzer.from_settings(settings)
    return LocalAnalyzer()


def open_app(settings: Settings, *, store: ObjectStore | None = None,
             analyzer: Analyzer | None = None, extractor: FrameExtractor | None = None,
             check_same_thread: bool = True, send_queued: QueueSender | None = None) -> App:
    """Open the state database the settings name (SQLite in the home, or the fleet's
    PostgreSQL) and build what works on it."""
    home.prepare(settings)
    if settings.database_dialect == "sqlite":
        home.check_database(settings)  # a lost SQLite file beside stored objects
    try:
        db = open_database(settings, check_same_thread=check_same_thread)
    except (DatabaseError, OSError) as exc:
        if isinstance(exc, DatabaseError) and not (exc.from_driver
                                                   and settings.database_dialect == "sqlite"):
            raise  # in our words already (newer schema, server unreachable), or not the home
        raise home.HomeError(home.explain(settings.home, exc)) from None
    return App(settings=settings, db=db,
               store=store or make_store(settings),
               analyzer=analyzer or make_analyzer(settings),
               extractor=extractor or default_extractor(), send_queued=send_queued)


def process_owner(role: str = "cli") -> str:
    """Lease owner name for this process: ``role@host:pid``, host as :func:`host_id` names
    it, so a reaper judges the pid only on the same machine."""
    return f"{role}@{host_id()}:{os.getpid()}"


def temp_dir_for(settings: Settings, upload_id: int) -> Path:
    """Per-job scratch folder; the pid in its name lets a sweep find abandoned ones."""
    return settings.tmp_dir / f"job-{upload_id}-{os.getpid()}"
