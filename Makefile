# aircast — the two set-up commands are `make demo` and `make test`.
# Both work on a fresh clone with only Python 3.11+: they create .venv and install first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: help install install-dev chromium lint format test demo generate package clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.runtime: $(BIN)/python pyproject.toml
	$(PIP) install -e .
	@touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(PIP) install -e '.[dev]'
	@touch $@

install: $(VENV)/.runtime  ## Create .venv with the runtime dependencies

install-dev: $(VENV)/.dev chromium  ## Create .venv with runtime, test and emulator dependencies

chromium:  ## Debian's chromium for the dashboard test (apt-get, only if missing)
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq chromium || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }; }

lint: install-dev  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev  ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install-dev lint  ## Lint, then every test (emulators included)
	$(BIN)/pytest

generate: install  ## Regenerate terraform/schemas and terraform/schedules.json from common
	$(BIN)/python -m common.generate

package: install  ## Zip each function reproducibly into build/packages/<fn>.zip
	$(BIN)/python -m common.packaging

clean:  ## Remove the virtualenv and local state
	rm -rf $(VENV) .aircast build .pytest_cache .ruff_cache
