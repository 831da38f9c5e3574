# PyInstaller runtime hook of the frozen PeakOps: runs before cli.main.
import os
import sys


def _prepare_qt() -> None:
    env = os.environ
    # Without any locale variable (systemd units, cron, `env -i`) Qt warns on stderr that
    # it switched to C.UTF-8; choose it ourselves, as Python's own C-locale coercion does.
    if not any(env.get(name) for name in ("LC_ALL", "LC_CTYPE", "LANG")):
        env["LC_CTYPE"] = "C.UTF-8"
    # Only the xcb and offscreen platform plugins are bundled. In a Wayland session Qt
    # would try "wayland" first and print a warning; X11 (XWayland) is what we ship.
    if "QT_QPA_PLATFORM" not in env and env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "xcb"
    # A missing system library would otherwise surface as Qt's "could not load the Qt
    # platform plugin xcb even though it was found", which names no library.
    if "console" in sys.argv[1:] and env.get("QT_QPA_PLATFORM") == "xcb":
        from cli.selftest import xcb_problem

        problem = xcb_problem()
        if problem:
            print(f"peakops: {problem}", file=sys.stderr)
            sys.exit(1)


def _point_at_ffmpeg() -> None:
    # imageio-ffmpeg would validate its binary by running `ffmpeg -version` itself, with
    # our LD_LIBRARY_PATH (see core/procenv.py) and on every start; naming the bundled
    # binary skips that. An operator's own IMAGEIO_FFMPEG_EXE still wins.
    if os.environ.get("IMAGEIO_FFMPEG_EXE"):
        return
    folder = os.path.join(sys._MEIPASS, "imageio_ffmpeg", "binaries")
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith("ffmpeg-"))
    except OSError:
        return
    if names:
        os.environ["IMAGEIO_FFMPEG_EXE"] = os.path.join(folder, names[-1])


def _restore_library_path() -> None:
    # The bootloader points LD_LIBRARY_PATH at _internal. The dynamic loader read it when
    # this process started, so changing it now only affects children: programs spawned by
    # libraries (Qt, imageio-ffmpeg) then get the caller's value, like those spawned through
    # core.procenv.clean_env. Our own job child is this executable; its bootloader sets the
    # path again. LD_LIBRARY_PATH_ORIG stays, so clean_env restores the same value.
    original = os.environ.get("LD_LIBRARY_PATH_ORIG")
    if original is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = original


_prepare_qt()
_point_at_ffmpeg()
_restore_library_path()
