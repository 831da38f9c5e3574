"""The uploads model and filter with explicit rows, and the poll against real SQLite."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt

from core.store import lifecycle
from core.store.db import connect
from desktop.models import COLUMN_KEYS, FIELDS, Changes, UploadsFilter, UploadsModel, fetch_changes


def row(upload_id, name="clip.mp4", status="QUEUED", updated=100.0, **extra):
    values = {f: None for f in FIELDS}
    values.update(id=upload_id, original_name=name, status=status, mode="now", attempts=0,
                  size=1000 * upload_id, created_at=float(upload_id), updated_at=updated,
                  **extra)
    return tuple(values[f] for f in FIELDS)


def loaded(rows):
    model = UploadsModel()
    model.apply(Changes(rows, len(rows), True))
    return model


def test_first_load_sorts_newest_first_and_counts_statuses():
    model = loaded([row(1, status="DONE"), row(2, status="FAILED"), row(3)])
    assert [r[0] for r in model.rows] == [3, 2, 1]
    assert model.counts == {"DONE": 1, "FAILED": 1, "QUEUED": 1}
    status_col = COLUMN_KEYS.index("status")
    assert model.index(1, status_col).data() == "FAILED"
    assert model.index(1, status_col).data(Qt.ItemDataRole.ForegroundRole) is not None


def test_refresh_changes_only_the_changed_row(qtbot):
    model = loaded([row(1), row(2), row(3)])
    changed = []
    model.dataChanged.connect(lambda a, b: changed.append((a.row(), b.row())))
    transitions = model.apply(Changes(
        [row(1), row(2, status="PROCESSING", updated=101.0, stage="extracting",
                       progress_done=3, progress_total=20)], 3, False))
    assert changed == [(1, 1)]  # row 1 came back identical: no signal for it
    assert transitions == [(2, "QUEUED", "PROCESSING")]
    assert model.counts["PROCESSING"] == 1 and model.counts["QUEUED"] == 2
    assert model.index(1, COLUMN_KEYS.index("stage")).data() == "extracting 3/20"
    assert model.last_seen == 101.0


def test_new_row_is_inserted_where_the_sort_puts_it_and_selection_is_kept(qtbot):
    model = loaded([row(i) for i in (1, 2, 3)])
    proxy = UploadsFilter()
    proxy.setSourceModel(model)
    selection = QItemSelectionModel(proxy)
    selection.select(proxy.index(1, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
                     | QItemSelectionModel.SelectionFlag.Rows)
    inserted = []
    model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
    model.apply(Changes([row(4, updated=102.0)], 4, False))
    assert inserted == [(0, 0)]
    assert [r[0] for r in model.rows] == [4, 3, 2, 1]
    assert proxy.ids([i.row() for i in selection.selectedRows()]) == [2]


def test_vanished_rows_are_removed():
    model = loaded([row(i) for i in (1, 2, 3)])
    model.apply(Changes([], 2, False, ids=[1, 3]))
    assert [r[0] for r in model.rows] == [3, 1]
    assert model.pos == {3: 0, 1: 1}
    assert model.counts["QUEUED"] == 2


def test_filter_by_status_and_text_and_sort_by_name():
    model = loaded([row(1, "bridge.mp4", "DONE"), row(2, "tunnel.mp4", "FAILED",
                                                      error_category="memory"),
                    row(3, "bridge-2.mp4", "FAILED")])
    proxy = UploadsFilter()
    proxy.setSourceModel(model)
    proxy.set_statuses({"FAILED"})
    assert sorted(proxy.ids(range(proxy.rowCount()))) == [2, 3]
    proxy.set_text("BRIDGE")
    assert proxy.ids(range(proxy.rowCount())) == [3]
    proxy.set_statuses(set())
    proxy.set_text("memory")
    assert proxy.ids(range(proxy.rowCount())) == [2]
    proxy.set_text("")
    proxy.sort(COLUMN_KEYS.index("original_name"), Qt.SortOrder.AscendingOrder)
    assert proxy.ids(range(proxy.rowCount())) == [3, 1, 2]


def test_fetch_changes_reads_only_recent_rows_and_notices_deletions(tmp_path):
    db = connect(tmp_path / "state.db")
    ids = [lifecycle.create_upload(db, original_name=f"v{i}.mp4", sha256=str(i), size=10, mode="now",
                              owner="t", lease_seconds=60, now=1000.0 + i) for i in range(5)]
    first = fetch_changes(db, None)
    assert first.full and [r[0] for r in first.rows] == ids
    lifecycle.cancel(db, ids[0], now=5000.0)
    later = fetch_changes(db, 4000.0, known=(5, ids[-1]))
    assert [r[0] for r in later.rows] == [ids[0]]  # the others are older than the overlap
    assert later.rows[0][FIELDS.index("status")] == "CANCELLED" and later.ids is None
    db.execute("DELETE FROM uploads WHERE id = ?", [ids[1]])
    gone = fetch_changes(db, 5000.0, known=(5, ids[-1]))
    assert gone.total == 4 and sorted(gone.ids) == [ids[0], *ids[2:]]
