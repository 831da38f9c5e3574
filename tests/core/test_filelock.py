"""The one file-lock helper: an open file holds the lock; closing it (or dying) drops it."""

from __future__ import annotations

import subprocess
import sys

from core.filelock import try_lock
from tests.helpers import REPO


def test_one_holder_at_a_time_and_closing_releases(tmp_path):
    path = tmp_path / "x.lock"
    first = try_lock(path)
    assert first is not None
    assert try_lock(path) is None  # another open file, even in this process
    other = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from core.filelock import try_lock; "
                            "print(try_lock(Path(sys.argv[1])) is None)", str(path)],
                           cwd=REPO, capture_output=True, text=True, check=True)
    assert other.stdout.strip() == "True"
    first.close()
    again = try_lock(path)
    assert again is not None
    again.close()
