"""Details pane: probe facts, error with what to do, frame thumbnails with labels, activity."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QFormLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.app import App
from core.naming import fmt_timing
from core.store import lifecycle, queries
from desktop.models import STATUS_COLOURS, fmt_time, human_size
from desktop.plain import escape, plain_label, tooltip
from desktop.tasks import TaskRunner

logger = logging.getLogger(__name__)

THUMB = QSize(128, 80)
HINTS = {
    "input": "The file itself is bad: re-export or re-record the video, then add it again.",
    "storage": "Check the disk space or the bucket (reachable, permissions), then retry.",
    "memory": "The video needs more memory than the hard limit allows: raise "
              "PEAKOPS_HARD_MEMORY_LIMIT, or process it off-peak when the machine is quiet.",
    "timeout": "The job ran too long or stalled: retry; if it repeats, raise "
               "PEAKOPS_JOB_TIMEOUT or process it off-peak.",
    "analysis": "The frames are kept: re-analyse later (for example when the analysis "
                "service is reachable again).",
    "internal": "Something in PeakOps went wrong: retry; report it if it repeats.",
}


def load_detail(app: App, upload_id: int) -> queries.UploadDetail:
    return queries.detail(app.db, upload_id)


def load_thumbnail(app: App, key: str, cache: Path, frame_id: int) -> QImage:
    """Fetch a frame image from the store and scale it (QImage is safe off the UI thread)."""
    local = cache / f"{frame_id}-{key.replace('/', '_')}"
    if not local.exists():
        part = local.with_suffix(".part")
        app.store.get_file(key, part)
        part.replace(local)
    image = QImage(str(local))
    if image.isNull():
        raise ValueError(f"frame {key} is not a readable image")
    return image.scaled(THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation)


def frame_caption(frame: dict[str, Any]) -> str:
    """Index, time and top labels; a near-duplicate names the frame it duplicates."""
    labels = frame.get("labels") or []
    lines = []
    for lb in labels[:3]:
        line = f"{lb['name']} {lb['confidence']:.0f}%"
        of = frame.get("duplicate_of")
        if lb["name"] == "near-duplicate" and of is not None:
            line = f"near-duplicate of #{of}"  # its time is in the tooltip
        lines.append(line)
    top = "\n".join(lines)
    return f"#{frame['idx']} · {frame['timestamp']:.1f} s\n{top or 'no labels yet'}"


def frame_facts(frame: dict[str, Any], times: dict[int, float] | None = None) -> str:
    """Where the frame came from and why it was chosen, for its tooltip."""
    parts = []
    of = frame.get("duplicate_of")
    if of is not None:
        when = (times or {}).get(of)
        parts.append(f"near-duplicate of frame #{of}"
                     + (f" at {when:.1f} s" if when is not None else ""))
    if frame.get("stream_frame") is not None:
        parts.append(f"frame {frame['stream_frame']} of the stream"
                     + (" (keyframe)" if frame.get("keyframe") else ""))
    if frame.get("source_time") is not None:
        parts.append(f"at {frame['source_time']:.3f} s on the file's clock")
    if frame.get("focus") is not None:
        parts.append(f"focus {frame['focus']:.0f}")
    if frame.get("reason"):
        parts.append(f"chosen: {frame['reason']}")
    return "\n".join(parts)


class DetailsPane(QWidget):
    thumbnails_loaded = Signal(int)  # upload id, once every thumbnail has arrived

    def __init__(self, runner: TaskRunner, parent: Any = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.upload_id: int | None = None
        self.generation = 0
        self.pending_thumbs = 0
        self.detail: queries.UploadDetail | None = None
        self._cache_dir = tempfile.TemporaryDirectory(prefix="peakops-thumbs-")
        self.cache = Path(self._cache_dir.name)
        self.images: dict[int, QImage] = {}  # by frame id (a reprocess makes new ones)

        self.title = plain_label(QLabel("Select an upload to see its details."))
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        self.title.setFont(font)
        self.facts = QFormLayout()
        self.facts.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.fact_labels: dict[str, QLabel] = {}
        for key in ("Status", "Video", "Size", "Mode", "Attempts", "Created", "Finished",
                    "Peak memory"):
            label = QLabel("") if key == "Status" else plain_label(QLabel(""))
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fact_labels[key] = label
            self.facts.addRow(f"{key}:", label)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.setStyleSheet("QLabel { background: #fdecea; border: 1px solid #c62828; "
                                 "border-radius: 4px; padding: 6px; color: #5f1111; }")
        self.error.hide()

        self.frames = QListWidget()
        self.frames.setViewMode(QListView.ViewMode.IconMode)
        self.frames.setIconSize(THUMB)
        self.frames.setGridSize(QSize(THUMB.width() + 16, THUMB.height() + 70))
        self.frames.setResizeMode(QListView.ResizeMode.Adjust)
        self.frames.setMovement(QListView.Movement.Static)
        self.frames.setWordWrap(True)
        self.frames.setUniformItemSizes(True)
        self.events = QTreeWidget()
        self.events.setHeaderLabels(["Time", "Event", "Message"])
        self.events.setRootIsDecorated(False)
        self.events.setColumnWidth(0, 130)
        self.events.setColumnWidth(1, 80)

        frames_box = QWidget()
        fl = QVBoxLayout(frames_box)
        fl.setContentsMargins(0, 0, 0, 0)
        self.frames_title = QLabel("Frames")
        fl.addWidget(self.frames_title)
        fl.addWidget(self.frames)
        events_box = QWidget()
        el = QVBoxLayout(events_box)
        el.setContentsMargins(0, 0, 0, 0)
        el.addWidget(QLabel("Activity"))
        el.addWidget(self.events)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(frames_box)
        split.addWidget(events_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.split = split

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(self.facts)
        layout.addWidget(self.error)
        layout.addWidget(split, 1)

    # -- loading ------------------------------------------------------------------------

    def show_upload(self, upload_id: int | None) -> None:
        """Load the upload's details off the UI thread (no-op if already shown)."""
        if upload_id == self.upload_id:
            return
        self.upload_id = upload_id
        self.reload()

    def reload(self) -> None:
        self.generation += 1
        generation = self.generation
        if self.upload_id is None:
            self.detail = None
            self._clear("Select an upload to see its details.")
            return
        self.runner.read(load_detail, self.upload_id,
                         on_result=lambda d: self._loaded(generation, d),
                         on_error=lambda exc: self._failed(generation, exc))

    def _failed(self, generation: int, exc: Exception) -> None:
        if generation == self.generation:
            self._clear(f"Upload {self.upload_id}: {exc}")

    def _clear(self, title: str) -> None:
        self.title.setText(title)
        for label in self.fact_labels.values():
            label.setText("")
        self.error.hide()
        self.frames.clear()
        self.events.clear()

    def _loaded(self, generation: int, detail: queries.UploadDetail) -> None:
        if generation != self.generation:  # the operator has moved on
            return
        same_frames = (self.detail is not None and self.detail.upload["id"] == detail.upload["id"]
                       and [(f["id"], len(f["labels"])) for f in self.detail.frames]
                       == [(f["id"], len(f["labels"])) for f in detail.frames])
        self.detail = detail
        u = detail.upload
        colour = STATUS_COLOURS.get(u["status"], "#000")
        self.title.setText(f"{u['original_name']}  ·  upload {u['id']}")
        status = f"<b style='color:{colour}'>{u['status']}</b>"
        if u["status"] == lifecycle.PROCESSING and u["stage"]:
            status += f" — {u['stage']} {u['progress_done'] or 0}/{u['progress_total'] or 0}"
        f = self.fact_labels
        f["Status"].setText(status)
        f["Video"].setText(
            f"{u['width']}×{u['height']} {u['codec']}, "
            f"{fmt_timing(u['duration'], u['fps'], u['frame_count'])}" + (f", rotated {u['rotation']}°" if u["rotation"] else "")
            + (", audio" if u["has_audio"] else ", no audio")
            + (", variable frame rate" if u.get("vfr") else "") if u["width"] else "not probed")
        f["Size"].setText(human_size(u["size"]))
        f["Mode"].setText(u["mode"] + (f", frames: {u['frame_selection']}"
                                      if u.get("frame_selection") else ""))
        started = [e["message"] for e in detail.events if e["kind"] == "start-level"]
        f["Attempts"].setText(f"{u['attempts']} (degrade level {u['degrade_level']})"
                              + (f"\n{started[-1]}" if started else ""))  # learned start level
        f["Created"].setText(fmt_time(u["created_at"]))
        f["Finished"].setText(fmt_time(u["finished_at"]) or "—")
        f["Peak memory"].setText(f"{u['peak_rss_kib'] / 1024:.0f} MB" if u["peak_rss_kib"]
                                 else "—")
        if u["error_category"]:
            hint = HINTS.get(u["error_category"], "")
            self.error.setText(f"<b>Error ({u['error_category']})</b>: {escape(u['error_message'])}"
                               f"<br><b>What to do:</b> {hint}")
            self.error.show()
        else:
            self.error.hide()
        self.events.clear()
        for e in detail.events:
            item = QTreeWidgetItem([fmt_time(e["at"]), e["kind"], e["message"]])
            item.setToolTip(2, tooltip(e["message"]))
            self.events.addTopLevelItem(item)
        self.events.scrollToBottom()
        if not same_frames:
            self._load_frames(generation, detail.frames)

    def _load_frames(self, generation: int, frames: list[dict[str, Any]]) -> None:
        self.frames.clear()
        self.frames_title.setText(f"Frames ({len(frames)})" if frames else
                                  "Frames: none recorded yet")
        self.frames.setVisible(bool(frames))
        total = sum(self.split.sizes()) or 600
        title = self.frames_title.sizeHint().height() + 4
        self.split.setSizes([total * 3 // 5, total * 2 // 5] if frames else [title, total - title])
        self.pending_thumbs = len(frames)
        placeholder = QPixmap(THUMB)
        placeholder.fill(Qt.GlobalColor.lightGray)
        times = {f["idx"]: f["timestamp"] for f in frames}
        for frame in frames:
            item = QListWidgetItem(QIcon(placeholder), frame_caption(frame))
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            labels = "\n".join(f"{lb['name']} {lb['confidence']:.1f}% ({lb['source']})"
                               for lb in frame["labels"]) or "no labels"
            item.setToolTip(tooltip("\n".join(filter(None, [labels,
                                                            frame_facts(frame, times)]))))
            self.frames.addItem(item)
            key = frame["id"]
            if key in self.images:
                self._thumb(generation, item, key, self.images[key])
            elif frame["storage_key"]:
                self.runner.read(load_thumbnail, frame["storage_key"], self.cache, key,
                                 on_result=lambda img, it=item, k=key: self._thumb(
                                     generation, it, k, img),
                                 on_error=lambda exc, k=key: self._thumb_failed(generation, k,
                                                                                exc))
            else:
                self._thumb_failed(generation, "?", ValueError("no stored image"))
        if not frames and self.upload_id is not None:
            self.thumbnails_loaded.emit(self.upload_id)

    def _thumb(self, generation: int, item: QListWidgetItem, key: int, image: QImage) -> None:
        self.images[key] = image  # kept either way: the operator may come back to it
        if generation == self.generation:
            item.setIcon(QIcon(QPixmap.fromImage(image)))
            self._thumb_settled()

    def _thumb_failed(self, generation: int, key: object, exc: Exception) -> None:
        logger.info("thumbnail %s not loaded: %s", key, exc)
        if generation == self.generation:
            self._thumb_settled()

    def _thumb_settled(self) -> None:
        self.pending_thumbs -= 1
        if self.pending_thumbs == 0 and self.upload_id is not None:
            self.thumbnails_loaded.emit(self.upload_id)

    def loaded_thumbnails(self) -> int:
        """How many frame items show a real image (for tests and the screenshot)."""
        return sum(1 for f in (self.detail.frames if self.detail else [])
                   if f["id"] in self.images)
