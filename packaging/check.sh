#!/usr/bin/env bash
# CI check of the installers (`make package-check`): build the .deb and the tarball, unpack
# the .deb with dpkg-deb -x and run the frozen app from there (packaging/check_frozen.py).
#   PEAKOPS_CHECK_NO_BUILD=1   reuse the last build (build/package/)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

# System tools the build needs; installed when we are root on Debian/Ubuntu (idempotent).
missing=""
command -v dpkg-deb >/dev/null 2>&1 || missing="$missing dpkg"
command -v zstd >/dev/null 2>&1 || missing="$missing zstd"
command -v objdump >/dev/null 2>&1 || missing="$missing binutils"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "package-check: installing$missing" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # shellcheck disable=SC2086  # word splitting of the package list is intended
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "package-check: missing system tools:$missing (apt-get install$missing)" >&2
        exit 1
    fi
fi

started=$(date +%s)
if [ "${PEAKOPS_CHECK_NO_BUILD:-0}" != 1 ]; then
    "$PY" packaging/build.py
fi
version=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
"$PY" packaging/check_frozen.py "build/package/peakops_${version}_amd64.deb" --version "$version"
echo "package-check: passed in $(( $(date +%s) - started )) s"
