#!/usr/bin/env bash
# CI check of the installers (`make package-check`): build the .deb and the tarball, unpack
# the .deb with dpkg-deb -x and run the frozen app from there (packaging/check_frozen.py).
#   PEAKOPS_CHECK_NO_BUILD=1   reuse the last build (build/package/)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

sh scripts/ensure-system-deps.sh  # build tools, Qt's X11 libraries, xvfb

started=$(date +%s)
if [ "${PEAKOPS_CHECK_NO_BUILD:-0}" != 1 ]; then
    "$PY" packaging/build.py
fi
version=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
"$PY" packaging/check_frozen.py "build/package/peakops_${version}_amd64.deb" --version "$version"
echo "package-check: passed in $(( $(date +%s) - started )) s"
