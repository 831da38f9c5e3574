#!/bin/sh
# Every system package the tests, the package build and the package check need beyond the
# Python venv, in one place. `make test`, `make package` and `make package-check` call it.
# A no-op when everything is installed; otherwise installs with apt-get as root, waiting
# for the dpkg lock (another apt run) instead of failing at once.
#
#   libxcb-icccm4 libxcb-keysyms1 ...  libraries Qt's X11 (xcb) platform plugin links to: the
#                                      frozen app bundles that plugin, and the build checks
#                                      with ldd that it can resolve every library it needs
#   xvfb xauth                         the package check runs the frozen console on X11
#                                      (xvfb-run)
#   dpkg (dpkg-deb) zstd binutils       the package build (objdump, strip)
#   postgresql redis-server            fleet-mode tests start a throwaway PostgreSQL (initdb,
#                                      pg_ctl) and redis-server of their own on loopback
#   xfsprogs                           the staging tests make an XFS with reflink=1 on a loop
#                                      device (mkfs.xfs): the submit's clone, for real
# With --docs also what looking at the output takes (not the tests):
#   chromium                           renders the morning report (HTML) to a PNG headless
set -eu

PACKAGES="libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0
libxcb-randr0 libxcb-sync1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0
xvfb xauth dpkg zstd binutils postgresql redis-server xfsprogs"
if [ "${1:-}" = "--docs" ]; then
    PACKAGES="$PACKAGES chromium"
fi

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-system-deps: not a Debian/Ubuntu system; install the equivalents of:$missing" >&2
    exit 1
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure-system-deps: missing Debian packages:$missing" >&2
    echo "  as root: sudo sh scripts/ensure-system-deps.sh   (or: sudo apt-get install$missing)" >&2
    exit 1
fi

echo "ensure-system-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt() {
    apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3 -qq "$@"
}
# `apt-get update` takes the package lists' lock, which DPkg::Lock::Timeout does not cover:
# wait for another apt run to let go of it.
tries=0
until apt update; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        echo "ensure-system-deps: apt-get update kept failing (locked or unreachable)" >&2
        exit 1
    fi
    sleep 10
done
# shellcheck disable=SC2086  # word splitting of the package list is intended
apt install -y --no-install-recommends $missing >/dev/null
echo "ensure-system-deps: installed$missing" >&2
