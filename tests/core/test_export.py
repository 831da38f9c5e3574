"""Export: real processed uploads written as CSV, JSON lines and SQLite, read back."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import unicodedata
from pathlib import Path

import pytest
import sqlite_utils

from core.app import open_app, process_owner
from core.errors import InputError
from core.intake import submit_file
from core.jobs import pipeline
from core.naming import fmt_clock, safe_name, unique_names
from core.results import export
from core.store import lifecycle, queries
from tests.helpers import make_settings, run_cli


def process(app, clip, name=None):
    """Submit a copy of ``clip`` (named ``name``) and run the real pipeline on it."""
    if name is not None:
        copy = clip.parent / "named" / name
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(clip, copy)
        clip = copy
    upload_id = submit_file(app, clip).upload_id
    assert pipeline.process_now(app, upload_id, process_owner("test")) == lifecycle.DONE
    return upload_id


@pytest.fixture
def app(tmp_path):
    app = open_app(make_settings(tmp_path / "home", max_frames_per_video=4))
    yield app
    app.close()


@pytest.fixture
def two_done(app, clip_h264, clip_noaudio):
    return [process(app, clip_h264, "pier 3 — north.mp4"), process(app, clip_noaudio, "dock.mov")]


def db_labels(app, upload_id):
    """{frame idx: [(name, confidence, source), ...] strongest first} from the state db."""
    out = {}
    for r in app.db.query("SELECT f.idx, l.name, l.confidence, l.source FROM labels l JOIN "
                          "frames f ON f.id = l.frame_id WHERE f.upload_id = ? "
                          "ORDER BY f.idx, l.confidence DESC, l.id", [upload_id]):
        out.setdefault(r["idx"], []).append((r["name"], r["confidence"], r["source"]))
    return out


def test_sqlite_export_reads_back_with_rows_foreign_keys_and_full_text_search(
        app, two_done, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "SQLITE_BATCH", 3)  # 8 frames: three batches, one partial
    dest = tmp_path / "out" / "results.db"
    result = export.export(app, "sqlite", export.Selection(), dest=dest)
    frames = app.db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    labels = app.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
    assert (result.uploads, result.frames, result.labels) == (2, frames, labels) == (2, 8, labels)

    db = sqlite_utils.Database(dest)
    assert {"uploads", "frames", "labels"} <= set(db.table_names())
    assert [r["name"] for r in db["uploads"].rows_where(order_by="id")] == [
        "pier 3 — north.mp4", "dock.mov"]
    assert db["frames"].count == frames and db["labels"].count == labels
    fks = {(fk.column, fk.other_table, fk.other_column) for fk in db["frames"].foreign_keys}
    assert fks == {("upload_id", "uploads", "id")}
    fks = {(fk.column, fk.other_table, fk.other_column) for fk in db["labels"].foreign_keys}
    assert fks == {("frame_id", "frames", "id"), ("upload_id", "uploads", "id")}
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    # Every label of every frame, as the state database has it.
    for upload_id in two_done:
        exported = {}
        for r in db.query("SELECT f.idx, l.name, l.confidence, l.source FROM labels l JOIN "
                          "frames f ON f.id = l.frame_id WHERE f.upload_id = ? "
                          "ORDER BY f.idx, l.confidence DESC, l.id", [upload_id]):
            exported.setdefault(r["idx"], []).append((r["name"], r["confidence"], r["source"]))
        assert exported == db_labels(app, upload_id)
    # Full-text search on upload names and label names.
    assert db["uploads"].detect_fts() and db["labels"].detect_fts()
    assert [r["id"] for r in db["uploads"].search("north")] == [two_done[0]]
    sharp = app.db.execute("SELECT COUNT(*) FROM labels WHERE name = 'sharp'").fetchone()[0]
    assert sharp > 0 and len(list(db["labels"].search("sharp"))) == sharp
    # The view Datasette shows, and image paths that open.
    view = list(db.query("SELECT * FROM frame_labels WHERE upload_id = ?", [two_done[1]]))
    assert view and all(r["upload"] == "dock.mov" for r in view)
    for r in db["frames"].rows:
        assert r["image"].endswith(f"frames/{r['upload_id']}/{r['idx']:04d}.jpg")
        with open(r["image"], "rb") as handle:
            assert handle.read(3) == b"\xff\xd8\xff"
    db.close()
    assert [p.name for p in dest.parent.iterdir()] == ["results.db"]  # no temp file left


def test_csv_and_jsonl_parse_back_to_the_same_rows(app, two_done, tmp_path):
    csv_path, jsonl_path = tmp_path / "r.csv", tmp_path / "r.jsonl"
    export.export(app, "csv", export.Selection(), dest=csv_path)
    export.export(app, "jsonl", export.Selection(), dest=jsonl_path)
    with csv_path.open(newline="", encoding="utf-8") as handle:
        csv_rows = list(csv.DictReader(handle))
    json_rows = [json.loads(line) for line in jsonl_path.read_text("utf-8").splitlines()]
    assert len(csv_rows) == len(json_rows) == 8
    frames = list(app.db.query("SELECT * FROM frames ORDER BY upload_id, idx"))
    for frame, c, j in zip(frames, csv_rows, json_rows, strict=True):
        labels = db_labels(app, frame["upload_id"])[frame["idx"]]
        assert int(c["upload_id"]) == j["upload_id"] == frame["upload_id"]
        assert int(c["frame_index"]) == j["frame_index"] == frame["idx"]
        assert float(c["timestamp"]) == j["timestamp"] == round(frame["timestamp"], 3)
        assert c["upload_name"] == j["upload_name"] == queries.get_upload(
            app.db, frame["upload_id"])["original_name"]
        assert [(lb["name"], lb["confidence"], lb["source"]) for lb in j["labels"]] == labels
        parsed = re.findall(r"(?:^|; )(.+?) \(([0-9.]+)%\)", c["labels"])
        assert [(n, float(v)) for n, v in parsed] == [(n, round(v, 1)) for n, v, _ in labels]
        assert c["image"] == j["image"] == app.store.location(frame["storage_key"])


def test_filters_by_ids_status_and_since(app, two_done, clip_10s):
    failed = submit_file(app, clip_10s).upload_id
    lifecycle.cancel(app.db, failed)
    first, second = two_done
    app.db.execute("UPDATE uploads SET created_at = ? WHERE id = ?", [1000.0, first])
    app.db.execute("UPDATE uploads SET created_at = ? WHERE id = ?", [2000.0, second])
    app.db.execute("UPDATE uploads SET created_at = ? WHERE id = ?", [3000.0, failed])

    def ids(**selection):
        return [u["id"] for u in export.select_uploads(app.db, export.Selection(**selection))]

    assert ids() == [first, second, failed]
    assert ids(ids=(second,)) == [second]
    assert ids(statuses=("CANCELLED",)) == [failed]
    assert ids(statuses=("DONE",), since=1500.0) == [second]
    assert ids(since=2000.0) == [second, failed]
    out = io.StringIO()
    result = export.export(app, "jsonl", export.Selection(statuses=("CANCELLED",)), stream=out)
    assert (result.uploads, result.frames, out.getvalue()) == (1, 0, "")


HOSTILE = ["../../outside", "a/b\\c", "\x1b[31mred\x1b[0m", "..", "same.mp4", "SAME.mp4"]
MORE_HOSTILE = ["", "CON", "\u202egpj.exe", ".hidden", "tab\there\nnewline", "...", " . "]


def test_frames_dir_copies_under_sanitised_unique_names(app, tmp_path, clip_h264, clip_noaudio,
                                                        clip_10s, clip_vp9, clip_rotated,
                                                        clip_piped_mkv):
    clips = [clip_h264, clip_noaudio, clip_10s, clip_vp9, clip_rotated, clip_piped_mkv]
    ids = [process(app, clip) for clip in clips]
    # Names are user input (an API caller may set any): give the processed uploads
    # hostile ones, so each has real frames behind it.
    for upload_id, name in zip(ids, HOSTILE, strict=True):
        app.db.execute("UPDATE uploads SET original_name = ? WHERE id = ?", [name, upload_id])
    dest = tmp_path / "export" / "frames"
    result = export.export(app, "csv", export.Selection(), dest=tmp_path / "export" / "x.csv",
                           frames_dir=dest)
    assert result.images_copied == result.frames == 4 * len(clips)
    folders = list(result.folders.values())
    assert len({f.casefold() for f in folders}) == len(folders)  # unique, even on Windows
    for folder in folders + [safe_name(n, fallback="upload-1") for n in MORE_HOSTILE]:
        assert folder and "/" not in folder and "\\" not in folder and ".." not in folder
        assert not folder.startswith(".") and folder.strip() == folder
        assert not any(unicodedata.category(ch).startswith("C") for ch in folder)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["frames", "x.csv"]
    assert sorted(p.name for p in dest.iterdir()) == sorted(folders)
    rows = list(csv.DictReader((tmp_path / "export" / "x.csv").open(encoding="utf-8")))
    assert len(rows) == result.frames
    for row in rows:
        image = Path(row["image"])
        assert image.parent == dest.resolve() / result.folders[int(row["upload_id"])]
        assert re.fullmatch(r"\d\d-\d\d-\d\d\.\d{3}\.jpg", image.name)
        key = app.db.execute("SELECT storage_key FROM frames WHERE upload_id = ? AND idx = ?",
                             [int(row["upload_id"]), int(row["frame_index"])]).fetchone()[0]
        assert image.read_bytes() == (app.settings.home / "objects" / key).read_bytes()
        assert image.stat().st_nlink == 1  # a copy: editing it leaves the stored frame alone
    assert unique_names({1: "same.mp4", 2: "SAME.mp4", 3: "same.mov"}) == {
        1: "same", 2: "SAME (id 2)", 3: "same (id 3)"}


def test_cli_export_formats_summaries_and_usage_errors(tmp_path, clip_h264):
    home = tmp_path / "home"
    app = open_app(make_settings(home, max_frames_per_video=3))
    upload_id = process(app, clip_h264)
    app.close()
    out = tmp_path / "r.db"
    proc = run_cli(home, "export", "-o", str(out), "--json", "--status", "done",
                   "--since", "2000-01-01", check=True)
    summary = json.loads(proc.stdout)
    assert (summary["format"], summary["uploads"], summary["frames"]) == ("sqlite", 1, 3)
    assert sqlite_utils.Database(out)["frames"].count == 3
    proc = run_cli(home, "export", "--format", "csv", str(upload_id), check=True)
    assert len(list(csv.DictReader(io.StringIO(proc.stdout)))) == 3
    assert "exported 3 frame(s) of 1 upload(s)" in proc.stderr  # stdout holds the data
    for args in (["--format", "sqlite"], ["--since", "yesterday"], ["--status", "nope"],
                 ["--format", "xml"]):
        proc = run_cli(home, "export", *args)
        assert proc.returncode == 2 and proc.stderr.count("\n") <= 4, (args, proc.stderr)
    proc = run_cli(home, "export", "999")
    assert proc.returncode == 1 and proc.stderr.strip() == "peakops: no upload with id 999"


FORMULAS = ['=HYPERLINK("http:\\\\evil.example","Click me")', "+1+1", "-2+3", "@SUM(A1)",
            "\tTAB", "\rCR"]


def test_csv_cells_that_would_run_as_formulas_are_text(app, tmp_path, clip_h264):
    upload_id = process(app, clip_h264)
    for name in FORMULAS:
        app.db.execute("UPDATE uploads SET original_name = ? WHERE id = ?", [name, upload_id])
        export.export(app, "csv", export.Selection(), dest=tmp_path / "x.csv")
        export.export(app, "jsonl", export.Selection(), dest=tmp_path / "x.jsonl")
        rows = list(csv.DictReader((tmp_path / "x.csv").open(encoding="utf-8", newline="")))
        assert len(rows) == 4 and {r["upload_name"] for r in rows} == {"'" + name}
        assert all(not r[c].startswith(export.FORMULA_STARTS) for r in rows for c in r)
        kept = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
        assert {r["upload_name"] for r in kept} == {name}  # JSON lines keep the value as is
    assert export.neutralise(-1.5) == -1.5 and export.neutralise("pier 3") == "pier 3"


def test_export_files_of_every_format_get_one_mode(app, two_done, tmp_path):
    modes = set()
    for fmt in export.FORMATS:
        dest = tmp_path / f"out.{fmt}"
        export.export(app, fmt, export.Selection(), dest=dest)
        modes.add(dest.stat().st_mode & 0o777)
    assert modes == {0o666 & ~export._umask()}, modes


def test_frames_are_never_written_through_a_planted_folder_symlink(app, tmp_path, clip_h264):
    upload_id = process(app, clip_h264, "pier.mp4")
    frames, outside = tmp_path / "frames", tmp_path / "outside"
    frames.mkdir()
    outside.mkdir()
    (frames / "pier").symlink_to(outside)
    with pytest.raises(InputError, match=r"frames/pier is a symlink to .*outside; refusing"):
        export.export(app, "csv", export.Selection(ids=(upload_id,)),
                      dest=tmp_path / "x.csv", frames_dir=frames)
    assert list(outside.iterdir()) == [] and not (tmp_path / "x.csv").exists()
    (frames / "pier").unlink()
    (frames / "pier").symlink_to(tmp_path / "gone")
    with pytest.raises(InputError, match=r"frames/pier is a symlink \(dangling\) to .*gone"):
        export.export(app, "csv", export.Selection(ids=(upload_id,)),
                      dest=tmp_path / "x.csv", frames_dir=frames)
    assert not (tmp_path / "gone").exists()
    (frames / "pier").unlink()
    (frames / "pier").mkdir()
    first = app.db.execute("SELECT timestamp FROM frames WHERE upload_id = ? ORDER BY idx",
                           [upload_id]).fetchone()[0]
    planted = frames / "pier" / f"{fmt_clock(first, '-')}.jpg"
    planted.symlink_to(outside / "planted.jpg")
    result = export.export(app, "csv", export.Selection(ids=(upload_id,)),
                           dest=tmp_path / "x.csv", frames_dir=frames)
    assert result.images_copied == 4 and list(outside.iterdir()) == []
    assert planted.is_file() and not planted.is_symlink()


def test_cli_export_dangling_link_and_unknown_suffix(tmp_path, clip_h264):
    home = tmp_path / "home"
    app = open_app(make_settings(home, max_frames_per_video=2))
    process(app, clip_h264, "pier.mp4")
    app.close()
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "pier").symlink_to(tmp_path / "gone")
    proc = run_cli(home, "export", "-o", str(tmp_path / "r.csv"), "--frames",
                   str(tmp_path / "frames"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "is a symlink (dangling)" in proc.stderr and "home folder" not in proc.stderr
    for name in ("results.xlsx", "results"):
        proc = run_cli(home, "export", "-o", str(tmp_path / name))
        assert proc.returncode == 2 and f"cannot tell the format from {name!r}" in proc.stderr
        assert not (tmp_path / name).exists()
    run_cli(home, "export", "-o", str(tmp_path / "results.xlsx"), "--format", "csv", check=True)
    assert (tmp_path / "results.xlsx").read_text().startswith("upload_id,")
