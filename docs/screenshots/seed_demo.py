"""Fill a PeakOps home with uploads in every status, for the console screenshots.

Usage: python docs/screenshots/seed_demo.py HOME

Real work where it is cheap: clips made with the bundled ffmpeg, submitted through
core.intake, processed by the pipeline; the memory failure and its child restarts come
from a real ``peakops worker --burst`` run with a 30 MB hard limit. A PROCESSING row is
claimed on behalf of a worker that is not running (its lease lapses after a minute).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.store import lifecycle, queries
from core.jobs import pipeline
from core.app import open_app, process_owner
from core.config import load_settings
from core.errors import AnalysisError
from core.intake import submit_file
from core.media.samples import make_clip


def main(home: Path) -> None:
    env = {"PEAKOPS_HOME": str(home)}
    settings = load_settings(env, config_file=home / "no-config.toml",
                             overrides={"max_frames_per_video": 8})
    app = open_app(settings)
    clips = home / "clips"
    clips.mkdir(parents=True, exist_ok=True)

    def clip(name: str, seconds: float, pattern: str = "testsrc2", width: int = 640) -> Path:
        return make_clip(clips / name, seconds=seconds, width=width, height=width * 9 // 32 * 2,
                         pattern=pattern, keyint=25)

    # 1. A memory failure from a real worker with a hard limit far too small.
    big = submit_file(app, clip("pier-survey-night.mp4", 6, "testsrc"))
    worker_env = {k: v for k, v in os.environ.items() if not k.startswith("PEAKOPS_")}
    worker_env.update(PEAKOPS_HOME=str(home), PEAKOPS_CONFIG=os.devnull,
                      PEAKOPS_HARD_MEMORY_LIMIT="30000", PEAKOPS_MAX_MEMORY_PER_CHILD="30000",
                      PEAKOPS_MAX_FRAMES_PER_VIDEO="8")
    subprocess.run([sys.executable, "-m", "cli", "worker", "--burst"], env=worker_env,
                   check=False, timeout=300, capture_output=True)
    print("memory-limited upload:", queries.get_upload(app.db, big.upload_id)["status"])

    owner = process_owner("seed")
    # 2. DONE, with frames and labels.
    for name, seconds, pattern in (("bridge-deck-span-3.mp4", 8, "testsrc2"),
                                   ("culvert-north-inlet.mp4", 6, "smptebars"),
                                   ("tower-climb-cam2.mp4", 5, "rgbtestsrc")):
        r = submit_file(app, clip(name, seconds, pattern))
        pipeline.process_now(app, r.upload_id, owner)
    # 3. FAILED input: the stored copy vanished before the worker got to it.
    r = submit_file(app, clip("retaining-wall-east.mp4", 4, "testsrc", 480))
    app.store.delete(queries.get_upload(app.db, r.upload_id)["storage_key"])
    pipeline.process_now(app, r.upload_id, owner)
    # 4. FAILED analysis (as the Rekognition analyzer reports an outage).
    r = submit_file(app, clip("substation-yard.mp4", 3, "smptebars", 480))
    lifecycle.claim(app.db, r.upload_id, owner, lease_seconds=60)
    lifecycle.fail(app.db, r.upload_id, AnalysisError(
        "Rekognition detect_labels: ThrottlingException after 5 attempts"), owner=owner,
        status=lifecycle.FAILED)
    # 5. CANCELLED, DEFERRED, QUEUED.
    r = submit_file(app, clip("test-recording-do-not-use.mp4", 2, "testsrc", 320))
    lifecycle.cancel(app.db, r.upload_id)
    submit_file(app, clip("dam-spillway-full-pass.mp4", 7, "testsrc2", 800),
                mode=lifecycle.MODE_OFFPEAK)
    submit_file(app, clip("rail-bridge-pier-7.mp4", 3, "rgbtestsrc", 400))
    # 6. PROCESSING (claimed for a worker that does not exist) and UPLOADING.
    r = submit_file(app, clip("tunnel-lining-km12.mp4", 5, "smptebars", 560))
    lifecycle.claim(app.db, r.upload_id, "worker@elsewhere:4242", lease_seconds=3600)
    lifecycle.renew_lease(app.db, r.upload_id, "worker@elsewhere:4242", lease_seconds=3600,
                     stage="extracting", done=3, total=8)
    lifecycle.create_upload(app.db, original_name="drone-sweep-roof.mov", sha256="0" * 64,
                       size=48_000_000, mode=lifecycle.MODE_NOW, owner="submit@elsewhere:4343",
                       lease_seconds=3600)
    print(queries.counts_by_status(app.db))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
