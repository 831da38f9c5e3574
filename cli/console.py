"""``peakops console``: the operator console, or one screenshot of it.

``--screenshot PATH`` renders the window (offscreen when there is no display) once the
data has loaded, writes a PNG and exits 0. Without a display on Linux the console says
so in one line, points to the headless commands and exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from core.config import Settings

HEADLESS = ("peakops: no display here (DISPLAY/WAYLAND_DISPLAY unset), so no console; "
            "use the headless commands: `peakops demo`, `peakops submit FILE...`, "
            "`peakops worker`")
PANELS = ("window", "details", "worker", "schedule")


def has_display() -> bool:
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM"))


def cmd_console(settings: Settings, args: argparse.Namespace) -> int:
    if args.screenshot:
        if not has_display():
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif not has_display():
        print(HEADLESS)
        return 0
    from PySide6.QtWidgets import QApplication

    from batch.queue import sender
    from desktop.app import MainWindow
    from desktop.dialogs import ScriptedDialogs

    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    qt_app.setApplicationName("PeakOps")
    if not args.screenshot:
        window = MainWindow(settings, start_worker=args.start_worker,
                            send_queued=sender(settings))
        window.show()
        close_on_signals(qt_app, window)
        return qt_app.exec()
    window = MainWindow(settings, dialogs=ScriptedDialogs(), remember_ui=False,
                        send_queued=sender(settings))
    width, height = (int(v) for v in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    return take_screenshot(qt_app, window, Path(args.screenshot), select=args.select,
                           panel=args.panel, timeout=args.timeout)


def close_on_signals(qt_app, window) -> None:
    """Ctrl+C / SIGTERM close the window properly (it stops the service it started)."""
    from PySide6.QtCore import QTimer

    def close(*_: object) -> None:
        window.close()
        qt_app.quit()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, close)
    timer = QTimer(window)  # lets the interpreter run its signal handlers
    timer.timeout.connect(lambda: None)
    timer.start(300)


def take_screenshot(qt_app, window, path: Path, *, select: int | None, panel: str,
                    timeout: float) -> int:
    """Wait until the tables, panels and (with ``select``) thumbnails have loaded."""
    deadline = time.monotonic() + timeout
    selected = False
    while time.monotonic() < deadline:
        qt_app.processEvents()
        ready = window.first_load_done and window.worker_panel.loaded
        if ready and select is not None and not selected:
            selected = window.select_upload(select)
            if not selected:
                print(f"peakops: no upload {select} to select", file=sys.stderr)
                return 1
            ready = False
        if ready and select is not None:
            ready = (window.details.detail is not None and window.details.pending_thumbs <= 0)
        if ready and window.runner.pending == 0:
            break
        time.sleep(0.05)
    else:
        print("peakops: timed out waiting for the data; taking the screenshot anyway",
              file=sys.stderr)
    for _ in range(5):
        qt_app.processEvents()
        time.sleep(0.05)
    widget = window if panel == "window" else window.docks[panel]
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = widget.grab().save(str(path), "PNG")
    window.close()
    if not ok:
        print(f"peakops: could not write {path}", file=sys.stderr)
        return 1
    print(f"screenshot written to {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("console", help="open the operator console (PySide6)",
                              description="Open the operator console.")
    p.add_argument("--start-worker", action="store_true",
                   help="start the local worker service if none is running")
    p.add_argument("--screenshot", metavar="PATH",
                   help="render the window once the data has loaded, save a PNG, exit")
    p.add_argument("--select", metavar="ID", type=int,
                   help="with --screenshot: select this upload (details and thumbnails)")
    p.add_argument("--panel", choices=PANELS, default="window",
                   help="with --screenshot: the whole window or one panel")
    p.add_argument("--size", default="1440x900", help="with --screenshot: window size WxH")
    p.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_console)
