"""Getting results out: one row per frame as CSV, JSON lines, or a standalone SQLite file.

A row names the upload (id, name, status), the frame (index, timestamp in seconds,
size), its labels with confidences, and where its image is: the copy made under
``frames_dir`` when one is given (``<upload-name>/<HH-MM-SS.mmm>.jpg``), otherwise the
object store's own location (a file under the home folder, or an ``s3://`` URL).

The SQLite form is written with sqlite-utils: tables ``uploads``, ``frames`` and
``labels`` with foreign keys, full-text search on upload names and label names, and a
``frame_labels`` view; it opens in Datasette or any SQLite tool. Every file is written
beside its destination and renamed into place, so a failed export leaves no half file,
and every one gets the same mode: 0666 less the umask, as any file the user writes.

A CSV cell that a spreadsheet would run as a formula (text starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return, such as a video named ``=HYPERLINK(...)``) is
written with a leading ``'`` so it shows as text. JSON lines and SQLite keep every value
exactly as recorded: whatever reads them must treat names as untrusted text.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from core.app import App
from core.errors import InputError
from core.naming import fmt_clock, unique_names
from core.store.sqldb import SqlDatabase

FORMATS = ("csv", "jsonl", "sqlite")
SQLITE_BATCH = 1000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("upload_id", "upload_name", "upload_status", "frame_index", "timestamp",
               "time", "width", "height", "stream_frame", "source_time", "keyframe", "focus",
               "reason", "vfr", "labels", "image")


@dataclass(frozen=True)
class Selection:
    """Which uploads to export: all of them unless narrowed."""

    ids: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    since: float | None = None  # epoch seconds: uploads submitted at or after


@dataclass
class ExportResult:
    path: Path | None  # None when written to a stream
    format: str
    uploads: int = 0
    frames: int = 0
    labels: int = 0
    images_copied: int = 0
    folders: dict[int, str] = field(default_factory=dict)  # upload id -> folder under frames_dir

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "format": self.format,
                "uploads": self.uploads, "frames": self.frames, "labels": self.labels,
                "images_copied": self.images_copied}


def select_uploads(db: SqlDatabase, selection: Selection) -> list[dict[str, Any]]:
    """The uploads ``selection`` names, in id order."""
    where, params = [], []
    if selection.ids:
        where.append(f"id IN ({','.join('?' * len(selection.ids))})")
        params += list(selection.ids)
    if selection.statuses:
        where.append(f"status IN ({','.join('?' * len(selection.statuses))})")
        params += list(selection.statuses)
    if selection.since is not None:
        where.append("created_at >= ?")
        params.append(selection.since)
    sql = "SELECT * FROM uploads" + (f" WHERE {' AND '.join(where)}" if where else "")
    return list(db.query(sql + " ORDER BY id", params))


def _labels_by_frame(db: SqlDatabase, upload_id: int) -> dict[int, list[dict]]:
    labels: dict[int, list[dict[str, Any]]] = {}
    for row in db.query(
            "SELECT l.frame_id, l.name, l.confidence, l.source FROM labels l "
            "JOIN frames f ON f.id = l.frame_id WHERE f.upload_id = ? "
            "ORDER BY l.frame_id, l.confidence DESC, l.id", [upload_id]):
        labels.setdefault(row.pop("frame_id"), []).append(row)
    return labels


class _Images:
    """Where each frame's image is: copied under ``frames_dir``, or the store's location."""

    def __init__(self, app: App, uploads: list[dict[str, Any]], frames_dir: Path | None):
        self.app, self.frames_dir = app, frames_dir
        self.folders = unique_names({u["id"]: u["original_name"] for u in uploads})
        self.copied = 0
        self.used: set[Path] = set()
        self.made: set[Path] = set()

    def _own_folder(self, folder: Path) -> None:
        """Make ``folder`` under ``frames_dir``; refuse a symlink found in its place (one
        planted there would send the images outside the folder asked for)."""
        if folder in self.made:
            return
        assert self.frames_dir is not None
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        try:
            info = folder.lstat()
        except FileNotFoundError:
            folder.mkdir()
            info = folder.lstat()
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(folder)
            state = "" if folder.exists() else " (dangling)"
            raise InputError(f"export --frames: {folder} is a symlink{state} to {target}; "
                             "refusing to write frames through it (remove it, or choose "
                             "another folder)")
        if not stat.S_ISDIR(info.st_mode):
            raise InputError(f"export --frames: {folder} is a file, not a folder")
        self.made.add(folder)

    def image(self, frame: dict[str, Any]) -> str:
        if self.frames_dir is None:
            return self.app.store.location(frame["storage_key"])
        folder = self.frames_dir / self.folders[frame["upload_id"]]
        target = folder / f"{fmt_clock(frame['timestamp'], '-')}.jpg"
        if target in self.used:  # two frames on the same millisecond
            target = folder / f"{fmt_clock(frame['timestamp'], '-')} #{frame['idx']}.jpg"
        self.used.add(target)
        self._own_folder(folder)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()  # an earlier export's copy, or a planted link: fetch afresh
        self.app.store.get_file(frame["storage_key"], target)
        if target.stat().st_nlink > 1:
            # The local store hands out hard links; an image editor saving in place must
            # not change the stored frame, so the export gets a copy of its own.
            part = target.with_name(target.name + ".part")
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            shutil.copyfile(target, part)
            os.replace(part, target)
        self.copied += 1
        return str(target)


def frame_rows(app: App, uploads: list[dict[str, Any]],
               images: _Images) -> Iterator[dict[str, Any]]:
    """One dict per frame of ``uploads`` (index order), labels strongest first."""
    for upload in uploads:
        labels = _labels_by_frame(app.db, upload["id"])
        for frame in app.db.query("SELECT * FROM frames WHERE upload_id = ? ORDER BY idx",
                                  [upload["id"]]):
            yield {"upload_id": upload["id"], "upload_name": upload["original_name"],
                   "upload_status": upload["status"], "frame_id": frame["id"],
                   "frame_index": frame["idx"], "timestamp": round(frame["timestamp"], 3),
                   "time": fmt_clock(frame["timestamp"]), "width": frame["width"],
                   "height": frame["height"], "sharpness": frame["sharpness"],
                   "brightness": frame["brightness"], "overexposed": frame["overexposed"],
                   **frame_facts(frame), "vfr": _flag(upload.get("vfr")),
                   "labels": labels.get(frame["id"], []), "image": images.image(frame)}


def frame_facts(frame: dict[str, Any]) -> dict[str, Any]:
    """Where a frame came from and why it was chosen (``None`` for frames from before
    these were recorded)."""
    return {"stream_frame": frame.get("stream_frame"), "source_time": frame.get("source_time"),
            "keyframe": _flag(frame.get("keyframe")), "focus": frame.get("focus"),
            "reason": frame.get("reason")}


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def format_labels(labels: list[dict[str, Any]]) -> str:
    """Labels in one spreadsheet cell: ``sharp (82.3%); well-exposed (70.1%)``."""
    return "; ".join(f"{lb['name']} ({lb['confidence']:.1f}%)" for lb in labels)


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch else None


def _umask() -> int:
    """This process's umask, read without setting it (os.umask would race other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def neutralise(cell: Any) -> Any:
    """A text cell a spreadsheet would evaluate as a formula, made plain text."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


@contextlib.contextmanager
def _atomic(dest: Path, mode: str = "w") -> Iterator[tuple[Path, IO[Any] | None]]:
    """A temp file beside ``dest``, renamed over it when the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(name)
    try:
        if mode == "sqlite":
            os.close(fd)
            tmp.unlink()
            yield tmp, None
        else:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                yield tmp, handle
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600, SQLite 0644: one mode
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write_csv(rows: Iterator[dict[str, Any]], out: IO[str], result: ExportResult) -> None:
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        result.frames += 1
        result.labels += len(row["labels"])
        writer.writerow({key: neutralise(value) for key, value in
                         {**row, "labels": format_labels(row["labels"])}.items()})


def _write_jsonl(rows: Iterator[dict[str, Any]], out: IO[str], result: ExportResult) -> None:
    for row in rows:
        result.frames += 1
        result.labels += len(row["labels"])
        out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_sqlite(path: Path, uploads: list[dict[str, Any]], rows: Iterator[dict[str, Any]],
                  result: ExportResult) -> None:
    import sqlite_utils  # here: ~12 MB, for this one format (cli loads this module always)

    db = sqlite_utils.Database(path)  # a standalone file for Datasette, not the state db
    try:
        db["uploads"].create({
            "id": int, "name": str, "status": str, "mode": str, "size": int,
            "duration": float, "width": int, "height": int, "codec": str, "fps": float,
            "submitted_at": str, "finished_at": str, "error_category": str,
            "error_message": str, "rekognition_calls": int, "vfr": int}, pk="id")
        db["uploads"].insert_all({
            "id": u["id"], "name": u["original_name"], "status": u["status"], "mode": u["mode"],
            "size": u["size"], "duration": u["duration"], "width": u["width"],
            "height": u["height"], "codec": u["codec"], "fps": u["fps"],
            "submitted_at": _iso(u["created_at"]), "finished_at": _iso(u["finished_at"]),
            "error_category": u["error_category"], "error_message": u["error_message"],
            "rekognition_calls": u["rekognition_calls"], "vfr": u.get("vfr")} for u in uploads)
        db["frames"].create({
            "id": int, "upload_id": int, "idx": int, "timestamp": float, "time": str,
            "width": int, "height": int, "sharpness": float, "brightness": float,
            "overexposed": float, "stream_frame": int, "source_time": float, "keyframe": int,
            "focus": float, "reason": str, "image": str}, pk="id",
            foreign_keys=[("upload_id", "uploads", "id")])
        db["labels"].create({"id": int, "frame_id": int, "upload_id": int, "name": str,
                             "confidence": float, "source": str}, pk="id",
                            foreign_keys=[("frame_id", "frames", "id"),
                                          ("upload_id", "uploads", "id")])
        frame_rows_, label_rows = [], []

        def flush() -> None:  # one transaction per batch: a commit per row is 100x slower
            db["frames"].insert_all(frame_rows_)
            db["labels"].insert_all(label_rows)
            frame_rows_.clear()
            label_rows.clear()

        for row in rows:
            frame_rows_.append({
                "id": row["frame_id"], "upload_id": row["upload_id"], "idx": row["frame_index"],
                "timestamp": row["timestamp"], "time": row["time"], "width": row["width"],
                "height": row["height"], "sharpness": row["sharpness"],
                "brightness": row["brightness"], "overexposed": row["overexposed"],
                **{k: row[k] for k in ("stream_frame", "source_time", "keyframe", "focus",
                                       "reason")},
                "image": row["image"]})
            label_rows.extend({"frame_id": row["frame_id"], "upload_id": row["upload_id"], **lb}
                              for lb in row["labels"])
            result.frames += 1
            result.labels += len(row["labels"])
            if len(frame_rows_) >= SQLITE_BATCH:
                flush()
        flush()
        db["frames"].create_index(["upload_id", "idx"], unique=True)
        db["labels"].create_index(["frame_id"])
        db["labels"].create_index(["name"])
        db["uploads"].enable_fts(["name"], create_triggers=True)
        db["labels"].enable_fts(["name"], create_triggers=True)
        db.create_view("frame_labels", """
            SELECT u.id AS upload_id, u.name AS upload, f.idx AS frame, f.time, f.image,
                   l.name AS label, l.confidence, l.source
            FROM labels l JOIN frames f ON f.id = l.frame_id JOIN uploads u ON u.id = f.upload_id
            ORDER BY u.id, f.idx, l.confidence DESC""")
        db.vacuum()
    finally:
        db.close()


def export(app: App, fmt: str, selection: Selection, *, dest: Path | None = None,
           stream: IO[str] | None = None, frames_dir: Path | None = None) -> ExportResult:
    """Write the selected uploads' frames as ``fmt`` to ``dest`` (or ``stream``).

    ``frames_dir`` also copies every frame image there under a readable name. The SQLite
    form needs ``dest``; CSV and JSON lines go to ``stream`` (default stdout) without one.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "sqlite" and dest is None:
        raise ValueError("the sqlite format needs a destination file")
    uploads = select_uploads(app.db, selection)
    images = _Images(app, uploads, frames_dir)
    result = ExportResult(path=dest, format=fmt, uploads=len(uploads), folders=images.folders)
    rows = frame_rows(app, uploads, images)
    writer = _write_csv if fmt == "csv" else _write_jsonl
    if dest is None:
        writer(rows, stream or sys.stdout, result)
    elif fmt == "sqlite":
        with _atomic(dest, "sqlite") as (tmp, _):
            _write_sqlite(tmp, uploads, rows, result)
    else:
        with _atomic(dest) as (_, handle):
            assert handle is not None
            writer(rows, handle, result)
    result.images_copied = images.copied
    return result
