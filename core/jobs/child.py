"""The job child: runs the pipeline for one upload at a time, on the supervisor's word.

Protocol: JSON lines. The supervisor first writes ``{"settings": {...}}`` (its resolved
Settings, so the child never reads the environment for them), then one
``{"upload_id", "owner"}`` per job on stdin; the child writes ``{"event": "progress", ...}`` lines and one ``{"event":
"result", ...}`` per job on stdout (nothing else may write to stdout). The child dies
with its supervisor (PR_SET_PDEATHSIG), so a job never runs twice.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys
from typing import Any

from core import redact
from core.app import open_app
from core.config import settings_from_dict
from core.errors import InternalError, PeakOpsError
from core.jobs import pipeline
from core.jobs.cgroup import address_space_limit
from core.procenv import die_with_parent

logger = logging.getLogger(__name__)


def limit_address_space(hard_kib: int) -> int:
    """The backstop where no memory cgroup holds the job: load libav now, then cap the
    address space (:func:`core.jobs.cgroup.address_space_limit`). Returns the cap in bytes."""
    import core.media.decode  # noqa: F401  (libav and the picture code: mapped once, here)
    import core.media.picture  # noqa: F401
    with open("/proc/self/statm") as statm:
        vms_kib = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE") // 1024
    limit = address_space_limit(hard_kib, vms_kib)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


def main() -> int:
    die_with_parent(int(os.environ.get("PEAKOPS_SUPERVISOR_PID", os.getppid())))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; it kills us
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    start = json.loads(sys.stdin.readline() or "{}")
    settings = settings_from_dict(start["settings"])
    logging.basicConfig(level=getattr(logging, settings.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact.protect(settings.s3_endpoint_url, settings.rekognition_endpoint_url)
    app = open_app(settings)
    if start.get("address_space_kib"):
        limit = limit_address_space(int(start["address_space_kib"]))
        logger.info("no memory cgroup: address space capped at %s KiB", limit // 1024)
    send({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        job = json.loads(line)
        upload_id = job["upload_id"]

        def progress(stage: str, done: int, total: int) -> None:
            send({"event": "progress", "stage": stage, "done": done, "total": total})

        try:
            result = pipeline.run(app, upload_id, job["owner"], on_progress=progress)
            send({"event": "result", "ok": True, "frames": result.frames_total,
                  "extracted": result.frames_extracted})
        except PeakOpsError as exc:
            send({"event": "result", "ok": False, "category": exc.category,
                  "message": exc.message, "transient": exc.transient,
                  "costs_attempt": exc.costs_attempt, "error": type(exc).__name__})
        except MemoryError as exc:  # the address-space backstop: a memory outcome
            send({"event": "result", "ok": False, "category": "memory", "out_of_memory": True,
                  "message": f"{type(exc).__name__}: {exc}"[:300], "transient": True})
        except Exception as exc:  # a bug: report it as internal, keep serving
            logger.exception("upload %s: unexpected error in job child", upload_id)
            error = InternalError(f"unexpected error: {exc!r}", transient=True)
            send({"event": "result", "ok": False, "category": error.category,
                  "message": error.message, "transient": True, "error": "InternalError"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
