"""``peakops --self-test``: does this installation work, display or not?

Each check exercises one dependency the way the product uses it, in a temporary folder,
without network and without a display (Qt runs on the offscreen platform). It prints
one line per check and returns 1 when any fails. Meant for the packaged app: a missing
font, data file or shared library shows up here rather than at an operator's desk.
"""

from __future__ import annotations

import ctypes
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import core

Check = Callable[[Path], str]
"""A check gets its own temp folder and returns a one-line detail; it raises on failure."""


def check_qt(tmp: Path) -> str:
    from PySide6.QtCore import Qt, qVersion
    from PySide6.QtGui import QColor, QFontDatabase, QFontInfo
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication(["peakops-self-test"])
    families = QFontDatabase.families()
    if not families:
        raise RuntimeError("Qt found no fonts (install fonts-dejavu-core and fontconfig)")
    label = QLabel("PeakOps self-test 0123")
    label.setStyleSheet("background: white; color: black; font-size: 20px")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.resize(320, 60)
    image = label.grab().toImage()
    app.processEvents()
    white = QColor("white").rgb()
    inked = sum(1 for y in range(image.height()) for x in range(image.width())
                if image.pixel(x, y) != white)
    if inked < 100:
        raise RuntimeError(f"text rendered only {inked} non-background pixels")
    family = QFontInfo(label.font()).family()
    return (f"Qt {qVersion()} {app.platformName()}: text in {family!r} "
            f"({inked} pixels; {len(families)} font families)")


def check_ffmpeg(tmp: Path) -> str:
    from core.media import ffmpeg_exe
    from core.procenv import clean_env

    exe = ffmpeg_exe()
    out = tmp / "frame.png"
    done = subprocess.run(
        [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=size=64x48", "-frames:v", "1", str(out)],
        capture_output=True, text=True, timeout=60, env=clean_env())
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"ffmpeg exit {done.returncode}: {done.stderr.strip()[-200:]}")
    version = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30,
                             env=clean_env()).stdout.split("\n", 1)[0]
    return f"{version.removeprefix('ffmpeg version ').split()[0]} wrote a frame ({exe})"


def check_libav(tmp: Path) -> str:
    """PyAV in a probe child (as at submit), then one exact frame (as in the job child)."""
    from core import media
    from core.procenv import clean_env

    clip = tmp / "clip.mp4"
    done = subprocess.run(
        [media.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=size=64x48:rate=10:duration=1", "-pix_fmt", "yuv420p", str(clip)],
        capture_output=True, text=True, timeout=60, env=clean_env())
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg exit {done.returncode}: {done.stderr.strip()[-200:]}")
    facts = media.probe_isolated(clip)
    with media.default_extractor().open(clip, facts, media.ExtractOptions()) as source:
        frame = source.extract(0.5, tmp / "frame.jpg")
    import av

    return (f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}): probe child "
            f"{facts.frames} frames, frame at {frame.timestamp:.1f} s {frame.width}x{frame.height}")


def check_sqlite(tmp: Path) -> str:
    import sqlite3

    import sqlite_utils

    db = sqlite_utils.Database(tmp / "state.db")
    db.enable_wal()
    db["t"].insert_all([{"id": i, "v": f"x{i}"} for i in range(10)], pk="id")
    count = db.execute("SELECT COUNT(*) FROM t").fetchone()[0]
    db.close()
    if count != 10:
        raise RuntimeError(f"read back {count} rows, wrote 10")
    return f"SQLite {sqlite3.sqlite_version}, WAL, 10 rows written and read"


def check_huey(tmp: Path) -> str:
    from huey import SqliteHuey

    huey = SqliteHuey("peakops-self-test", filename=str(tmp / "queue.db"))

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    result = add(2, 3)
    task = huey.dequeue()
    if task is None:
        raise RuntimeError("enqueued a task but dequeued nothing")
    huey.execute(task)
    value = result.get()
    if value != 5:
        raise RuntimeError(f"task returned {value!r}, expected 5")
    return "SqliteHuey enqueue, dequeue, execute, result"


def check_apscheduler(tmp: Path) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from apscheduler.triggers.cron import CronTrigger

    zone = ZoneInfo("Europe/Berlin")  # needs the time zone database (tzdata)
    trigger = CronTrigger(day_of_week="mon-fri", hour=22, minute=0, timezone=zone)
    now = datetime(2026, 3, 27, 23, 0, tzinfo=zone)  # a Friday night before the DST change
    fire = trigger.get_next_fire_time(None, now)
    if fire is None or fire.weekday() != 0 or fire.hour != 22:
        raise RuntimeError(f"next fire time {fire}, expected Monday 22:00")
    return f"CronTrigger next fire {fire.isoformat()}"


def check_boto3(tmp: Path) -> str:
    import boto3

    session = boto3.session.Session(region_name="eu-west-1", aws_access_key_id="selftest",
                                     aws_secret_access_key="selftest")
    services = set(session.get_available_services())
    missing = {"s3", "rekognition", "sts"} - services
    if missing:
        raise RuntimeError(f"botocore data lacks {sorted(missing)}")
    s3 = session.client("s3")
    rekognition = session.client("rekognition")
    if not hasattr(rekognition, "detect_labels") or not hasattr(s3, "upload_fileobj"):
        raise RuntimeError("clients lack detect_labels/upload_fileobj")
    return (f"boto3 {boto3.__version__}: s3 and rekognition clients "
            f"({s3.meta.endpoint_url}); {len(services)} service models")


def check_pillow(tmp: Path) -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 48), "white")
    ImageDraw.Draw(image).rectangle((8, 8, 40, 30), fill="red")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    again = Image.open(io.BytesIO(buffer.getvalue()))
    again.load()
    if again.size != (64, 48):
        raise RuntimeError(f"JPEG read back as {again.size}")
    import PIL
    return f"Pillow {PIL.__version__}: JPEG encoded and decoded ({len(buffer.getvalue())} bytes)"


CHECKS: list[tuple[str, Check]] = [
    ("qt", check_qt), ("ffmpeg", check_ffmpeg), ("libav", check_libav), ("sqlite", check_sqlite),
    ("huey", check_huey), ("scheduler", check_apscheduler), ("boto3", check_boto3),
    ("pillow", check_pillow),
]


# --------------------------------------------------------------------------- display libs

_MISSING_RE = re.compile(r"(\S+\.so[.\d]*): cannot open shared object file")


def qt_plugin_dir() -> Path | None:
    try:
        import PySide6
    except ImportError:
        return None
    path = Path(PySide6.__file__).parent / "Qt" / "plugins"
    return path if path.is_dir() else None


def missing_libraries(library: Path) -> list[str]:
    """Shared libraries ``library`` needs that the system lacks (``ldd``; empty if none)."""
    try:
        out = subprocess.run(["ldd", str(library)], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    names = [line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line]
    return list(dict.fromkeys(names))  # ldd repeats a library for each library needing it


def package_for(soname: str) -> str | None:
    """The Debian package that provides ``soname``, from the table the build wrote."""
    table = Path(getattr(sys, "_MEIPASS", "")) / "peakops-system-libs.txt"
    if not table.is_file():
        return None
    for line in table.read_text().splitlines():
        name, _, package = line.partition(" ")
        if name == soname:
            return package.strip()
    return None


_SONAME_RE = re.compile(r"(lib[\w.+-]+?)\.so\.(\d+)")


def debian_package(soname: str) -> str:
    """The Debian package that ships ``soname``, by Debian's library naming policy: the
    name before ``.so`` plus the major version, joined by ``-`` when the name ends in a
    digit (``libxcb-icccm.so.4`` -> ``libxcb-icccm4``, ``libxkbcommon-x11.so.0`` ->
    ``libxkbcommon-x11-0``). The frozen app's own table, written at build time, wins."""
    known = package_for(soname)
    if known:
        return known
    match = _SONAME_RE.fullmatch(soname)
    if not match:
        return soname
    name, major = match[1].lower(), match[2]
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def xcb_problem() -> str | None:
    """Why Qt's X11 (xcb) platform plugin cannot load here, naming the libraries; None if
    it can. Qt's own message ("could not load the Qt platform plugin xcb even though it
    was found") does not say which library is missing."""
    plugins = qt_plugin_dir()
    plugin = plugins / "platforms" / "libqxcb.so" if plugins else None
    if plugin is None or not plugin.exists():
        return None
    try:
        ctypes.CDLL(str(plugin), mode=os.RTLD_LAZY | os.RTLD_LOCAL)
        return None
    except OSError as exc:
        first = _MISSING_RE.search(str(exc))
        names = missing_libraries(plugin) or ([first.group(1)] if first else [])
        if not names:
            return f"Qt's X11 plugin does not load: {exc}"
    packages = sorted({debian_package(n) for n in names})
    return (f"the console needs system libraries that are missing: {', '.join(names)}; "
            f"install them (Debian/Ubuntu: sudo apt-get install {' '.join(packages)})")


# --------------------------------------------------------------------------- running

def run(out=None, *, x11_problem: Callable[[], str | None] = xcb_problem) -> int:
    """Run every check; one line each; 0 when all pass. A console that cannot load Qt's
    X11 plugin is a failure: the installed app would not open its window."""
    out = out or sys.stdout
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import: no display needed
    frozen = "frozen" if getattr(sys, "frozen", False) else "source"
    print(f"peakops {core.__version__} self-test ({frozen}, {sys.executable})", file=out)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="peakops-selftest-") as root:
        for name, check in CHECKS:
            folder = Path(root) / name
            folder.mkdir()
            started = time.monotonic()
            try:
                ok, detail = True, check(folder)
            except Exception as exc:  # every failure is reported, the others still run
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            failures += not ok
            took = time.monotonic() - started
            print(f"{'ok  ' if ok else 'FAIL'}  {name:<9} {detail} [{took:.2f} s]", file=out,
                  flush=True)
    problem = x11_problem()
    failures += problem is not None
    print(f"{'FAIL' if problem else 'ok  '}  {'x11':<9} "
          f"{problem or 'Qt X11 (xcb) plugin loads'}", file=out)
    print(f"self-test: {'all passed' if not failures else f'{failures} failed'}", file=out)
    return 1 if failures else 0
