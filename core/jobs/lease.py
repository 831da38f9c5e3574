"""Keeping a running job's lease: renewed every second on a thread of its own.

The job child renews the lease at each step of its work, but one step can take longer
than a lease (fetching a large video from S3, a slow frame): without this a reaper
would hand a live job to another worker. The renewals use their own database
connection, so a busy database never delays the memory samples that decide a kill.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from core.config import Settings
from core.errors import DatabaseBusyError
from core.store import lifecycle
from core.store.db import open_database

logger = logging.getLogger(__name__)

RENEW_EVERY_S = 1.0
BUSY_TIMEOUT_S = 5.0


class LeaseKeeper:
    """``with LeaseKeeper(settings, upload_id, owner):`` renews the lease while the block
    runs. A renewal that finds the upload no longer ours (cancelled, taken over) stops."""

    def __init__(self, settings: Settings, upload_id: int, owner: str) -> None:
        self.settings, self.upload_id, self.owner = settings, upload_id, owner
        self.renewals = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"lease-{upload_id}")

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        try:
            db = open_database(self.settings, busy_timeout_s=BUSY_TIMEOUT_S)
        except Exception:  # the job child's own renewals still run
            logger.exception("upload %s: lease keeper could not open the database",
                             self.upload_id)
            return
        try:
            while not self._done.wait(RENEW_EVERY_S):
                try:
                    if not lifecycle.renew_lease(db, self.upload_id, self.owner,
                                                 lease_seconds=self.settings.lease_seconds):
                        return  # no longer ours: the job finds out at its next step
                    self.renewals += 1
                except Exception as exc:  # a missed renewal is logged; the next one tries
                    if isinstance(exc, DatabaseBusyError):
                        logger.warning("upload %s: lease renewal skipped: the state database "
                                       "is locked by another writer", self.upload_id)
                    else:
                        logger.exception("upload %s: lease renewal failed", self.upload_id)
        finally:
            db.close()
