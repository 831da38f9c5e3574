"""Progress bars on a terminal only (tqdm, on stderr).

A command draws bars when both stdout and stderr are terminals and ``--json`` was not
given; piped into a file or another program, it prints exactly what it would without them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm


def wanted(json_output: bool) -> bool:
    return not json_output and sys.stdout.isatty() and sys.stderr.isatty()


@contextmanager
def byte_bar(enabled: bool, description: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """An ``on_progress(bytes_delta)`` callback drawing a bar of ``total`` bytes, or None."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm  # here: tqdm loads importlib.metadata; only a terminal needs it

    bar = tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
               file=sys.stderr, leave=False, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()


FRAME_STAGES = ("extracting", "analysing")


class StageBars:
    """The pipeline's ``on_progress(stage, done, total)``: one bar per stage."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            from tqdm import tqdm

            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{self.description} {stage}", unit="frame" if stage in FRAME_STAGES else "step",
                            file=sys.stderr, leave=False, dynamic_ncols=True)
        assert self.bar is not None
        if total != self.bar.total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextmanager
def stage_bars(enabled: bool, description: str) -> Iterator[StageBars | None]:
    if not enabled:
        yield None
        return
    bars = StageBars(description)
    try:
        yield bars
    finally:
        bars.close()
