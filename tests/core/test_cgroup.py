"""The kernel memory cage, on a small fake of the cgroup v2 file tree (the files the
kernel exposes, as plain files): what is written where, and when it declines. The
v2 kernel path needs a delegated cgroup v2 memory controller, which this test machine
does not have; its cgroup v1 memory controller is tested for real below (in a group of
the test's own), and the sampling fallback in tests/reliability/test_memory_limits.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from core.jobs.cgroup import CGROUP_ROOT, SUPERVISOR_LEAF, available, make_cage


def fake_tree(root, group="user.slice/app.scope", controllers="cpu io memory pids"):
    base = root / group
    base.mkdir(parents=True)
    for name, text in (("cgroup.controllers", controllers), ("cgroup.subtree_control", ""),
                       ("cgroup.procs", "")):
        (base / name).write_text(text)
    return base


def test_cage_moves_the_supervisor_to_a_leaf_and_caps_the_job_group(tmp_path):
    base = fake_tree(tmp_path)
    job = base / "peakops-job-4242"
    job.mkdir()  # the kernel creates these files with the folder
    for name in ("memory.max", "memory.swap.max", "memory.oom.group", "cgroup.procs"):
        (job / name).write_text("")
    (job / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (job / "memory.peak").write_text(str(60 * 1024 * 1024))
    cage = make_cage(50_000, root=tmp_path, proc_cgroup="0::/user.slice/app.scope\n", pid=4242)
    assert cage is not None and cage.group == job
    assert (base / SUPERVISOR_LEAF / "cgroup.procs").read_text() == "4242"
    assert (base / "cgroup.subtree_control").read_text() == "+memory"
    assert (job / "memory.max").read_text() == str(50_000 * 1024)
    assert (job / "memory.swap.max").read_text() == "0"
    assert (job / "memory.oom.group").read_text() == "1"
    assert cage.oom_kills() == 1 and cage.peak_kib() == 60 * 1024
    cage.add(777)
    assert (job / "cgroup.procs").read_text() == "777"
    enter = cage.preexec()
    pid = os.fork()
    if pid == 0:  # what Popen's child does before exec
        enter()
        os._exit(0)
    os.waitpid(pid, 0)
    assert (job / "cgroup.procs").read_text() == "0"


def test_no_cage_without_a_delegated_memory_controller(tmp_path):
    fake_tree(tmp_path / "a", controllers="cpu pids")
    assert make_cage(50_000, root=tmp_path / "a", proc_cgroup="0::/user.slice/app.scope") is None
    assert make_cage(50_000, root=tmp_path / "b", proc_cgroup="0::/x") is None  # no v2 tree
    fake_tree(tmp_path / "c", group="")
    assert make_cage(50_000, root=tmp_path / "c", proc_cgroup="0::/") is None  # root group
    assert make_cage(50_000, root=tmp_path, proc_cgroup="4:memory:/v1-only") is None


def fake_v1(root, group="box"):
    mount = root / "memory"
    (mount / group).mkdir(parents=True)
    (mount / "memory.limit_in_bytes").write_text("9223372036854771712")
    return mount / group


def test_v1_cage_under_the_supervisors_memory_group(tmp_path):
    base = fake_v1(tmp_path)
    job = base / "peakops-job-4242"
    job.mkdir()
    for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "cgroup.procs"):
        (job / name).write_text("")
    (job / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (job / "memory.max_usage_in_bytes").write_text(str(70 * 1024 * 1024))
    (base / f"peakops-job-{2 ** 22 + 7}").mkdir()  # a dead supervisor's empty cage
    cage = make_cage(50_000, root=tmp_path, proc_cgroup="5:devices:/\n4:memory:/box\n0::/\n",
                     pid=4242)
    assert cage is not None and cage.group == job and cage.version == 1
    assert (job / "memory.limit_in_bytes").read_text() == str(50_000 * 1024)
    assert (job / "memory.memsw.limit_in_bytes").read_text() == str(50_000 * 1024)
    assert cage.oom_kills() == 2 and cage.peak_kib() == 70 * 1024
    assert cage.describe() == "kernel (cgroup v1 memory.limit_in_bytes 50000 KiB)"
    assert not (base / f"peakops-job-{2 ** 22 + 7}").exists()
    assert available(root=tmp_path, proc_cgroup="4:memory:/box\n") == \
        f"kernel (cgroup v1 memory.limit_in_bytes under {base})"
    assert available(root=tmp_path / "none", proc_cgroup="4:memory:/box\n").startswith(
        "sampled every 0.1 s")


@pytest.fixture
def memory_group():
    """A real cgroup v1 memory group of this test's own (never the session's group)."""
    mount = CGROUP_ROOT / "memory"
    group = mount / f"peakops-test-{os.getpid()}"
    try:
        group.mkdir(exist_ok=True)
    except OSError as exc:
        pytest.skip(f"no cgroup v1 memory group can be created at {mount}: {exc}")
    yield group
    for child in group.glob("peakops-job-*"):
        child.rmdir()
    group.rmdir()


def test_kernel_stops_a_job_child_at_the_hard_limit(memory_group):
    """A real cgroup v1 cage: the kernel kills the child at the limit, and says so."""
    cage = make_cage(60_000, proc_cgroup=f"4:memory:/{memory_group.name}\n")
    assert cage is not None and cage.group.parent == memory_group
    grab = [sys.executable, "-c", "b = bytearray(300 * 1024 * 1024); print('survived')"]
    done = subprocess.run(grab, preexec_fn=cage.preexec(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == -signal.SIGKILL and "survived" not in done.stdout
    assert cage.oom_kills() == 1
    assert cage.peak_kib() <= 60_000
    cage.remove()
    assert not cage.group.exists()
