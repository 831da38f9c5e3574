"""Worker panel: heartbeat state, current job, memory sparkline, restarts, start/stop, and
every worker of the fleet (host, state, memory, heartbeat) from the shared database."""

from __future__ import annotations

import collections
import time
from typing import Any

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.app import App
from core.store import heartbeat
from desktop import service
from desktop.models import fmt_time
from desktop.plain import tooltip

SAMPLES = 120
FLEET_COLUMNS = ["Worker", "Host", "State", "Job", "Memory", "Heartbeat"]


def load_workers(app: App) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return heartbeat.workers(app.db), heartbeat.recent_restarts(app.db, limit=20)


def worker_state(w: dict[str, Any] | None) -> tuple[str, str]:
    """(text, colour) for a heartbeat row; a stale heartbeat is a warning, not "running"."""
    if w is None:
        return "no worker has run yet", "#757575"
    if w["state"] == "stopped":
        return "stopped", "#757575"
    if w["stale"]:
        return f"not responding (heartbeat {w['age_s']:.0f} s old)", "#e65100"
    return ("running" + (" — busy" if w["state"] == "busy" else f" — {w['state']}")), "#2e7d32"


class Sparkline(QWidget):
    """Resident memory over the last samples against the soft and hard limits (KiB)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.samples: collections.deque[int] = collections.deque(maxlen=SAMPLES)
        self.soft = self.hard = 0
        self.setMinimumHeight(70)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def add(self, rss_kib: int, soft_kib: int, hard_kib: int) -> None:
        self.samples.append(rss_kib)
        self.soft, self.hard = soft_kib, hard_kib
        self.update()

    def paintEvent(self, event: Any) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), QColor("#fafafa"))
        p.setPen(QColor("#bdbdbd"))
        p.drawRect(0, 0, w - 1, h - 1)
        top = max([self.hard, self.soft, *self.samples, 1]) * 1.1

        def y(value: float) -> float:
            return h - 4 - (h - 8) * value / top

        for limit, colour, name in ((self.soft, "#f9a825", "soft"), (self.hard, "#c62828",
                                                                      "hard")):
            if limit:
                pen = QPen(QColor(colour), 1, Qt.PenStyle.DashLine)
                p.setPen(pen)
                p.drawLine(QPointF(0, y(limit)), QPointF(w, y(limit)))
                label_y = y(limit) - 3 if y(limit) > 16 else y(limit) + 13
                text = f"{name} {limit / 1024:.0f} MB"
                # hard on the left, soft on the right: equal limits never print on each other
                x = 4 if name == "hard" else w - 4 - p.fontMetrics().horizontalAdvance(text)
                p.drawText(QPointF(x, label_y), text)
        if not self.samples:
            p.setPen(QColor("#757575"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                       "no live samples: the worker is not running")
        else:
            step = w / max(SAMPLES - 1, 1)
            start = w - step * (len(self.samples) - 1)
            points = QPolygonF([QPointF(start + i * step, y(v))
                                for i, v in enumerate(self.samples)])
            p.setPen(QPen(QColor("#1e88e5"), 2))
            if len(self.samples) == 1:
                p.drawEllipse(points[0], 2, 2)
            else:
                p.drawPolyline(points)
        p.end()


class WorkerPanel(QWidget):
    start_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.worker: dict[str, Any] | None = None
        self.loaded = False
        self.state = QLabel("…")
        font = self.state.font()
        font.setBold(True)
        self.state.setFont(font)
        self.job = QLabel("")
        self.memory = QLabel("")
        self.jobs_done = QLabel("")
        self.restarts = QLabel("")
        self.restarts.setWordWrap(True)
        self.age = QLabel("")
        self.sparkline = Sparkline()
        self.start_button = QPushButton("Start worker service")
        self.start_button.clicked.connect(self.start_requested)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop_requested)
        self.fleet = QTreeWidget()  # every worker the shared database knows, any host
        self.fleet.setHeaderLabels(FLEET_COLUMNS)
        self.fleet.setRootIsDecorated(False)
        self.recent = QTreeWidget()
        self.recent.setHeaderLabels(["Time", "Cause", "Upload", "Memory", "Message"])
        self.recent.setRootIsDecorated(False)
        for column, width in enumerate((120, 85, 50, 60)):
            self.recent.setColumnWidth(column, width)

        grid = QGridLayout()
        for row, (name, widget) in enumerate((("State", self.state), ("Job", self.job),
                                              ("Memory", self.memory),
                                              ("Jobs done", self.jobs_done),
                                              ("Restarts", self.restarts),
                                              ("Heartbeat", self.age))):
            grid.addWidget(QLabel(f"{name}:"), row, 0, Qt.AlignmentFlag.AlignRight)
            grid.addWidget(widget, row, 1)
        grid.setColumnStretch(1, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        left = QVBoxLayout()
        left.addLayout(grid)
        left.addLayout(buttons)
        left.addWidget(QLabel("Workers (every host sharing this database)"))
        left.addWidget(self.fleet, 1)
        right = QVBoxLayout()
        right.addWidget(QLabel("Memory (last two minutes)"))
        right.addWidget(self.sparkline, 1)
        right.addWidget(QLabel("Recent child restarts"))
        right.addWidget(self.recent, 1)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 2)
        layout.addLayout(right, 3)

    def update_from(self, data: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
        workers, restarts = data
        self.loaded = True
        w = service.running_worker(workers) or (workers[0] if workers else None)
        self.worker = w
        text, colour = worker_state(w)
        self.state.setText(text)
        self.state.setStyleSheet(f"color: {colour}")
        running = w is not None and not w["stale"] and w["state"] != "stopped"
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        if w is None:
            for label in (self.job, self.memory, self.jobs_done, self.restarts, self.age):
                label.setText("—")
        else:
            if w["upload_id"] and running:
                total = w["progress_total"]
                stage = f"{w['stage'] or 'starting'}" + (
                    f" {w['progress_done'] or 0}/{total}" if total else "")
                self.job.setText(f"upload {w['upload_id']} — {stage}")
            else:
                self.job.setText("idle" if running else "—")
            rss, soft, hard = w["rss_kib"] or 0, w["soft_limit_kib"] or 0, w["hard_limit_kib"] or 0
            self.memory.setText(f"{rss / 1024:.0f} MB {'now' if running else 'last seen'}, peak {(w['peak_kib'] or 0) / 1024:.0f}"
                                f" MB · soft {soft / 1024:.0f} MB, hard {hard / 1024:.0f} MB")
            self.jobs_done.setText(f"{w['jobs_done'] or 0} (child starts {w['child_starts'] or 0})")
            causes = w["restarts"]
            self.restarts.setText(", ".join(f"{cause} {n}" for cause, n in sorted(causes.items()))
                                  or "none")
            if causes.get("hard-limit") or causes.get("memory-after-job"):
                self.restarts.setStyleSheet("color: #c62828")
            else:
                self.restarts.setStyleSheet("")
            self.age.setText(f"{w['age_s']:.0f} s ago · {w['name']} (pid {w['pid']})")
            self.age.setStyleSheet("color: #e65100" if w["stale"] and running is False
                                   and w["state"] != "stopped" else "")
            if running:
                self.sparkline.add(rss, soft, hard)
            else:
                self.sparkline.soft, self.sparkline.hard = soft, hard
                self.sparkline.update()
        self.show_fleet(workers)
        self.recent.clear()
        for r in restarts:
            item = QTreeWidgetItem([fmt_time(r["at"]), r["cause"], str(r["upload_id"] or ""),
                                    f"{(r['rss_kib'] or 0) / 1024:.0f} MB", r["message"] or ""])
            item.setToolTip(4, tooltip(r["message"] or ""))
            if r["cause"] in ("hard-limit", "memory-after-job"):
                item.setForeground(1, QColor("#c62828"))
            self.recent.addTopLevelItem(item)

    def show_fleet(self, workers: list[dict[str, Any]]) -> None:
        """One row per worker: name, host, state, job, memory and heartbeat age."""
        self.fleet.clear()
        for w in workers:
            text, colour = worker_state(w)
            job = f"upload {w['upload_id']}" if w["upload_id"] and w["live"] else ""
            item = QTreeWidgetItem([
                w["name"], w["host"] or "", text, job,
                f"{(w['rss_kib'] or 0) / 1024:.0f} MB (peak {(w['peak_kib'] or 0) / 1024:.0f})",
                f"{w['age_s']:.0f} s ago"])
            item.setForeground(2, QColor(colour))
            self.fleet.addTopLevelItem(item)

    @staticmethod
    def now() -> float:
        return time.time()
