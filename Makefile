# ccd — the two commands a newcomer needs are `make run` and `make test`.
# Every target sets up what it needs (system packages, the .venv virtualenv) when missing.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test test-real bench lint assets venv clean

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
	@scripts/sysdeps.sh web
	$(BIN)/ccd demo

test: $(STAMP) assets
	@scripts/sysdeps.sh test
	$(BIN)/ruff check ccd tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ccd against an installed Asterisk 22 with real SIP phones (baresip): CCD_ASTERISK=/path/to/asterisk
test-real: $(STAMP) assets
	@test -n "$(CCD_ASTERISK)" || { echo "make test-real: set CCD_ASTERISK to an installed Asterisk 22 binary (e.g. /usr/sbin/asterisk)" >&2; exit 2; }
	@scripts/sysdeps.sh test real
	CCD_ASTERISK="$(CCD_ASTERISK)" $(BIN)/python -m pytest tests/real $(PYTEST_ARGS)

bench: $(STAMP) assets
	@set -e; for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

lint: $(STAMP)
	$(BIN)/ruff check ccd tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
