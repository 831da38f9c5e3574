"""Signals turned into a stop request, safely: the handler only writes to a pipe."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], object], signals) -> Iterator[None]:
    """Call ``stop`` (from a relay thread) when one of ``signals`` arrives.

    The handler only writes a byte to a pipe: setting a ``threading.Event`` from a signal
    handler can deadlock when the signal lands while the main thread holds that event's
    lock inside ``Event.wait``, the very wait (a retry backoff) the signal must end.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def relay() -> None:
        while os.read(read_end, 1):
            stop()

    relay_thread = threading.Thread(target=relay, daemon=True, name="peakops-signals")
    relay_thread.start()

    def handler(signum, frame) -> None:
        with contextlib.suppress(BlockingIOError):  # a byte already waits: stop is coming
            os.write(write_end, b"\0")

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        os.close(write_end)  # the relay reads the end and returns
        relay_thread.join()
        os.close(read_end)
