#!/bin/sh
# Make the console screenshots in docs/screenshots/ (run from the repository root).
# Offscreen needs nothing else; the Xvfb one needs xvfb-run (apt-get install xvfb).
set -e
PY=${PY:-.venv/bin/python}
OUT=docs/screenshots
DEMO=$(mktemp -d)/home
export PEAKOPS_HOME="$DEMO" PEAKOPS_CONFIG=/dev/null PYTHONPATH=.
"$PY" docs/screenshots/seed_demo.py "$DEMO"
shot() { "$PY" -m cli console --screenshot "$@"; }
QT_QPA_PLATFORM=offscreen shot "$OUT/main-window.png" --select 1
QT_QPA_PLATFORM=offscreen shot "$OUT/details-thumbnails.png" --select 2 --panel details
QT_QPA_PLATFORM=offscreen shot "$OUT/worker-memory-restart.png" --panel worker
if command -v xvfb-run >/dev/null; then
    xvfb-run -a -s "-screen 0 1600x1000x24" "$PY" -m cli console \
        --screenshot "$OUT/main-window-xvfb.png" --select 2
fi
