"""Progress bars on a terminal only; the worker's start line.

The terminal case runs the real command with stdout and stderr on a pseudo-terminal
(``pty.openpty``); the other cases with pipes, as a script or CI would.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.helpers import cli_env, run_cli

BAR = "%|"  # tqdm's "  0%|          | 0.00/48.0k"


def run_on_terminal(home, *args: str, timeout: float = 120) -> tuple[int, str]:
    """``peakops ARGS`` with stdout and stderr on a pty; its exit code and what it drew."""
    master, slave = pty.openpty()
    # A terminal has a size (a bare pty is 0x0, where tqdm draws nothing): 30 rows, 100 columns.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=home.parent,
                            env=cli_env(home), stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "the command did not finish"
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def test_submit_draws_a_byte_bar_on_a_terminal(home, clip_h264):
    code, drawn = run_on_terminal(home, "submit", str(clip_h264))
    assert code == 0, drawn
    assert re.search(r"clip\.mp4:\s+\d+%\|.*\|.*k \[.*B/s\]", drawn), drawn  # bytes
    assert "QUEUED\tclip.mp4" in drawn


def test_process_draws_stage_bars_on_a_terminal(home, clip_10s):
    code, drawn = run_on_terminal(home, "process", str(clip_10s))
    assert code == 0, drawn
    assert "upload 1 extracting" in drawn and "upload 1 analysing" in drawn
    assert "20/20" in drawn and BAR in drawn
    assert "upload 1: DONE" in drawn


def test_no_bars_with_json_on_a_terminal(home, clip_h264):
    code, drawn = run_on_terminal(home, "process", str(clip_h264), "--json")
    assert code == 0, drawn
    assert BAR not in drawn and drawn.lstrip().startswith("{")


def test_no_bars_into_pipes(home, clip_h264, clip_noaudio):
    submitted = run_cli(home, "submit", str(clip_h264), check=True)
    assert BAR not in submitted.stderr + submitted.stdout and submitted.stderr == ""
    processed = run_cli(home, "process", str(clip_noaudio), check=True)
    assert BAR not in processed.stderr + processed.stdout and processed.stderr == ""
    assert "upload 2: DONE" in processed.stdout


def test_worker_says_once_that_it_waits_and_where_its_queue_is(home):
    proc = subprocess.Popen([sys.executable, "-m", "cli", "worker"], cwd=home.parent,
                            env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stderr.readline()  # blocks until the worker writes its first line
        while line and "waiting for uploads" not in line:
            line = proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    assert f"waiting for uploads on the queue ({home / 'queue.db'}); SIGTERM or Ctrl-C " \
           "stops it" in line
    assert "waiting for uploads" not in rest  # said once, not on every idle poll
    assert proc.returncode == 0
