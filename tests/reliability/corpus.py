"""The bad-file corpus, generated with the bundled ffmpeg: name -> (path, expectation).

Expectation ``"DONE"`` means a valid video that must be processed; ``"input"`` means it
must be refused or FAILED with category input and a readable message; ``"either"`` is
for a file that is damaged where no sampled frame lies (the last 10 % cut off).
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from core.media import ffmpeg_exe, samples


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                   stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=300)


LAVFI = ["-f", "lavfi", "-i"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def build(folder: Path) -> dict[str, tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    corpus: dict[str, tuple[Path, str]] = {}

    def add(name: str, expect: str) -> Path:
        path = folder / name
        corpus[name] = (path, expect)
        return path

    add("empty.mp4", "input").write_bytes(b"")
    add("random-bytes.mp4", "input").write_bytes(rng.randbytes(64 * 1024))
    # faststart: the index is at the front, so a cut file still opens and the cut shows later
    whole = folder / "whole-faststart.mp4"
    ffmpeg(*LAVFI, "testsrc2=size=320x240:rate=25:duration=4", *X264, "-g", "25",
           "-movflags", "+faststart", str(whole))
    data = whole.read_bytes()
    for pct in (10, 50, 90):
        add(f"truncated-{pct}pct.mp4", "either" if pct == 90 else "input").write_bytes(data[: len(data) * pct // 100])
    plain = samples.make_clip(folder / "plain.mp4", seconds=2, width=160, height=120)
    raw = plain.read_bytes()  # moov written last: cut just before it
    add("moov-missing.mp4", "input").write_bytes(raw[: raw.rindex(b"moov") - 4])
    plain.unlink()
    samples.make_audio_only(add("audio-only.mp4", "input"))
    samples.make_still_image(add("photo-renamed.mp4", "input"))
    add("notes-renamed.mp4", "input").write_text("inspection notes, not a video\n" * 20)
    ffmpeg(*LAVFI, "testsrc2=size=160x120:rate=10:duration=2", "-f", "gif",
           str(add("animated.gif", "DONE")))
    ffmpeg(*LAVFI, "color=c=gray:size=8000x8000:rate=1:duration=1", *X264,
           str(add("huge-8000x8000-single-colour.mp4", "DONE")))
    ffmpeg(*LAVFI, "testsrc2=size=160x120:rate=25", "-frames:v", "1", *X264,
           str(add("single-frame.mp4", "DONE")))
    ffmpeg(*LAVFI, "testsrc2=size=160x120:rate=25:duration=3", "-vf",
           "setpts='(N+N*N/150)/25/TB'", "-fps_mode", "vfr", *X264,
           str(add("variable-frame-rate.mp4", "DONE")))
    samples.make_clip(add("raw-stream.h264", "DONE"), seconds=3, width=160, height=120)
    with add("piped-no-duration.mkv", "DONE").open("wb") as out:
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
                        *LAVFI, "testsrc2=size=160x120:rate=25:duration=3", *X264,
                        "-f", "matroska", "pipe:1"],
                       stdin=subprocess.DEVNULL, stdout=out, check=True, timeout=120)
    samples.make_clip(add("rotated-90.mp4", "DONE"), seconds=2, width=160, height=120,
                      rotate=90)
    ffmpeg(*LAVFI, "testsrc2=size=320x240:rate=25:duration=2", *X264,
           "-flags", "+ilme+ildct", str(add("interlaced.mp4", "DONE")))
    samples.make_clip(add("hevc.mp4", "DONE"), seconds=2, width=160, height=120, codec="hevc")
    for name, pattern in (("source-deleted-after-submit.mp4", "testsrc"),
                          ("stored-copy-deleted.mp4", "smptebars"),
                          ("stored-copy-replaced.mp4", "rgbtestsrc")):
        samples.make_clip(add(name, "DONE" if name.startswith("source") else "input"),
                          seconds=2, width=160, height=120, pattern=pattern)
    whole.unlink()
    return corpus
