"""Who judges a lease owner: a process check only for owners on this very machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from core.app import process_owner
from core.liveness import host_id, machine_id, owner_alive


def test_owner_names_carry_hostname_and_machine_id():
    assert host_id().startswith(socket.gethostname())
    assert machine_id() and host_id() == f"{socket.gethostname()}.{machine_id()}"
    assert process_owner("submit") == f"submit@{host_id()}:{os.getpid()}"


def test_an_owner_here_is_judged_by_its_process():
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    assert owner_alive(f"worker@{host_id()}:{os.getpid()}")
    assert not owner_alive(f"worker@{host_id()}:{int(gone.stdout)}")


def test_an_owner_elsewhere_is_left_to_its_lease():
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(gone.stdout)
    # Another machine, and a clone of this one (same hostname, other machine id).
    assert owner_alive(f"worker@rig-7.0123abcd:{pid}")
    assert owner_alive(f"worker@{socket.gethostname()}.ffffffff:{pid}")
    # An owner in the old form (hostname only) or not a name at all: not ours to judge.
    assert owner_alive(f"worker@{socket.gethostname()}:{pid}")
    assert owner_alive("submit") and owner_alive("worker@host:notapid")
