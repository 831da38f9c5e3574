# PeakOps: `make run` starts the product, `make test` runs the whole suite.
# Both create .venv when it is missing; nothing else needs installing by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test lint bench bench-quick bench-fleet clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $@

# The console on the default settings, starting the local worker service if none runs.
# Without a display (Linux: no DISPLAY/WAYLAND_DISPLAY) it says so in one line and exits 0.
run: $(STAMP)
	@$(VENV)/bin/peakops console --start-worker

test: $(DEVSTAMP)
	sh scripts/ensure-system-deps.sh
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check core batch desktop cli tests bench

clean:
	rm -rf $(VENV) .pytest_cache

# Benchmarks (bench/, issue 8): memory and time against the decode-everything baseline and
# the bare-ffmpeg limit. Videos are generated once into PEAKOPS_BENCH_CACHE (default
# ~/.cache/peakops-bench). `bench` is the full run and writes bench/results/; `bench-quick`
# (720p 30 s and 4K 10 s, one run) prints the table in under 3 minutes.
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(PY) -m bench --quick $(BENCH_ARGS)

# Fleet figures (issue 17): jobs per minute with 1, 2 and 3 workers on PostgreSQL, Redis
# and S3 (throwaway servers on loopback), and SQLite's per-job cost beside them.
bench-fleet: $(DEVSTAMP)
	$(PY) -m bench.fleet $(BENCH_ARGS)

.PHONY: soak
soak: $(DEVSTAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest tests/reliability --soak -s $(PYTEST_ARGS)

# Installers: a PyInstaller folder, a .deb and a .tar.zst under build/package/ (packaging/).
PKGSTAMP := $(VENV)/.installed-package

$(PKGSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[package]'
	touch $(STAMP) $@

.PHONY: package package-check
package: $(PKGSTAMP)
	sh scripts/ensure-system-deps.sh
	$(PY) packaging/build.py

# Builds the package, unpacks the .deb and runs the frozen app from there (CI step).
package-check: $(PKGSTAMP)
	PY=$(PY) packaging/check.sh
