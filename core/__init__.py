"""PeakOps core: the headless library (no Qt, no Huey, no APScheduler)."""

from importlib import metadata

try:
    __version__ = metadata.version("peakops")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
