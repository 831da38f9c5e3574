"""The environment for programs that are not ours (ffmpeg, system tools).

A frozen (PyInstaller) PeakOps points ``LD_LIBRARY_PATH`` at its bundled libraries and
keeps the caller's value in ``LD_LIBRARY_PATH_ORIG``. A system program started with that
environment would load our copies instead of its own, and fail in confusing ways.
Our own job child is the frozen executable again and keeps the environment as it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

_VAR = "LD_LIBRARY_PATH"


def clean_env(env: Mapping[str, str] | None = None, *,
              frozen: bool | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: ``os.environ``) with the original library path restored.

    ``frozen`` defaults to whether this process is a PyInstaller app; elsewhere the
    environment is returned as it is.
    """
    result = dict(os.environ if env is None else env)
    if not (getattr(sys, "frozen", False) if frozen is None else frozen):
        return result
    original = result.pop(_VAR + "_ORIG", None)
    if original is None:
        result.pop(_VAR, None)
    else:
        result[_VAR] = original
    return result
