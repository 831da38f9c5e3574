"""Schedule panel: off-peak windows, open or closed, countdown, pause/resume/run-now.

The window math is :mod:`core.schedule.windows` (pure, takes ``now``); the buttons call
:mod:`core.schedule.control`, the same operations as ``peakops pause --after-current``,
``peakops resume`` and ``peakops run-now``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from core.app import App
from core.config import Settings
from core.schedule import control, offpeak
from core.schedule.offpeak import PAUSE_AFTER_CURRENT, PAUSE_UNTIL, RUN_NOW_UNTIL, countdown
from core.store import lifecycle, queries

KEYS = (PAUSE_UNTIL, PAUSE_AFTER_CURRENT, RUN_NOW_UNTIL)
FROM_CONSOLE = " (from the console)"


def load_state(app: App) -> dict[str, Any]:
    current = offpeak.read_control(app.db)
    return {PAUSE_UNTIL: current.pause_until, PAUSE_AFTER_CURRENT: current.pause_after_current,
            RUN_NOW_UNTIL: current.run_now_until,
            "_deferred": queries.counts_by_status(app.db).get(lifecycle.DEFERRED, 0)}


def write_pause(app: App, now: datetime | None = None) -> control.Change:
    """Soft pause: the running video finishes, nothing off-peak starts until resumed."""
    return control.pause(app.db, now=now or datetime.now(UTC), after_current=True,
                         origin=FROM_CONSOLE)


def write_resume(app: App, now: datetime | None = None) -> control.Change:
    return control.resume(app.db, now=now or datetime.now(UTC), origin=FROM_CONSOLE)


def write_run_now(app: App, until: float, now: datetime | None = None) -> control.Change:
    """Run the deferred backlog as if a window were open until ``until``; ends a pause."""
    return control.run_now(app.db, until=datetime.fromtimestamp(until, UTC),
                           now=now or datetime.now(UTC), origin=FROM_CONSOLE)


def is_paused(values: dict[str, Any], now: float) -> bool:
    return offpeak.Control(values.get(PAUSE_UNTIL), bool(values.get(PAUSE_AFTER_CURRENT)),
                           values.get(RUN_NOW_UNTIL)).pause_reason(
        datetime.fromtimestamp(now, UTC)) is not None


def describe(schedule: Any, now: datetime) -> tuple[bool, str]:
    """(open?, one line about the next change) for a parsed schedule."""
    if schedule.is_open(now):
        if getattr(schedule, "always_open", False):
            return True, "open around the clock"
        closes = schedule.closes_at(now)
        return True, f"closes in {countdown(closes - now)} ({closes:%a %H:%M})"
    nxt = schedule.next_open(now)
    if nxt is None:
        return False, "no window is configured: deferred uploads wait for run-now"
    return False, f"opens in {countdown(nxt - now)} ({nxt:%a %H:%M})"


class SchedulePanel(QWidget):
    pause_requested = Signal()
    resume_requested = Signal()
    run_now_requested = Signal(float)

    def __init__(self, settings: Settings, parent: Any = None) -> None:
        super().__init__(parent)
        self.schedule = None
        self.error = ""
        self.values: dict[str, Any] = {}
        self.spec = QLabel("")
        self.spec.setWordWrap(True)
        self.status = QLabel("")
        font = self.status.font()
        font.setBold(True)
        self.status.setFont(font)
        self.change = QLabel("")
        self.override = QLabel("")
        self.override.setWordWrap(True)
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.run_now_button = QPushButton("Run now")
        self.pause_button.clicked.connect(self.pause_requested)
        self.resume_button.clicked.connect(self.resume_requested)
        self.run_now_button.clicked.connect(self._run_now)
        buttons = QHBoxLayout()
        for b in (self.pause_button, self.resume_button, self.run_now_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.change)
        layout.addWidget(self.spec)
        layout.addWidget(self.override)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.set_settings(settings)

    def set_settings(self, settings: Settings) -> None:
        from core.schedule.windows import parse_windows  # pure window math, read-only here
        self.settings = settings
        try:
            self.schedule = parse_windows(settings.offpeak_windows, settings.timezone)
            self.error = ""
        except Exception as exc:  # noqa: BLE001 - a bad spec is shown, not fatal
            self.schedule, self.error = None, str(exc)
        self.spec.setText(f"Windows: {settings.offpeak_windows or '(none)'}  ·  time zone "
                          f"{settings.timezone}")
        self.tick()

    def update_state(self, values: dict[str, Any]) -> None:
        self.values = values
        self.tick()

    def tick(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        if self.schedule is None:
            self.status.setText("Off-peak schedule not usable")
            self.status.setStyleSheet("color: #c62828")
            self.change.setText(self.error)
        else:
            is_open, line = describe(self.schedule, now.astimezone(self.schedule.tz))
            self.status.setText("Off-peak window OPEN" if is_open else "Off-peak window closed")
            self.status.setStyleSheet("color: #2e7d32" if is_open else "color: #616161")
            self.change.setText(line)
        v = self.values
        notes = []
        now_s = now.timestamp()
        paused = is_paused(v, now_s)
        if paused:
            until = v.get(PAUSE_UNTIL)
            notes.append(f"paused until {datetime.fromtimestamp(until):%a %H:%M}"
                         if until and now_s < until < offpeak.PAUSE_FOREVER
                         else "paused until resumed")
        if v.get(RUN_NOW_UNTIL) and v[RUN_NOW_UNTIL] > now_s:
            notes.append(f"running now until {datetime.fromtimestamp(v[RUN_NOW_UNTIL]):%a %H:%M}")
        if "_deferred" in v:
            notes.append(f"{v['_deferred']} upload(s) waiting for off-peak")
        self.override.setText(" · ".join(notes))
        for button, on in ((self.pause_button, not paused), (self.resume_button, paused),
                           (self.run_now_button, True)):
            button.setEnabled(on)

    def _run_now(self) -> None:
        """Treat the window as open until the next regular opening (at most 12 h), as
        ``peakops run-now`` without ``--until`` does."""
        until = control.default_run_now_end(self.schedule, datetime.now(UTC))
        self.run_now_requested.emit(until.timestamp())
