"""Several processes opening the same empty PostgreSQL database at once (a ``peakops
submit`` racing a worker on a fresh fleet) all succeed, and each migration runs once."""

from __future__ import annotations

import subprocess
import sys

from core.store import schema
from tests.databases import state_settings
from tests.helpers import REPO

OPENERS = 4

OPENER = """
import logging, sys
from pathlib import Path
from core.store.db import open_database
from tests.databases import state_settings
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
settings = state_settings(Path(sys.argv[1]), sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()  # released together with the other openers
db = open_database(settings)
print("version", db.schema_version(), flush=True)
"""


def test_concurrent_first_opens_make_the_schema_once(tmp_path, postgres_url):
    openers = [subprocess.Popen([sys.executable, "-c", OPENER, str(tmp_path / f"home{i}"),
                                 postgres_url], cwd=REPO, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(OPENERS)]
    try:
        for proc in openers:  # every one imported and configured: the race is the open
            assert proc.stdout.readline().strip() == "ready"
        for proc in openers:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=120) for proc in openers]
    finally:
        for proc in openers:
            proc.kill()
            proc.wait()
    for proc, (out, err) in zip(openers, results, strict=True):
        assert proc.returncode == 0, err
        assert f"version {schema.SCHEMA_VERSION}" in out.splitlines(), out
    applied = [line for out, _ in results for line in out.splitlines()
               if line.startswith("state database: migration")]
    assert sorted(applied) == sorted(f"state database: migration {n} applied"
                                     for n in range(1, schema.SCHEMA_VERSION + 1))

    from core.store.db import open_database
    db = open_database(state_settings(tmp_path / "check", postgres_url))
    try:
        assert db.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)
        assert db.schema_version() == schema.SCHEMA_VERSION
    finally:
        db.close()
