"""Riding out a lost server (the state database, the queue) in the worker's loop.

One :class:`Outage` per server: the first failure is one warning line, each further one
waits a little longer (doubling, up to :data:`MAX_BACKOFF_S`), and the first success
after it is one line saying it is back and for how long it was away. Nothing else is
logged meanwhile, however long the outage lasts; the worker never exits for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class Outage:
    """``failed(error)`` when a call to the server failed (logs once, then waits);
    ``ok()`` after a call succeeded (logs once if it had been down).

    ``wait(seconds)`` sleeps and returns early when the worker is stopping;
    ``clock`` gives seconds for the "away for" figure (monotonic by default).
    """

    def __init__(self, owner: str, what: str, wait: Callable[[float], object], *,
                 first: float = FIRST_BACKOFF_S, most: float = MAX_BACKOFF_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.owner, self.what = owner, what
        self.wait, self.clock = wait, clock
        self.first, self.most = first, most
        self.since: float | None = None
        self.delay = 0.0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> None:
        if self.since is None:
            self.since = self.clock()
            self.delay = self.first
            logger.warning("%s: %s; waiting for it, retrying with a backoff up to %.0f s",
                           self.owner, error, self.most)
        else:
            self.delay = min(self.delay * 2, self.most)
        self.wait(self.delay)

    def ok(self) -> None:
        if self.since is not None:
            logger.warning("%s: %s is reachable again after %.0f s", self.owner, self.what,
                           self.clock() - self.since)
            self.since = None
