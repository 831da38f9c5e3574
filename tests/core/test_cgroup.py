"""The kernel memory cage, on a small fake of the cgroup v2 file tree (the files the
kernel exposes, as plain files): what is written where, and when it declines. The
kernel path itself needs a delegated cgroup v2 memory controller, which this test
machine does not have (cgroup v1 memory); there the worker falls back to sampling,
covered by tests/reliability/test_memory_limits.py."""

from __future__ import annotations

import os

from core.jobs.cgroup import SUPERVISOR_LEAF, make_cage


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
