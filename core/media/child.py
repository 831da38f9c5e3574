"""The probe at submit, in a short-lived child process under a memory cap.

A header can make libav allocate hundreds of MB (a 16000x9000 WebP did) or crash a
decoder; in a child with ``RLIMIT_AS`` that is a clear input error, not the operator's
console. The child is the same program (``python -m core.media.child`` or the frozen
app's hidden ``_probe-child`` command); it prints the facts or the refusal as one JSON
line and exits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.errors import InputError, InternalError
from core.media.facts import ProbeResult
from core.procenv import clean_env, die_with_parent_preexec, exit_cause

PROBE_MEMORY_MB = 512
"""Address-space cap of the probe child. Python, libav and one decoded frame of an
8000x8000 H.264 video fit in 300 MB (4K: under 200 MB)."""
PROBE_TIMEOUT_S = 120.0
CHILD_COMMAND = "_probe-child"
_OUT_OF_MEMORY = ("Cannot allocate memory", "failed to map segment")


def child_argv(path: Path, memory_mb: int) -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, CHILD_COMMAND, str(memory_mb), os.fspath(path)]
    return [sys.executable, "-m", "core.media.child", str(memory_mb), os.fspath(path)]


class ProbeChild:
    """A probe child started now and answered later: it reads the header while the caller
    does other work (intake hashes the file meanwhile)."""

    def __init__(self, path: Path, *, name: str | None = None,
                 memory_mb: int = PROBE_MEMORY_MB, timeout: float = PROBE_TIMEOUT_S) -> None:
        self.name = name or Path(path).name
        self.memory_mb, self.timeout = memory_mb, timeout
        self.started = time.monotonic()
        env = clean_env() if not getattr(sys, "frozen", False) else dict(os.environ)
        self.proc = subprocess.Popen(child_argv(Path(path).absolute(), memory_mb),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env,
                                     preexec_fn=die_with_parent_preexec())

    def cancel(self) -> None:
        """Stop the child if it still runs (the answer is no longer wanted)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()

    def result(self, *, upload_id: int | None = None) -> ProbeResult:
        """The facts; ``InputError`` for a refused or unreadable file."""
        name, memory_mb = self.name, self.memory_mb
        left = max(0.0, self.timeout - (time.monotonic() - self.started))
        try:
            stdout, stderr = self.proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise InputError(f"{name}: reading the video header took longer than "
                             f"{self.timeout:g} s", upload_id=upload_id,
                             timeout=self.timeout) from None
        returncode = self.proc.returncode
        lines = stdout.decode("utf-8", "replace").strip().splitlines()
        answer = None
        if lines:
            try:
                answer = json.loads(lines[-1])
            except ValueError:
                answer = None
        if isinstance(answer, dict) and "facts" in answer:
            return ProbeResult.from_dict(answer["facts"])
        if isinstance(answer, dict) and "refused" in answer:
            raise InputError(f"{name}: {answer['refused']}", upload_id=upload_id)
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        evidence = {"returncode": returncode, "stderr_tail": "\n".join(tail)}
        if isinstance(answer, dict) and "unexpected" in answer:  # a bug of ours, named
            raise InternalError(f"{name}: reading the video header stopped on an unexpected "
                                f"error ({answer['unexpected']})", upload_id=upload_id,
                                **evidence)
        if returncode == -signal.SIGKILL:  # the OOM killer or an operator: not the video
            raise InternalError(f"{name}: reading the video header {exit_cause(returncode)}",
                                upload_id=upload_id, transient=True, **evidence)
        if returncode < 0:  # a decoder fault on this file's data
            raise InputError(f"{name}: reading the video header {exit_cause(returncode)}; "
                             "the file is corrupt or hits a libav bug", upload_id=upload_id,
                             **evidence)
        # Without an answer the child ran out of memory before it could write one (loading
        # libav under the cap, or printing the refusal).
        raise InputError(f"{name}: reading the video header needed more than {memory_mb} MB",
                         upload_id=upload_id, **evidence)


def probe_in_child(path: Path, *, upload_id: int | None = None, name: str | None = None,
                   memory_mb: int = PROBE_MEMORY_MB,
                   timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Probe ``path`` in a child process and wait for the answer.

    ``name`` is how messages call the file (default: its base name).
    """
    return ProbeChild(path, name=name, memory_mb=memory_mb, timeout=timeout).result(
        upload_id=upload_id)


def main(argv: list[str] | None = None) -> int:
    """Child side: cap memory first, then load libav and probe."""
    args = sys.argv[1:] if argv is None else argv
    memory_mb, path = int(args[0]), Path(args[1])
    try:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # no RLIMIT_AS here (macOS, Windows)
        pass
    try:
        from core.media.probing import probe

        facts = probe(path, memory_mb=memory_mb)
    except InputError as exc:
        message = str(exc).split(": ", 1)[-1] if str(exc).startswith(path.name) else str(exc)
        print(json.dumps({"refused": message}), flush=True)
        return 0
    except MemoryError:  # outside the first picture (probe names that one): say the cap
        print(json.dumps({"refused": f"reading the video header needed more than "
                                     f"{memory_mb} MB"}), flush=True)
        return 0
    except Exception as exc:  # a bug of ours: its name and text, not a traceback
        if any(sign in str(exc) for sign in _OUT_OF_MEMORY):  # libav did not even load
            print(json.dumps({"refused": f"reading the video header needed more than "
                                         f"{memory_mb} MB"}), flush=True)
            return 0
        print(json.dumps({"unexpected": f"{type(exc).__name__}: {exc}"[:300]}), flush=True)
        return 1
    print(json.dumps({"facts": facts.as_dict()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
