"""Run the frozen PeakOps from an unpacked .deb, the way an operator would (packaging/check.sh).

The app runs with a bare environment: PATH=/usr/bin:/bin, no PYTHONPATH, no venv, no
display, its home in a temp folder. This script itself runs in the project venv only to
generate clips (core.media.samples) and to inspect results (Pillow, psutil).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.media.samples import make_clip  # noqa: E402 - needs the repo on sys.path

FAILURES: list[str] = []


def report(ok: bool, name: str, detail: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'}  {name:<11} {detail}", flush=True)
    if not ok:
        FAILURES.append(name)


class Frozen:
    def __init__(self, exe: Path, tmp: Path) -> None:
        self.exe = exe
        home = tmp / "home"
        home.mkdir()
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
                    "TMPDIR": str(tmp), "PEAKOPS_HOME": str(home / "peakops"),
                    "PEAKOPS_CONFIG": os.devnull}
        self.cwd = tmp

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.exe), *args], env=self.env, cwd=self.cwd,
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(self.exe), *args], env=self.env, cwd=self.cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def tail(proc: subprocess.CompletedProcess, lines: int = 15) -> str:
    text = (proc.stdout or "") + (proc.stderr or "")
    return "\n".join(text.strip().splitlines()[-lines:])


def check_version(app: Frozen, version: str) -> None:
    times, out = [], ""
    for _ in range(5):
        started = time.monotonic()
        proc = app.run("--version")
        times.append(time.monotonic() - started)
        out = proc.stdout.strip()
    report(out == f"peakops {version}", "version",
           f"{out!r} (pyproject {version}); start time median {statistics.median(times):.2f} s "
           f"of {len(times)} runs")


def check_self_test(app: Frozen) -> None:
    proc = app.run("--self-test")
    print("      " + proc.stdout.strip().replace("\n", "\n      "))
    report(proc.returncode == 0 and not proc.stderr.strip(), "self-test",
           f"exit {proc.returncode}" + (f"; stderr: {proc.stderr.strip()[:300]}"
                                        if proc.stderr.strip() else ""))


def check_process(app: Frozen, clip: Path) -> int | None:
    """Process ``clip``; its upload id when it is DONE."""
    proc = app.run("process", str(clip), "--json", timeout=300)
    try:
        detail = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report(False, "process", f"exit {proc.returncode}, no JSON:\n{tail(proc)}")
        return None
    frames = len(detail.get("frames", []))
    ok = proc.returncode == 0 and detail.get("status") == "DONE" and frames > 0
    report(ok, "process", f"upload {detail.get('id')} {detail.get('status')} with {frames} frames")
    return detail.get("id") if ok else None


def check_compare(app: Frozen, tmp: Path, upload_id: int | None) -> None:
    """``sheet --compare`` takes frames in the frozen app's hidden _plans-child command."""
    if upload_id is None:
        report(False, "compare", "no processed upload to compare")
        return
    out = tmp / "compare.jpg"
    proc = app.run("sheet", str(upload_id), "--compare", "even", "sharpest", "-o", str(out),
                   timeout=300)
    if proc.returncode != 0 or not out.is_file():
        report(False, "compare", f"exit {proc.returncode}:\n{tail(proc)}")
        return
    from PIL import Image
    with Image.open(out) as image:
        size = image.size
    report(size[0] > size[1] and out.stat().st_size > 10_000, "compare",
           f"{out.name} {size[0]}x{size[1]}, {out.stat().st_size // 1024} KiB")


def check_screenshot(app: Frozen, tmp: Path, *, x11: bool = False) -> None:
    """A console screenshot with visible text: offscreen (no display), or with ``x11`` on
    a virtual X server through Qt's xcb plugin and the system's X libraries."""
    from PIL import Image

    name = "console-x11" if x11 else "console"
    shot = tmp / f"{name}.png"
    argv = ["console", "--screenshot", str(shot), "--size", "1200x760"]
    if x11:
        proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", str(app.exe),
                               *argv], env=app.env, cwd=app.cwd, capture_output=True,
                              text=True, timeout=180)
    else:
        proc = app.run(*argv, timeout=180)
    if proc.returncode != 0 or not shot.exists():
        report(False, name, f"exit {proc.returncode}:\n{tail(proc)}")
        return
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 22) or []
    # Text is anti-aliased: many grey levels, and dark pixels on a light window.
    dark = sum(count for count, rgb in colours if sum(rgb) < 3 * 110)
    ok = len(colours) >= 30 and dark >= 500
    report(ok, name, f"{shot.name} {image.size[0]}x{image.size[1]}, {len(colours)} "
                     f"colours, {dark} dark (text) pixels")


def check_missing_library(app: Frozen, tmp: Path) -> None:
    """With libxcb-cursor hidden (a private mount namespace), ``peakops console`` on X11 must
    name the library and its package instead of Qt's generic plugin message."""
    libdir = Path("/usr/lib/x86_64-linux-gnu")
    if os.geteuid() != 0 or not shutil.which("unshare") or not (libdir / "libxcb-cursor.so.0"
                                                               ).exists():
        print(f"skip  {'missing-lib':<11} needs root, unshare and libxcb-cursor0", flush=True)
        return
    copy = tmp / "libdir"
    if subprocess.run(["cp", "-al", str(libdir), str(copy)], capture_output=True).returncode:
        print(f"skip  {'missing-lib':<11} cannot hard-link {libdir} into {tmp}", flush=True)
        return
    for hidden in copy.glob("libxcb-cursor.so*"):
        hidden.unlink()
    # A fixed script; the paths go in as its arguments, never into its text.
    script = 'mount --bind "$1" "$2" && exec "$3" console'
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(copy), str(libdir),
                           str(app.exe)],
                          env={**app.env, "DISPLAY": ":99"}, cwd=app.cwd, capture_output=True,
                          text=True, timeout=60)
    if "mount" in proc.stderr and "permission" in proc.stderr.lower():
        print(f"skip  {'missing-lib':<11} no mount namespace here", flush=True)
        return
    message = proc.stderr.strip()
    ok = (proc.returncode == 1 and "libxcb-cursor.so.0" in message
          and "libxcb-cursor0" in message and "qt.qpa" not in message)
    report(ok, "missing-lib", message[:300] or f"exit {proc.returncode}, no message")


def check_worker(app: Frozen, clip: Path) -> None:
    """``worker --burst`` processes a clip in a job child that is the frozen executable."""
    proc = app.run("submit", str(clip), "--json")
    if proc.returncode != 0:
        report(False, "worker", f"submit failed:\n{tail(proc)}")
        return
    upload_id = json.loads(proc.stdout)[0]["upload_id"]
    exe = os.path.realpath(app.exe)
    worker = app.popen("worker", "--burst")
    seen: dict[int, tuple[str, list[str], str | None]] = {}
    deadline = time.monotonic() + 300
    while worker.poll() is None and time.monotonic() < deadline:
        try:
            for child in psutil.Process(worker.pid).children(recursive=True):
                try:
                    # Read again at every poll, the last reading wins: a child caught between
                    # fork and exec shows its parent's exe, argv and environment (the frozen
                    # worker's own: the same exe), and only a later reading shows what it ran.
                    # exe before environ, and both read twice, for the same reason.
                    exe_now, argv = child.exe(), child.cmdline()
                    env_ld = child.environ().get("LD_LIBRARY_PATH")
                    if child.exe() != exe_now or child.environ().get(
                            "LD_LIBRARY_PATH") != env_ld:
                        continue
                    seen[child.pid] = (exe_now, argv, env_ld)
                except psutil.Error:
                    continue
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    if worker.poll() is None:
        worker.kill()
    output = worker.communicate()[0]
    job_children = [(pid, e) for pid, (e, argv, _) in seen.items() if argv[1:2] == ["_job-child"]]
    pythons = [e for e, _, _ in seen.values() if Path(e).name.startswith("python")]
    ffmpegs = [ld for e, _, ld in seen.values() if "ffmpeg" in Path(e).name]
    frozen_child = bool(job_children) and all(e == exe for _, e in job_children)
    report(frozen_child and not pythons, "job child",
           f"{len(job_children)} job child(ren) ran {sorted({e for _, e in job_children})}; "
           f"python processes: {len(pythons)}")
    leaked = [ld for ld in ffmpegs if ld and "_internal" in ld]
    for pid, (e, argv, ld) in seen.items():
        if ld and "_internal" in ld and "ffmpeg" in Path(e).name:
            print(f"      leaked LD_LIBRARY_PATH={ld} into pid {pid}: {argv[:8]}")
    report(not leaked, "ffmpeg env",
           f"{len(ffmpegs)} ffmpeg run(s) sampled; LD_LIBRARY_PATH pointing into the bundle: "
           f"{len(leaked)}")
    show = app.run("show", str(upload_id), "--json")
    status = app.run("status", "--all", "--json")  # the burst worker has stopped
    try:
        detail = json.loads(show.stdout)
        workers = json.loads(status.stdout)["workers"]
    except (json.JSONDecodeError, KeyError):
        report(False, "worker", f"exit {worker.returncode}\n{output[-2000:]}\n{tail(show)}")
        return
    starts = max((w.get("child_starts") or 0 for w in workers), default=0)
    ok = (worker.returncode == 0 and detail.get("status") == "DONE" and detail.get("frames")
          and starts >= 1)
    report(bool(ok), "worker", f"--burst exit {worker.returncode}; upload {upload_id} "
                               f"{detail.get('status')} with {len(detail.get('frames', []))} "
                               f"frames; child_starts {starts}")
    if not ok:
        print(output[-3000:])


def check_apt(deb: Path) -> None:
    """Whether apt could install the .deb here (Depends resolvable); a warning only, since
    it depends on this machine's package lists."""
    if not shutil.which("apt-get"):
        return
    proc = subprocess.run(["apt-get", "-s", "-q", "install", str(deb.resolve())],
                          capture_output=True, text=True, timeout=120)
    ok = proc.returncode == 0
    print(f"{'ok  ' if ok else 'warn'}  {'apt':<11} " + (
        "apt-get -s install resolves every Depends" if ok else
        f"apt-get -s install fails here:\n{tail(proc, 8)}"), flush=True)


def check_tarball(tarball: Path, tmp: Path, version: str) -> None:
    """The tarball's install.sh into a prefix, then the command through its symlink."""
    unpacked, prefix = tmp / "tarball", tmp / "prefix"
    unpacked.mkdir()
    subprocess.run(["tar", "-I", "zstd", "-xf", str(tarball), "-C", str(unpacked)], check=True)
    script = unpacked / f"peakops-{version}" / "install.sh"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp / "home"), "LANG": "C.UTF-8"}
    proc = subprocess.run(["sh", str(script), "--prefix", str(prefix)], env=env,
                          capture_output=True, text=True, timeout=300)
    command = prefix / "bin" / "peakops"
    out = subprocess.run([str(command), "--version"], env=env, capture_output=True,
                         text=True).stdout.strip() if command.exists() else ""
    unit = prefix / "lib" / "systemd" / "user" / "peakops.service"
    ok = (proc.returncode == 0 and "self-test: all passed" in proc.stdout
          and out == f"peakops {version}" and str(command) in unit.read_text())
    report(ok, "tarball", f"{tarball.name}: install.sh --prefix exit {proc.returncode}; "
                          f"{command.name} --version via symlink: {out!r}"
           + ("" if ok else f"\n{tail(proc)}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("deb", type=Path)
    parser.add_argument("--version", required=True, help="expected version (pyproject)")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="peakops-pkgcheck-") as name:
        tmp = Path(name)
        subprocess.run(["dpkg-deb", "-x", str(args.deb), str(tmp / "root")], check=True)
        depends = subprocess.run(["dpkg-deb", "-f", str(args.deb), "Depends"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        print(f"      {args.deb.name}: {args.deb.stat().st_size / 2**20:.1f} MiB; "
              f"Depends: {depends}")
        exe = tmp / "root" / "opt" / "peakops" / "peakops"
        report(exe.is_file() and os.access(exe, os.X_OK), "unpacked", str(exe))
        app = Frozen(exe, tmp)
        clips = tmp / "clips"
        clips.mkdir()
        clip_a = make_clip(clips / "inspection-a.mp4", seconds=3, width=320, height=240)
        clip_b = make_clip(clips / "inspection-b.mp4", seconds=3, width=320, height=240,
                           pattern="testsrc")
        check_version(app, args.version)
        check_self_test(app)
        check_compare(app, tmp, check_process(app, clip_a))
        check_worker(app, clip_b)
        check_screenshot(app, tmp)
        if shutil.which("xvfb-run"):
            check_screenshot(app, tmp, x11=True)
        else:
            print(f"skip  {'console-x11':<11} no xvfb-run here", flush=True)
        check_missing_library(app, tmp)
        check_apt(args.deb)
        tarball = args.deb.parent / f"peakops-{args.version}-linux-x86_64.tar.zst"
        check_tarball(tarball, tmp, args.version)
    took = time.monotonic() - started
    print(f"check_frozen: {'all passed' if not FAILURES else 'FAILED: ' + ', '.join(FAILURES)}"
          f" in {took:.0f} s")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
