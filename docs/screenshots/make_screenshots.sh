#!/bin/sh
# Make the console screenshots (run from the repository root):
#   sh docs/screenshots/make_screenshots.sh            # into a new folder; prints its path
#   sh docs/screenshots/make_screenshots.sh DIR        # into DIR
#   sh docs/screenshots/make_screenshots.sh --update   # replace the PNGs in docs/screenshots/
# It seeds a demo home in a temporary folder, removed when the script ends. It runs the
# commands the README lists. Offscreen needs nothing else; the Xvfb one needs xvfb-run
# (apt-get install xvfb) and is skipped without it.
set -eu
PY=${PY:-.venv/bin/python}
case "${1:-}" in
    --update) OUT=docs/screenshots ;;
    "") OUT=$(mktemp -d "${TMPDIR:-/tmp}/peakops-screenshots.XXXXXX") ;;
    *) OUT=$1; mkdir -p "$OUT" ;;
esac
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/peakops-demo.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT INT TERM
export PEAKOPS_HOME="$SCRATCH/home" PEAKOPS_CONFIG=/dev/null
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" docs/screenshots/seed_demo.py "$PEAKOPS_HOME"
peakops() { "$PY" -m cli "$@"; }
QT_QPA_PLATFORM=offscreen peakops console --screenshot "$OUT/main-window.png" --select 1
QT_QPA_PLATFORM=offscreen peakops console --screenshot "$OUT/details-thumbnails.png" --select 2 --panel details
QT_QPA_PLATFORM=offscreen peakops console --screenshot "$OUT/worker-memory-restart.png" --panel worker
if command -v xvfb-run >/dev/null; then
    xvfb-run -a -s "-screen 0 1600x1000x24" "$PY" -m cli console --screenshot "$OUT/main-window-xvfb.png" --select 2
fi
echo "screenshots in $OUT"
