#!/bin/sh
# System packages the test suite needs beyond the Python venv. Idempotent.
#   faketime (Debian's libfaketime): the off-peak batch test runs `peakops batch`
#   under a shifted clock.
# With --docs also what looking at the output takes (not the tests):
#   chromium: renders the morning report (HTML) to a PNG headless, to look at it.
set -eu

missing=""
command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
if [ "${1:-}" = "--docs" ]; then
    command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
fi

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-system-deps: installing$missing" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    exit 0
fi

echo "ensure-system-deps: missing system package(s):$missing" >&2
echo "  install them, e.g.: sudo apt-get install$missing   (Debian/Ubuntu)" >&2
echo "                      sudo dnf install libfaketime    (Fedora)" >&2
echo "                      brew install libfaketime        (macOS)" >&2
exit 1
