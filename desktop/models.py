"""The uploads table: rows read from SQLite, updated in place, filtered by a proxy.

Refresh is a cheap poll: uploads changed since the newest ``updated_at`` seen (an index
covers it; every transition sets it), re-read with a small overlap because two writers
can commit out of timestamp order. Changed rows get ``dataChanged``, new rows are
inserted where the current sort puts them, vanished rows are removed. The model sorts
itself (one Python sort) so the proxy only filters: a proxy sort over 10,000 rows would
call back into Python for every comparison.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor

from core.app import App
from core.store import queries
from core.store.lifecycle import STATUSES as UPLOAD_STATUSES
from core.store.sqldb import SqlDatabase
from desktop.plain import tooltip

FIELDS = ("id", "original_name", "status", "mode", "stage", "progress_done", "progress_total",
          "attempts", "size", "duration", "created_at", "finished_at", "error_category",
          "error_message", "updated_at")
F = {name: i for i, name in enumerate(FIELDS)}
Row = tuple

COLUMNS = (("id", "ID"), ("original_name", "Name"), ("status", "Status"), ("mode", "Mode"),
           ("stage", "Progress"), ("attempts", "Attempts"), ("size", "Size"),
           ("duration", "Duration"), ("error_category", "Error"), ("created_at", "Created"),
           ("finished_at", "Finished"))
COLUMN_KEYS = [key for key, _ in COLUMNS]

STATUS_COLOURS = {
    "UPLOADING": "#5c6bc0", "QUEUED": "#1e88e5", "DEFERRED": "#8e24aa", "PROCESSING": "#f9a825",
    "DONE": "#2e7d32", "FAILED": "#c62828", "CANCELLED": "#757575",
}
OVERLAP_S = 10.0
"""Re-read rows changed this long before the newest seen (out-of-order commits)."""

RawRole = int(Qt.ItemDataRole.UserRole) + 1
DISPLAY, FOREGROUND = int(Qt.ItemDataRole.DisplayRole), int(Qt.ItemDataRole.ForegroundRole)
TOOLTIP, ALIGN = int(Qt.ItemDataRole.ToolTipRole), int(Qt.ItemDataRole.TextAlignmentRole)
_ROLES = frozenset((DISPLAY, FOREGROUND, TOOLTIP, ALIGN, RawRole))
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


@dataclass(frozen=True)
class Changes:
    rows: list[Row]
    total: int
    full: bool
    ids: list[int] | None = None  # every id, only when rows have vanished


def fetch_changes(db: SqlDatabase, since: float | None,
                  known: tuple[int, int] | None = None) -> Changes:
    """Rows changed after ``since`` (all rows when None); runs on a pool thread.

    ``known`` is (rows held, highest id held): when fewer rows exist than that plus the
    new ones, some were deleted and every id is returned so the model can drop them.
    """
    if since is None:
        rows = queries.upload_rows(db, FIELDS)
        return Changes(rows, len(rows), True)
    rows = queries.upload_rows(db, FIELDS, changed_after=since - OVERLAP_S)
    total = queries.upload_count(db)
    ids = None
    if known is not None and total < known[0] + sum(1 for r in rows if r[0] > known[1]):
        ids = queries.upload_ids(db)
    return Changes(rows, total, False, ids)


def poll_uploads(app: App, since: float | None,
                 known: tuple[int, int] | None = None) -> Changes:
    return fetch_changes(app.db, since, known)


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def fmt_time(epoch: float | None) -> str:
    if not epoch:
        return ""
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


def progress_text(row: Row) -> str:
    stage, done, total = row[F["stage"]], row[F["progress_done"]], row[F["progress_total"]]
    if row[F["status"]] != "PROCESSING":
        return "" if row[F["status"]] != "DONE" else "done"
    if not stage:
        return ""
    return f"{stage} {done}/{total}" if total else stage


def _sort_key(column: str):
    index = F[column]

    def key(row: Row) -> tuple:
        value = row[index]
        if isinstance(value, str):
            value = value.casefold()
        return (value is None, value if value is not None else 0)
    return key


class UploadsModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[Row] = []
        self.pos: dict[int, int] = {}
        self.counts: Counter[str] = Counter()
        self.last_seen: float | None = None
        self.sort_column, self.sort_order = "id", Qt.SortOrder.DescendingOrder
        self._colours = {s: QBrush(QColor(c)) for s, c in STATUS_COLOURS.items()}

    # -- Qt model API -----------------------------------------------------------------

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][1]
        return None

    def data(self, index: QModelIndex, role: int = DISPLAY) -> Any:
        # Plain ints: this runs for every visible cell and role on each repaint.
        if role not in _ROLES or not index.isValid():
            return None
        row = self.rows[index.row()]
        key = COLUMN_KEYS[index.column()]
        if role == DISPLAY:
            return self.display(row, key)
        if role == FOREGROUND:
            return self._colours.get(row[F["status"]]) if key == "status" else None
        if role == TOOLTIP:
            if key == "error_category":
                return tooltip(row[F["error_message"]])
            return tooltip(row[F["original_name"]]) if key == "original_name" else None
        if role == ALIGN:
            return _RIGHT if key in ("id", "attempts", "size", "duration") else None
        return row  # RawRole

    @staticmethod
    def display(row: Row, key: str) -> str:
        value = row[F[key]]
        if key == "stage":
            return progress_text(row)
        if value is None:
            return ""
        if key == "size":
            return human_size(value)
        if key == "duration":
            return f"{value:.1f} s"
        if key in ("created_at", "finished_at"):
            return fmt_time(value)
        return str(value)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sort_column, self.sort_order = COLUMN_KEYS[column], order
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        ids = [self.rows[p.row()][0] if 0 <= p.row() < len(self.rows) else None
               for p in persistent]
        self.rows.sort(key=_sort_key(self.sort_column),
                       reverse=order == Qt.SortOrder.DescendingOrder)
        self._reindex()
        self.changePersistentIndexList(
            persistent, [self.index(self.pos[i], p.column()) if i is not None else QModelIndex()
                         for p, i in zip(persistent, ids, strict=True)])
        self.layoutChanged.emit()

    # -- data ------------------------------------------------------------------------

    def _reindex(self) -> None:
        self.pos = {r[0]: i for i, r in enumerate(self.rows)}

    def known(self) -> tuple[int, int]:
        return len(self.rows), max(self.pos, default=0)

    def row_by_id(self, upload_id: int) -> Row | None:
        i = self.pos.get(upload_id)
        return None if i is None else self.rows[i]

    def apply(self, changes: Changes) -> list[tuple[int, str | None, str]]:
        """Apply polled rows; return (id, old status, new status) for status changes."""
        if changes.rows:
            newest = max(r[F["updated_at"]] for r in changes.rows)
            self.last_seen = max(self.last_seen or 0.0, newest)
        elif self.last_seen is None:
            self.last_seen = time.time() - OVERLAP_S
        if changes.full:
            self.beginResetModel()
            self.rows = sorted(changes.rows, key=_sort_key(self.sort_column),
                               reverse=self.sort_order == Qt.SortOrder.DescendingOrder)
            self._reindex()
            self.counts = Counter(r[F["status"]] for r in self.rows)
            self.endResetModel()
            return [(r[0], None, r[F["status"]]) for r in changes.rows]
        transitions = []
        fresh = []
        last_col = len(COLUMNS) - 1
        for row in changes.rows:
            i = self.pos.get(row[0])
            if i is None:
                fresh.append(row)
                continue
            old = self.rows[i]
            if old == row:
                continue
            self.rows[i] = row
            if old[F["status"]] != row[F["status"]]:
                self.counts[old[F["status"]]] -= 1
                self.counts[row[F["status"]]] += 1
                transitions.append((row[0], old[F["status"]], row[F["status"]]))
            self.dataChanged.emit(self.index(i, 0), self.index(i, last_col))
        if len(fresh) > 50:  # a big batch: append, then one sort
            self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows) + len(fresh) - 1)
            self.rows.extend(fresh)
            self._reindex()
            self.endInsertRows()
            self.sort(COLUMN_KEYS.index(self.sort_column), self.sort_order)
        elif fresh:
            self._insert(fresh)
        for row in fresh:
            self.counts[row[F["status"]]] += 1
            transitions.append((row[0], None, row[F["status"]]))
        if changes.ids is not None:
            self.remove_ids(set(self.pos) - set(changes.ids))
        return transitions

    def _insert(self, fresh: list[Row]) -> None:
        """Insert each row where the current sort puts it (one key pass for the batch)."""
        key = _sort_key(self.sort_column)
        descending = self.sort_order == Qt.SortOrder.DescendingOrder
        ascending_keys = [key(r) for r in (reversed(self.rows) if descending else self.rows)]
        for row in fresh:
            k = key(row)
            p = bisect.bisect_right(ascending_keys, k)
            at = len(ascending_keys) - p if descending else p
            self.beginInsertRows(QModelIndex(), at, at)
            self.rows.insert(at, row)
            ascending_keys.insert(p, k)
            self.endInsertRows()
        self._reindex()

    def remove_ids(self, ids: set[int]) -> None:
        for upload_id in sorted(ids, key=lambda u: -self.pos.get(u, -1)):
            i = self.pos.get(upload_id)
            if i is None:
                continue
            self.beginRemoveRows(QModelIndex(), i, i)
            self.counts[self.rows[i][F["status"]]] -= 1
            del self.rows[i]
            self._reindex()
            self.endRemoveRows()


class UploadsFilter(QSortFilterProxyModel):
    """Status chips and text search; sorting is delegated to the source model."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.statuses: set[str] = set()  # empty: all
        self.text = ""

    def set_statuses(self, statuses: set[str]) -> None:
        self.beginFilterChange()
        self.statuses = {s for s in statuses if s in UPLOAD_STATUSES}
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self.text = text.strip().casefold()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        row = self.sourceModel().rows[source_row]
        if self.statuses and row[F["status"]] not in self.statuses:
            return False
        if self.text:
            hay = " ".join(str(row[F[k]] or "") for k in
                           ("id", "original_name", "error_category", "error_message"))
            return self.text in hay.casefold()
        return True

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if column >= 0:
            self.sourceModel().sort(column, order)

    def ids(self, rows: list[int]) -> list[int]:
        model = self.sourceModel()
        return [model.rows[self.mapToSource(self.index(r, 0)).row()][0] for r in rows]
