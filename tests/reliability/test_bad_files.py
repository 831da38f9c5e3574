"""The bad-file corpus through real ``peakops submit`` and ``peakops worker --burst``.

Each file ends DONE (a valid video) or refused/FAILED with category input and a message
an operator understands. The table (file -> status -> message) is printed and written to
``bad-files-table.md`` in the test's temporary folder.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.helpers import run_cli
from tests.reliability.corpus import build
from tests.reliability.support import FAST, assert_readable, burst, check_invariants, db_dicts

ENV = {**FAST, "PEAKOPS_MAX_FRAMES_PER_VIDEO": "4", "PEAKOPS_MAX_ATTEMPTS": "3"}


def test_bad_file_corpus(tmp_path: Path) -> None:
    corpus = build(tmp_path / "corpus")
    home = tmp_path / "home"
    proc = run_cli(home, "submit", "--json", *(str(p) for p, _ in corpus.values()),
                   timeout=300, **ENV)
    assert "Traceback" not in proc.stderr, proc.stderr
    results = {Path(r["path"]).name: r for r in json.loads(proc.stdout)}
    assert set(results) == set(corpus)
    ids = {name: r["upload_id"] for name, r in results.items() if r.get("upload_id")}
    assert len(set(ids.values())) == len(ids), "corpus files must not be duplicates"

    # Faults after submission: the operator's copy and the stored copy change under us.
    corpus["source-deleted-after-submit.mp4"][0].unlink()
    stored = {r["id"]: r["storage_key"] for r in db_dicts(home, "SELECT * FROM uploads")}
    (home / "objects" / stored[ids["stored-copy-deleted.mp4"]]).unlink()
    (home / "objects" / stored[ids["stored-copy-replaced.mp4"]]).write_bytes(
        random.Random(3).randbytes(20_000))

    worker = burst(home, timeout=300, **ENV)
    assert "Traceback" not in worker.stderr, worker.stderr[-3000:]
    check_invariants(home, max_frames=4)
    rows = {r["id"]: r for r in db_dicts(home, "SELECT * FROM uploads")}

    table = ["| file | final status | message |", "|---|---|---|"]
    wrong = []
    for name, (_, expect) in corpus.items():
        result = results[name]
        row = rows.get(result.get("upload_id"))
        if row is None:  # refused before a record existed
            status, category, message = "refused at submit", result["category"], result["error"]
        else:
            status, category = row["status"], row["error_category"]
            message = row["error_message"] or f"{row['progress_done'] or 0} frames" \
                if row["status"] != "DONE" else f"{_frames(home, row['id'])} frames"
        table.append(f"| {name} | {status}{f' ({category})' if category else ''} | "
                     f"{message} |")
        if status == "DONE":
            if expect == "input":
                wrong.append((name, status, message))
        elif expect == "DONE" or category != "input":
            wrong.append((name, status, category, message))
        else:
            assert_readable(message)
            if name != "stored-copy-deleted.mp4":  # that one names the missing object
                assert message.startswith(f"{name}: "), message
    text = "\n".join(table)
    print("\n" + text)
    (tmp_path / "bad-files-table.md").write_text(text + "\n")
    (tmp_path.parent / "bad-files-table.md").write_text(text + "\n")
    assert wrong == [], f"unexpected outcomes: {wrong}\n{text}"


def _frames(home: Path, upload_id: int) -> int:
    return len(db_dicts(home, "SELECT id FROM frames WHERE upload_id = ?", [upload_id]))
