"""The headless API (``core.process``, ``core.open``) and the README's examples, run as
written."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import core
from core.errors import InputError, StateError
from core.media import samples
from tests.helpers import REPO
from tests.s3server import aws_env, moto_endpoint  # noqa: F401


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def readme_snippets() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_readme_examples_run_as_written(tmp_path, settings_env):
    snippets = readme_snippets()
    assert len(snippets) == 3
    assert len([line for line in snippets[0].splitlines() if line.strip()]) == 5
    samples.make_clip(tmp_path / "clip.mp4", seconds=3, width=160, height=120)
    samples.make_clip(tmp_path / "more.mp4", seconds=2, width=176, height=144)
    script = "import core\n" + "\n".join(snippets)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "DONE None"
    frame_lines = lines[1:21]  # max_frames_per_video's default
    assert all(line.split()[1] == "s" for line in frame_lines)
    assert lines[21:-1] == ["True 20", "5"]  # a duplicate, not redone; reprocessed with 5
    first = frame_lines[0].split()
    assert first[1] == "s" and (tmp_path / "peakops-home" / "objects").as_posix() in first[2]
    assert "[(1, 'DONE'), (2, 'DEFERRED')]" == lines[-1]
    with core.open(home=tmp_path / "peakops-home") as peakops:
        assert peakops.get(2).status == "CANCELLED"


def test_process_returns_frames_with_labels_and_images(tmp_path, home, settings_env):
    clip = samples.make_clip(tmp_path / "c.mp4", seconds=4, width=320, height=240)
    result = core.process(clip, home=home, max_frames_per_video=4)
    assert (result.status, result.error, result.ok) == ("DONE", None, True)
    assert [f.index for f in result.frames] == [0, 1, 2, 3]
    times = [f.timestamp for f in result.frames]
    assert times == sorted(times) and 0 <= times[0] < times[-1] <= 4
    for frame in result.frames:
        assert frame.labels and all(0 <= lb.confidence <= 100 for lb in frame.labels)
        with frame.open() as image:
            assert image.read(3) == b"\xff\xd8\xff"  # a JPEG
        assert frame.path.read_bytes()[:3] == b"\xff\xd8\xff"
    again = core.process(clip, home=home)
    assert (again.upload_id, again.duplicate_of, again.status) == (result.upload_id,
                                                                    result.upload_id, "DONE")


def test_process_of_a_bad_file_is_a_failed_result_or_one_error(tmp_path, home, settings_env):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    result = core.process(text, home=home)
    assert (result.status, result.category) == ("FAILED", "input")
    assert result.error and "\n" not in result.error and result.frames == ()
    with pytest.raises(InputError, match="no such file"):
        core.process(tmp_path / "missing.mp4", home=home)


def test_open_submit_get_list_retry_cancel(tmp_path, home, settings_env):
    clip = samples.make_clip(tmp_path / "c.mp4", seconds=2, width=160, height=120)
    sent: list[list[int]] = []
    with core.open(home, on_queued=sent.append, max_frames_per_video=2) as peakops:
        upload_id = peakops.submit(clip)
        assert sent == [[upload_id]]
        assert peakops.get(upload_id).status == "QUEUED"
        assert peakops.cancel(upload_id).status == "CANCELLED"
        with pytest.raises(StateError):
            peakops.cancel(upload_id)
        assert peakops.retry(upload_id).status == "QUEUED"
        assert sent == [[upload_id], [upload_id]]
        done = peakops.process(upload_id)
        assert done.status == "DONE" and len(done.frames) == 2
        assert [r.upload_id for r in peakops.list("done")] == [upload_id]
        assert peakops.list(["queued", "failed"]) == []


@pytest.fixture
def s3_settings_env(tmp_path, monkeypatch, moto_endpoint):  # noqa: F811
    import uuid

    import boto3
    for name, value in aws_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    bucket = f"peakops-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return {"storage": "s3", "s3_bucket": bucket, "s3_endpoint_url": moto_endpoint}


def test_frames_open_from_s3_through_the_store(tmp_path, home, settings_env, s3_settings_env):
    clip = samples.make_clip(tmp_path / "c.mp4", seconds=2, width=160, height=120)
    result = core.process(clip, home=home, max_frames_per_video=2, **s3_settings_env)
    assert result.status == "DONE"
    for frame in result.frames:
        assert frame.path is None
        with frame.open() as image:
            assert image.read(3) == b"\xff\xd8\xff"


def test_process_again_with_new_settings_says_duplicate_and_reprocess_applies_them(
        tmp_path, home, settings_env):
    clip = samples.make_clip(tmp_path / "c.mp4", seconds=6, width=160, height=120)
    first = core.process(clip, home=home, max_frames_per_video=2)
    assert (first.status, len(first.frames), first.duplicate_of) == ("DONE", 2, None)
    again = core.process(clip, home=home, max_frames_per_video=5)
    # As the README says: not processed again, and the result says it is a duplicate.
    assert (again.upload_id, again.duplicate_of, len(again.frames)) == (first.upload_id,
                                                                        first.upload_id, 2)
    with core.open(home, max_frames_per_video=5) as peakops:
        peakops.reprocess(again.duplicate_of)
        redone = peakops.process(again.duplicate_of)
    assert (redone.status, len(redone.frames)) == ("DONE", 5)


def test_the_exceptions_the_readme_lists_are_the_ones_raised(tmp_path, home, settings_env):
    from core import errors
    from core.errors import DatabaseUnreachableError
    from core.home import HomeError
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| exception | when |"):]
    table = table[:table.index("\n\n")]
    named = re.findall(r"^\| `(\w+)`(?: \(`(\w+)`\))?", table, re.MULTILINE)
    known = {**{n: getattr(errors, n) for n in dir(errors) if n.endswith("Error")},
             "HomeError": HomeError, "DatabaseUnreachableError": DatabaseUnreachableError}
    for name, alias in named:
        for each in filter(None, (name, alias)):
            assert issubclass(known[each], errors.PeakOpsError), each
    listed = {n for pair in named for n in pair if n}
    with pytest.raises(errors.ConfigError) as config:
        core.process(tmp_path / "x.mp4", home=home, max_frames_per_video=0)
    with pytest.raises(errors.InputError) as missing:
        core.process(tmp_path / "missing.mp4", home=home)
    with core.open(home) as peakops, pytest.raises(errors.NotFoundError) as unknown:
        peakops.get(999)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(errors.StorageError) as unusable:
        core.process(tmp_path / "x.mp4", home=blocker / "home")
    raised = {type(e.value).__name__ for e in (config, missing, unknown, unusable)}
    assert raised <= listed, raised - listed
