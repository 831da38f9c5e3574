"""PeakOps core: the headless library (no Qt, no Huey, no APScheduler).

``core.process(path, home=...)`` processes one video here and returns a
:class:`core.api.Result`; ``core.open(home)`` returns a :class:`core.api.PeakOps` handle
with submit, get, list, retry and cancel. Both are loaded on first use, so ``import
core`` stays cheap.
"""

from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("peakops")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_API = ("process", "open", "PeakOps", "Result", "Frame", "Label")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from core import api
        return getattr(api, name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
