# PyInstaller runtime hook of the frozen PeakOps: runs before batch.cli.
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
        from batch.selftest import xcb_problem

        problem = xcb_problem()
        if problem:
            print(f"peakops: {problem}", file=sys.stderr)
            sys.exit(1)


_prepare_qt()
