# PeakOps: `make run` starts the product, `make test` runs the whole suite.
# Both create .venv when it is missing; nothing else needs installing by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test lint bench bench-quick clean

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
	$(VENV)/bin/ruff check core batch desktop tests bench

clean:
	rm -rf $(VENV) .pytest_cache

.PHONY: soak
soak: $(DEVSTAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest tests/reliability --soak -s $(PYTEST_ARGS)
