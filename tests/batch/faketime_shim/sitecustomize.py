"""Put on PYTHONPATH only for processes run under libfaketime by the batch service tests.

libfaketime (0.9.10) must leave CLOCK_MONOTONIC alone (FAKETIME_DONT_FAKE_MONOTONIC=1),
or CPython's lock timeouts (sem_clockwait on the monotonic clock, which it does not
intercept) wait for years. But then its clock_nanosleep wrapper turns CPython's absolute
monotonic deadline in ``time.sleep`` into EINVAL. Sleeping through select() with a
relative timeout sidesteps that; the clock the program reads stays the faked one.
"""

import os
import select
import time

if os.environ.get("FAKETIME"):
    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        select.select([], [], [], seconds)

    time.sleep = _sleep
