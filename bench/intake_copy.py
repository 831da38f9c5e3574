"""``python -m bench.intake_copy [--video 1080p-2min] [--runs 5]``: the submit's copy.

What ``peakops process`` adds before the job: one copy of the video into the store's
staging folder, its SHA-256 and an fsync. Compares, alternating, medians of ``runs``:

- ``serial``: read, hash, write, then fsync (the intake before issue #22 item 6);
- ``staged``: :func:`core.storage.staging.copy_hashing` (a reflink where the filesystem
  can, else the same one pass), then the fsync; ``staged, fsync hidden`` is what the
  submit now waits for before probing: the fsync runs on a thread beside the probe child;
- ``hash on a thread``: the copy with SHA-256 on a second thread (tried, not kept).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import videos


def serial(source: Path, dest: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as src, dest.open("wb") as out:
        while chunk := src.read(1024 * 1024):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def staged(source: Path, dest: Path, *, fsync: bool) -> str:
    from core.storage import staging

    with source.open("rb") as src, dest.open("w+b") as out:
        digest, _, _ = staging.copy_hashing(src, out, max_bytes=1 << 40)
    sync = staging.Sync(dest)
    if fsync:
        sync.wait()
    return digest


def hash_on_a_thread(source: Path, dest: Path) -> str:
    import queue
    import threading

    digest = hashlib.sha256()
    chunks: queue.Queue = queue.Queue(8)

    def hasher() -> None:
        while (chunk := chunks.get()) is not None:
            digest.update(chunk)

    thread = threading.Thread(target=hasher)
    thread.start()
    with source.open("rb") as src, dest.open("wb") as out:
        while chunk := src.read(1024 * 1024):
            chunks.put(chunk)
            out.write(chunk)
        chunks.put(None)
        thread.join()
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.intake_copy")
    parser.add_argument("--video", default="1080p-2min",
                        choices=sorted({v.name for v in videos.FULL + videos.QUICK}))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    from core.storage import staging

    video = next(v for v in videos.FULL + videos.QUICK if v.name == args.video)
    path = videos.ensure(video)
    ways = {"serial": lambda d: serial(path, d),
            "staged": lambda d: staged(path, d, fsync=True),
            "staged, fsync hidden": lambda d: staged(path, d, fsync=False),
            "hash on a thread": lambda d: hash_on_a_thread(path, d)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    digests = set()
    with tempfile.TemporaryDirectory(prefix="peakops-bench-copy-", dir=videos.cache_dir()) as d:
        with path.open("rb") as src, open(Path(d) / "probe", "w+b") as out:
            how = "reflink" if staging.clone(src, out) else "no reflink: one-pass copy"
        for run in range(args.runs):
            order = list(ways) if run % 2 == 0 else list(reversed(ways))
            for name in order:
                dest = Path(d) / f"{name}-{run}"
                started = time.perf_counter()
                digests.add(ways[name](dest))
                times[name].append(time.perf_counter() - started)
                dest.unlink()
    assert len(digests) == 1, "every way must give the same SHA-256"
    size = path.stat().st_size
    print(f"submit's copy of {video.name} ({size / 1e6:.0f} MB) in {videos.cache_dir()}, "
          f"median of {args.runs}; this filesystem: {how}")
    for name, values in times.items():
        print(f"  {name:<22}{statistics.median(values):>7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
