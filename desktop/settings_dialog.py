"""Settings dialog for the config file: edit, validate with core.config, then save.

Validation is core's own: the values are written as TOML to a scratch file and loaded
with :func:`core.config.load_settings` (no environment, so the file alone is judged);
the off-peak spec is parsed with :func:`core.schedule.windows.parse_windows`. A ConfigError's
message (it names the key) is shown and nothing is saved.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
)

from core.config import Settings, load_settings, read_config_file
from core.errors import PeakOpsError

FIELDS: list[tuple[str, str, str]] = [
    ("max_video_size_mb", "Largest video (MB)", "int"),
    ("max_frames_per_video", "Frames per video", "int"),
    ("frame_selection", "Frame selection", "even|sharpest|coverage"),
    ("max_memory_per_child", "Soft memory limit (KiB)", "int"),
    ("hard_memory_limit", "Hard memory limit (KiB, empty = 1.25 × soft)", "int"),
    ("max_tasks_per_child", "Jobs per child process", "int"),
    ("job_timeout", "Job timeout (s, 0 = none)", "float"),
    ("enable_aws_rekognition", "Use AWS Rekognition", "bool"),
    ("storage", "Storage", "local|s3"),
    ("s3_bucket", "S3 bucket", "str"),
    ("s3_endpoint_url", "S3 endpoint URL", "str"),
    ("offpeak_windows", "Off-peak windows", "str"),
    ("timezone", "Time zone", "str"),
    ("window_end_policy", "At window end", "soft|hard"),
    ("retention_days", "Keep finished uploads (days)", "float"),
]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def to_toml(values: dict[str, Any]) -> str:
    return "".join(f"{key} = {toml_value(value)}\n" for key, value in values.items())


def validate(values: dict[str, Any], home: Path) -> Settings:
    """Load ``values`` as a config file would be; raise PeakOpsError naming the key."""
    from core.schedule.windows import parse_windows
    with tempfile.TemporaryDirectory(prefix="peakops-settings-") as scratch:
        path = Path(scratch) / "config.toml"
        path.write_text(to_toml(values), encoding="utf-8")
        settings = load_settings({"PEAKOPS_HOME": str(home)}, config_file=path)
    parse_windows(settings.offpeak_windows, settings.timezone)
    return dataclasses.replace(settings, config_file=None)


def save(values: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text("# PeakOps settings (written by the console)\n" + to_toml(values),
                    encoding="utf-8")
    os.replace(part, path)


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, path: Path, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PeakOps settings")
        self.path = path
        self.settings = settings
        self.saved: Settings | None = None
        try:
            self.in_file = read_config_file(path)
        except PeakOpsError:
            self.in_file = {}
        self.widgets: dict[str, Any] = {}
        form = QFormLayout()
        for key, label, kind in FIELDS:
            value = self.in_file.get(key, getattr(settings, key))
            if kind == "bool":
                widget: Any = QCheckBox()
                widget.setChecked(bool(value))
            elif "|" in kind:
                widget = QComboBox()
                widget.addItems(kind.split("|"))
                widget.setCurrentText(str(value))
            else:
                widget = QLineEdit("" if value is None else str(value))
                widget.setMinimumWidth(320)
            self.widgets[key] = widget
            form.addRow(label, widget)
        self.message = QLabel(f"Saved to {path}. Restart the worker for changes to apply.")
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.on_save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

    def values(self) -> dict[str, Any]:
        """Values to write: what the file had plus whatever differs from the defaults."""
        defaults = Settings()
        out: dict[str, Any] = {}
        for key, _label, kind in FIELDS:
            widget = self.widgets[key]
            if kind == "bool":
                value: Any = widget.isChecked()
            elif "|" in kind:
                value = widget.currentText()
            else:
                value = widget.text().strip()
                if value == "":
                    continue
                if kind == "int":
                    value = int(value) if value.lstrip("-").isdigit() else value
                elif kind == "float":
                    try:
                        value = float(value)
                    except ValueError:
                        pass
            if key in self.in_file or value != getattr(defaults, key):
                out[key] = value
        return out

    def on_save(self) -> None:
        values = self.values()
        try:
            self.saved = validate(values, self.settings.home)
        except PeakOpsError as exc:
            self.message.setText(f"Not saved: {exc}")
            self.message.setStyleSheet("color: #c62828")
            return
        save(values, self.path)
        self.accept()
