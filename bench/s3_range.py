"""``python -m bench.s3_range [--video 1080p-2min] [--frames 20]``: frames from S3 by range.

Puts one benchmark video into a moto S3 server on loopback, then takes the same frames
two ways, alternating, three runs each: read by range (``S3Store.open_range``, what jobs
do) and download-then-extract (``S3Store.get_file`` to a scratch file, the old path).
Prints bytes fetched and seconds for each (medians). Loopback has no real network cost,
so the time saved on a real link is larger than shown here; the bytes are what matter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import videos

DUMMY = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
         "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def _extract(source, facts, count: int, folder: Path) -> None:
    from core import media
    from core.media.decode import PyAVExtractor

    times = media.plan_times(facts, count)
    with PyAVExtractor().open(source, facts, media.ExtractOptions(), name="bench") as frames:
        for i, when in enumerate(times):
            frames.extract(when, folder / f"{i:04d}.jpg")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_range")
    parser.add_argument("--video", default="1080p-2min",
                        choices=sorted({v.name for v in videos.FULL + videos.QUICK}))
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.update(DUMMY)

    import boto3
    from moto.server import ThreadedMotoServer

    from core.media.probing import probe
    from core.storage.s3 import S3Store, client_config

    video = next(v for v in videos.FULL + videos.QUICK if v.name == args.video)
    path = videos.ensure(video)
    size = path.stat().st_size
    facts = probe(path)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.session.Session().client(
            "s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
            config=client_config(path_style=True))
        client.create_bucket(Bucket="peakops-bench")
        store = S3Store(client, "peakops-bench", "peakops/")
        store.put_file("videos/be/bench", path)
        figures: dict[str, list[tuple[int, float]]] = {"range": [], "download": []}
        requests: list[int] = []
        for run in range(args.runs):
            order = ("range", "download") if run % 2 == 0 else ("download", "range")
            for way in order:
                with tempfile.TemporaryDirectory(prefix="peakops-bench-s3-") as folder:
                    started = time.perf_counter()
                    if way == "range":
                        with store.open_range("videos/be/bench") as reader:
                            _extract(reader, facts, args.frames, Path(folder))
                            fetched = reader.fetched
                            requests.append(reader.requests)
                    else:
                        scratch = Path(folder) / "video"
                        fetched = store.get_file("videos/be/bench", scratch)
                        _extract(scratch, facts, args.frames, Path(folder))
                    figures[way].append((fetched, time.perf_counter() - started))
    finally:
        server.stop()

    print(f"{args.frames} frames of {video.name} ({video.describe()}; {size / 1e6:.1f} MB) "
          f"from a moto S3 server on loopback, median of {args.runs}:")
    print(f"{'path':<26}{'bytes fetched':>16}{'share':>8}{'seconds':>9}")
    for way, label in (("range", "read by range (jobs)"),
                       ("download", "download, then extract")):
        fetched = statistics.median(f for f, _ in figures[way])
        seconds = statistics.median(s for _, s in figures[way])
        print(f"{label:<26}{fetched / 1e6:>13.1f} MB{fetched / size:>8.1%}{seconds:>9.2f}")
    print(f"read by range: {statistics.median(requests):.0f} ranged GETs; moto answers each by "
          "reading the whole object, so on loopback time follows the request count")
    return 0


if __name__ == "__main__":
    sys.exit(main())
