# aircast — the two set-up commands are `make demo` and `make test`.
# Both work on a fresh clone with only Python 3.11+: they create .venv and install first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet
# uv installs what pip would (the same versions from PyPI, checked by a freeze diff), ~5x
# faster on a cold cache (pip 114 s, uv 20 s for '.[dev]' on 2 cores): CI's set-up time.
UV_VERSION := 0.13.10
UV     := $(BIN)/python -m uv pip install --quiet
# checkov pins dependencies that conflict with ours, so it lives in a venv of its own.
TOOLS  ?= .venv-tools
CHECKOV_VERSION := 3.3.30

.PHONY: help install install-dev chromium lint format checkov test demo generate package clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.uv-$(UV_VERSION): $(BIN)/python
	$(PIP) install --upgrade pip uv==$(UV_VERSION)
	@touch $@

$(VENV)/.runtime: $(VENV)/.uv-$(UV_VERSION) pyproject.toml
	$(UV) --python $(BIN)/python -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.uv-$(UV_VERSION) pyproject.toml
	$(UV) --python $(BIN)/python -e '.[dev]'
	@touch $@

install: $(VENV)/.runtime  ## Create .venv with the runtime dependencies

install-dev: $(VENV)/.dev chromium  ## Create .venv with runtime, test and emulator dependencies

chromium:  ## Debian's chromium for the dashboard test (apt-get, only if missing)
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq chromium || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }; }

lint: install-dev  ## ruff check and format check, then the type checker (config: pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install-dev  ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(TOOLS)/.checkov-$(CHECKOV_VERSION): $(VENV)/.uv-$(UV_VERSION)
	$(PYTHON) -m venv $(TOOLS)
	$(UV) --python $(TOOLS)/bin/python checkov==$(CHECKOV_VERSION)
	@touch $@

# Offline: no API key (nothing is sent to Prisma Cloud), no download of guidelines.
checkov: $(TOOLS)/.checkov-$(CHECKOV_VERSION)  ## Security-scan terraform/ (must have zero failed checks)
	env -u BC_API_KEY $(TOOLS)/bin/checkov -d terraform --framework terraform --quiet --compact --skip-download

# One worker per core, a test file per worker at a time (its module fixtures built once),
# in collection order: tests/conftest.py puts the longest files first, one per worker.
PYTEST_WORKERS ?= auto

test: install-dev lint checkov  ## Lint, then every test (emulators included), on every core
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

demo: install  ## Backfill, train, forecast, then serve the api, dashboard and scheduler locally
	$(BIN)/aircast demo

generate: $(VENV)/.dev  ## Regenerate terraform/'s inputs from common, its README tables, the docs' settings
	$(BIN)/python -m tools.generate
	$(BIN)/python -m tools.docs

package: install  ## Zip each function reproducibly into build/packages/<fn>.zip
	$(BIN)/python -m tools.packaging

clean:  ## Remove the virtualenv and local state
	rm -rf $(VENV) $(TOOLS) .aircast build .pytest_cache .ruff_cache
