"""PeakOps core: the headless library (no Qt, no Huey, no APScheduler).

``core.process(path, home=...)`` processes one video here and returns a
:class:`core.api.Result`; ``core.open(home)`` returns a :class:`core.api.PeakOps` handle
with submit, get, list, retry and cancel. Both are loaded on first use, so ``import
core`` stays cheap; so is ``core.__version__``, read from the installed package's
metadata on first use (importlib.metadata with email and zipfile adds about 5 MB to
every process that imports core: the job child and the worker never ask for it).
"""

from typing import Any

_API = ("process", "open", "PeakOps", "Result", "Frame", "Label")
__all__ = ["__version__", *_API]


def _version() -> str:
    from importlib import metadata
    try:
        return metadata.version("peakops")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        version = globals()["__version__"] = _version()
        return version
    if name in _API:
        from core import api
        return getattr(api, name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
