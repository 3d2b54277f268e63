# ccd — the two commands a newcomer needs are `make run` and `make test`.
# Every target sets up what it needs (system packages, the .venv virtualenv) when missing.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test bench lint assets venv clean

$(STAMP): pyproject.toml
	@scripts/sysdeps.sh base
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# the panel's JavaScript (socket.io-client, chart.js) from npm, served by ccd itself
assets:
	@scripts/assets.sh

run: $(STAMP) assets
	$(BIN)/ccd demo

test: $(STAMP) assets
	@scripts/sysdeps.sh test
	$(BIN)/ruff check ccd tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) assets
	@set -e; for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

lint: $(STAMP)
	$(BIN)/ruff check ccd tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
