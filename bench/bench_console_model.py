"""Console uploads model with 10,000 uploads: first load and one refresh tick.

Usage: QT_QPA_PLATFORM=offscreen python bench/bench_console_model.py [--uploads N] [--runs R]

Builds a state database in a temp folder with N uploads across every status, then times
(median of R runs):

- first load: the poll query for all rows + model reset + filter proxy + a table view
  laying out its visible rows (what the operator waits for when the console opens);
- refresh tick: 50 uploads change status and 5 are added, then the poll query for
  changed rows + applying them (dataChanged / insertRows) + a full repaint of the
  visible rows (forced here; the view normally repaints only what changed).

The query part runs on a pool thread in the console; it is timed here separately so the
UI-thread share is visible. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtWidgets import QApplication, QTableView  # noqa: E402

from core.store.db import connect, transaction  # noqa: E402
from core.store.lifecycle import STATUSES as UPLOAD_STATUSES  # noqa: E402
from desktop.models import UploadsFilter, UploadsModel, fetch_changes  # noqa: E402


def seed(db, n: int, now: float) -> None:
    rng = random.Random(7)
    rows = []
    for i in range(1, n + 1):
        status = rng.choice(UPLOAD_STATUSES)
        rows.append((f"inspection-{i:05d}.mp4", f"{i:064x}", rng.randint(10**5, 10**8), status,
                     "now", "memory" if status == "FAILED" else None, rng.uniform(2, 600),
                     now - n + i, now - n + i))
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO uploads (original_name, sha256, size, status, mode, error_category, "
            "duration, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def touch(db, n: int, now: float, changed: int = 50, added: int = 5) -> None:
    with transaction(db):
        for upload_id in random.sample(range(1, n + 1), changed):
            db.execute("UPDATE uploads SET status = 'PROCESSING', stage = 'analysing', "
                       "progress_done = 3, progress_total = 20, updated_at = ? WHERE id = ?",
                       [now, upload_id])
        for i in range(added):
            db.execute("INSERT INTO uploads (original_name, size, status, mode, created_at, "
                       "updated_at) VALUES (?, 1000, 'QUEUED', 'now', ?, ?)",
                       [f"new-{now}-{i}.mp4", now, now])


def one_run(app: QApplication, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = connect(Path(tmp) / "state.db")
        now = time.time()
        seed(db, n, now - 60)
        model, proxy, view = UploadsModel(), UploadsFilter(), QTableView()
        proxy.setSourceModel(model)
        view.setModel(proxy)
        view.setSortingEnabled(True)
        view.resize(1200, 700)
        view.show()
        app.processEvents()

        t0 = time.perf_counter()
        changes = fetch_changes(db, None)
        t1 = time.perf_counter()
        model.apply(changes)
        t1b = time.perf_counter()
        view.viewport().repaint()
        app.processEvents()
        t2 = time.perf_counter()
        assert proxy.rowCount() == n

        touch(db, n, time.time())
        t3 = time.perf_counter()
        changes = fetch_changes(db, model.last_seen, model.known())
        t4 = time.perf_counter()
        model.apply(changes)
        t4b = time.perf_counter()
        view.viewport().repaint()
        app.processEvents()
        t5 = time.perf_counter()
        assert proxy.rowCount() == n + 5

        proxy.set_statuses({"FAILED"})
        t6 = time.perf_counter()
        app.processEvents()
        view.viewport().repaint()
        t7 = time.perf_counter()
        view.close()
        db.conn.close()
        return {"load query": t1 - t0, "load apply": t1b - t1, "load paint": t2 - t1b,
                "tick query": t4 - t3, "tick apply": t4b - t4, "tick paint": t5 - t4b,
                "status filter": (t7 - t6) + 0.0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    runs = [one_run(app, args.uploads) for _ in range(args.runs)]
    print(f"console model, {args.uploads} uploads, median of {args.runs} runs (ms):")
    for key in runs[0]:
        values = [r[key] * 1000 for r in runs]
        print(f"  {key:<18} {statistics.median(values):8.1f}   "
              f"(min {min(values):.1f}, max {max(values):.1f})")
    first = statistics.median(
        (r["load query"] + r["load apply"] + r["load paint"]) * 1000 for r in runs)
    tick = statistics.median(
        (r["tick query"] + r["tick apply"] + r["tick paint"]) * 1000 for r in runs)
    print(f"  first load total   {first:8.1f}\n  refresh tick total {tick:8.1f}")


if __name__ == "__main__":
    main()
