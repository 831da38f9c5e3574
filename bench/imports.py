"""What each import costs the job child and the supervisor (``python -m bench.imports``).

Each row is measured in a fresh interpreter that imports the modules in the order given
(the job child's own order), printing the resident memory after each: the delta is what
that import adds on top of those before it, and the time it took (a cold import: the
first run after a boot also reads the files from disk).
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = ("core", "core.app", "core.jobs.pipeline", "core.jobs.child", "av",
         "PIL.Image", "core.media.decode", "core.media.picture")
SUPERVISOR = ("psutil", "core.jobs.supervisor", "core.jobs.runner", "batch.worker", "batch.hold",
              "cli.main")  # `peakops worker` is cli.main with the worker command

_PROBE = """
import json, sys, importlib, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
rows = [["python", rss(), 0.0]]
for name in sys.argv[1:]:
    started = time.perf_counter()
    importlib.import_module(name)
    rows.append([name, rss(), (time.perf_counter() - started) * 1000])
print(json.dumps(rows))
"""


def costs(modules: tuple[str, ...]) -> list[dict]:
    """[{module, kib, total_kib, ms}] in import order."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *modules],
                          capture_output=True, text=True, timeout=120, check=True)
    out, before = [], 0
    for name, kib, ms in json.loads(done.stdout.strip().splitlines()[-1]):
        out.append({"module": name, "kib": kib - before, "total_kib": kib, "ms": ms})
        before = kib
    return out


def table(log=print) -> dict:
    result = {}
    for title, modules in (("job child", CHILD), ("supervisor", SUPERVISOR)):
        rows = result[title] = costs(modules)
        log(f"{title} imports (RSS each adds, in this order, and its import time):")
        for row in rows:
            log(f"  {row['module']:<22} +{row['kib'] / 1024:5.1f} MB  {row['ms']:7.1f} ms")
        log(f"  {'total':<22} {rows[-1]['total_kib'] / 1024:6.1f} MB")
    return result


if __name__ == "__main__":
    table()
