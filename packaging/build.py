"""Build the frozen PeakOps folder, then a .deb and a .tar.zst of it (``make package``).

Run with the project's venv Python from anywhere:  .venv/bin/python packaging/build.py
Outputs go to build/package/ (gitignored):
  root/            the .deb tree: opt/peakops (the PyInstaller folder), usr/...
  peakops_VERSION_amd64.deb, peakops-VERSION-linux-x86_64.tar.zst, sizes.txt, depends.txt

The version comes from pyproject.toml only: the installed distribution metadata that
PyInstaller bundles (for ``peakops --version``) is refreshed when it differs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGING = REPO / "packaging"
OUT = REPO / "build" / "package"
ROOT = OUT / "root"
APP = ROOT / "opt" / "peakops"
INTERNAL = APP / "_internal"

# Needed at run time but invisible to ldd.
EXTRA_DEPENDS = {
    "fonts-dejavu-core": "a font for Qt to render text with (Qt ships none; the "
                         "offscreen screenshot and the console need one)",
    "tzdata": "time zone database for off-peak windows (zoneinfo reads /usr/share/zoneinfo)",
}


def log(message: str) -> None:
    print(f"[package] {message}", flush=True)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kwargs)


def project_version() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def ensure_metadata(version: str) -> None:
    """The bundled dist metadata must carry pyproject's version (it feeds --version)."""
    code = "import importlib.metadata as m; print(m.version('peakops'))"
    installed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                               text=True).stdout.strip()
    if installed != version:
        log(f"installed metadata says {installed or 'nothing'}, pyproject {version}: "
            "refreshing the editable install")
        run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(REPO)])


# --------------------------------------------------------------------------- freeze

def freeze() -> None:
    if ROOT.exists():
        shutil.rmtree(ROOT)
    (ROOT / "opt").mkdir(parents=True)
    run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--workpath", str(REPO / "build" / "pyinstaller"), "--distpath", str(ROOT / "opt"),
         str(PACKAGING / "peakops.spec")], cwd=REPO)


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def elf_files() -> list[Path]:
    return sorted(p for p in APP.rglob("*") if p.is_file() and not p.is_symlink()
                  and is_elf(p))


def tidy() -> None:
    """Remove links to libraries the spec left out; strip Python's debug info."""
    for link in [p for p in APP.rglob("*") if p.is_symlink() and not p.exists()]:
        link.unlink()
    # pyenv builds libpython and the stdlib extensions with debug info (~20 MB).
    python_parts = [INTERNAL / name for name in os.listdir(INTERNAL)
                    if name.startswith("libpython")]
    python_parts += (INTERNAL / "python3.11" / "lib-dynload").glob("*.so")
    targets = [str(p) for p in python_parts if p.is_file() and not p.is_symlink()]
    if targets:
        run(["strip", "--strip-debug", *targets])


# --------------------------------------------------------------------------- depends

def ldd_scan() -> tuple[dict[str, Path], dict[str, set[str]]]:
    """System libraries the bundle loads, directly or not (soname -> path), and any that
    this machine lacks (soname -> the bundled files that need it)."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(INTERNAL)}  # as the bootloader sets it
    system: dict[str, Path] = {}
    missing: dict[str, set[str]] = {}
    for path in elf_files():
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env).stdout
        for line in out.splitlines():
            m = re.match(r"\s*(\S+) => (.+?) \(0x", line)
            if "not found" in line:
                missing.setdefault(line.split("=>")[0].strip(), set()).add(
                    str(path.relative_to(APP)))
            elif m and not Path(m.group(2)).resolve().is_relative_to(APP.resolve()):
                system[m.group(1)] = Path(m.group(2))
    return system, missing


def elf_needs() -> tuple[set[str], tuple[int, int], int]:
    """Sonames the bundled files link directly (NEEDED), the newest GLIBC symbol version
    and the newest GLIBCXX_3.4.N they use."""
    needed: set[str] = set()
    glibc, glibcxx = (2, 17), 0
    for path in elf_files():
        out = subprocess.run(["objdump", "-p", "-T", str(path)], capture_output=True,
                             text=True).stdout
        needed.update(re.findall(r"^\s+NEEDED\s+(\S+)", out, re.M))
        for major, minor in re.findall(r"GLIBC_(\d+)\.(\d+)", out):
            glibc = max(glibc, (int(major), int(minor)))
        for n in re.findall(r"GLIBCXX_3\.4\.(\d+)", out):
            glibcxx = max(glibcxx, int(n))
    return needed, glibc, glibcxx


def dpkg_owner(path: Path) -> str | None:
    candidates = {str(path), str(path.resolve())}
    for c in list(candidates):  # merged /usr: dpkg may record either spelling
        candidates.add(c[4:] if c.startswith("/usr/") else "/usr" + c)
    for candidate in sorted(candidates):
        done = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


# libstdc++ symbol version GLIBCXX_3.4.N -> first GCC (libstdc++6 package) providing it
_GCC_FOR_GLIBCXX = {26: 9, 28: 10, 29: 11, 30: 12, 31: 13, 32: 14, 33: 15}


def compute_depends() -> tuple[list[str], list[str]]:
    """The Depends list (packages of the libraries linked directly; apt pulls in theirs)
    and a reason per package. Versions only where the symbols demand it: glibc and
    libstdc++; the other sonames carry their ABI in the name."""
    system, missing = ldd_scan()
    if missing:
        lines = "\n".join(f"  {name} (needed by {', '.join(sorted(who)[:3])})"
                          for name, who in sorted(missing.items()))
        raise SystemExit(f"bundle needs libraries this build machine lacks:\n{lines}")
    needed, glibc, glibcxx = elf_needs()
    by_package: dict[str, list[str]] = {}
    table = []
    for soname, path in sorted(system.items()):
        package = dpkg_owner(path)
        if package is None:
            raise SystemExit(f"no Debian package owns {path} ({soname})")
        table.append(f"{soname} {package}")
        if soname in needed:
            by_package.setdefault(package, []).append(soname)
    # soname -> package, for the app's "missing library" messages (cli/selftest.py)
    (INTERNAL / "peakops-system-libs.txt").write_text("\n".join(table) + "\n")
    depends, reasons = [], []
    for package, sonames in sorted(by_package.items()):
        entry = package
        if package == "libc6":
            entry = f"libc6 (>= {glibc[0]}.{glibc[1]})"
        elif package == "libstdc++6" and glibcxx in _GCC_FOR_GLIBCXX:
            entry = f"libstdc++6 (>= {_GCC_FOR_GLIBCXX[glibcxx]})"
        depends.append(entry)
        reasons.append(f"{entry}: {', '.join(sonames)}")
    for package, why in EXTRA_DEPENDS.items():
        depends.append(package)
        reasons.append(f"{package}: {why}")
    return depends, reasons


# --------------------------------------------------------------------------- sizes

def du(path: Path) -> int:
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def size_report() -> str:
    qt = INTERNAL / "PySide6" / "Qt"
    parts = {
        "ffmpeg binary (imageio_ffmpeg)": [INTERNAL / "imageio_ffmpeg"],
        "ICU (libicu*, needed by QtCore)": list((qt / "lib").glob("libicu*")),
        "Qt libraries": [p for p in (qt / "lib").glob("libQt6*")],
        "Qt plugins": [qt / "plugins"],
        "PySide6/shiboken bindings": [p for p in (INTERNAL / "PySide6").iterdir()
                                      if p.name != "Qt"] + [INTERNAL / "shiboken6"],
        "Python runtime (libpython)": list(INTERNAL.glob("libpython*")),
        "Python stdlib (base_library.zip, lib-dynload, PYZ)":
            [INTERNAL / "base_library.zip", INTERNAL / "python3.11", APP / "peakops"],
        "Pillow (PIL + pillow.libs)": [INTERNAL / "PIL", INTERNAL / "pillow.libs"],
        "boto3/botocore (code in PYZ; data here)": [INTERNAL / "botocore", INTERNAL / "boto3"],
    }
    total = du(APP)
    lines, counted = [], 0
    for name, paths in parts.items():
        size = sum(du(p) for p in paths)
        counted += size
        lines.append(f"{size / 2**20:8.1f} MiB  {name}")
    lines.append(f"{(total - counted) / 2**20:8.1f} MiB  other")
    lines.append(f"{total / 2**20:8.1f} MiB  total unpacked app (/opt/peakops)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- installers

def make_icon(dest: Path) -> None:
    """A simple 256x256 icon: a mountain peak over a film strip, drawn with Pillow."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((8, 8, 248, 248), radius=40, fill=(28, 61, 90, 255))
    draw.polygon([(28, 196), (100, 70), (140, 132), (168, 98), (228, 196)],
                 fill=(240, 244, 248, 255))
    draw.polygon([(100, 70), (84, 98), (100, 92), (114, 104), (118, 96)],
                 fill=(28, 61, 90, 255))
    draw.rectangle((28, 206, 228, 228), fill=(245, 166, 35, 255))
    for x in range(36, 228, 24):
        draw.rectangle((x, 212, x + 10, 222), fill=(28, 61, 90, 255))
    dest.parent.mkdir(parents=True, exist_ok=True)
    image.save(dest, "PNG", optimize=True)


def fill(template: Path, dest: Path, **values: str) -> None:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)


def build_deb(version: str, depends: list[str]) -> Path:
    usr = ROOT / "usr"
    (usr / "bin").mkdir(parents=True, exist_ok=True)
    # The bootloader finds _internal through /proc/self/exe, so a symlink works.
    (usr / "bin" / "peakops").symlink_to("/opt/peakops/peakops")
    fill(PACKAGING / "peakops.desktop", usr / "share/applications/peakops.desktop",
         BIN="/usr/bin/peakops")
    make_icon(usr / "share/icons/hicolor/256x256/apps/peakops.png")
    fill(PACKAGING / "peakops.service", usr / "lib/systemd/user/peakops.service",
         BIN="/usr/bin/peakops")
    installed_kib = sum(p.lstat().st_size for p in ROOT.rglob("*")) // 1024
    fill(PACKAGING / "deb" / "control.in", ROOT / "DEBIAN" / "control", VERSION=version,
         INSTALLED_SIZE=str(installed_kib), DEPENDS=", ".join(depends))
    deb = OUT / f"peakops_{version}_amd64.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--threads-max=0", "--build",
         str(ROOT), str(deb)], stdout=subprocess.DEVNULL)
    return deb


def build_tarball(version: str) -> Path:
    name = f"peakops-{version}"
    stage = OUT / "tar" / name
    if stage.parent.exists():
        shutil.rmtree(stage.parent)
    (stage / "share").mkdir(parents=True)
    shutil.copy2(PACKAGING / "install.sh", stage / "install.sh")
    shutil.copy2(PACKAGING / "peakops.desktop", stage / "share" / "peakops.desktop")
    shutil.copy2(PACKAGING / "peakops.service", stage / "share" / "peakops.service")
    shutil.copy2(ROOT / "usr/share/icons/hicolor/256x256/apps/peakops.png",
                 stage / "share" / "peakops.png")
    (stage / "VERSION").write_text(version + "\n")
    tarball = OUT / f"{name}-linux-x86_64.tar.zst"
    run(["tar", "--owner=0", "--group=0", "-I", "zstd -T0 -3 -q", "-cf", str(tarball),
         "-C", str(stage.parent), name,
         "--transform", f"s,^opt/peakops,{name}/peakops,", "-C", str(ROOT), "opt/peakops"])
    return tarball


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-freeze", action="store_true",
                        help="reuse build/package/root/opt/peakops (installer work only)")
    args = parser.parse_args()
    started = time.monotonic()
    for tool in ("dpkg-deb", "zstd", "ldd", "dpkg", "objdump", "strip"):
        if shutil.which(tool) is None:
            raise SystemExit(f"packaging needs `{tool}` (Debian: apt-get install dpkg zstd "
                             "binutils)")
    version = project_version()
    ensure_metadata(version)
    if not args.no_freeze:
        log(f"freezing peakops {version} with PyInstaller")
        freeze()
        tidy()
    else:
        shutil.rmtree(ROOT / "usr", ignore_errors=True)
        shutil.rmtree(ROOT / "DEBIAN", ignore_errors=True)
    frozen_at = time.monotonic()
    log(f"frozen in {frozen_at - started:.0f} s; scanning shared libraries")
    depends, reasons = compute_depends()
    sizes = size_report()
    deb = build_deb(version, depends)
    deb_at = time.monotonic()
    tarball = build_tarball(version)
    done_at = time.monotonic()
    summary = (f"{sizes}\n\n{deb.name}: {deb.stat().st_size / 2**20:.1f} MiB "
               f"(dpkg-deb {deb_at - frozen_at:.0f} s)\n"
               f"{tarball.name}: {tarball.stat().st_size / 2**20:.1f} MiB "
               f"(tar {done_at - deb_at:.0f} s)\n"
               f"build time {done_at - started:.0f} s\n")
    (OUT / "sizes.txt").write_text(summary)
    (OUT / "depends.txt").write_text("\n".join(reasons) + "\n")
    print(summary + "\nDepends:\n  " + "\n  ".join(reasons))
    return 0


if __name__ == "__main__":
    sys.exit(main())
