# Every command a person runs. Each target sets up what it needs on a fresh machine with Python 3.13.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# pyenv's python3.13 shim answers only when 3.13 is the selected version, so fall back to its install.
PYTHON ?= $(shell python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null || ls -d $$HOME/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1)
VENV := .venv
UV := $(VENV)/bin/uv
RUN := $(UV) run --frozen --no-sync

.PHONY: help setup run test lint unit bench format build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(UV):
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it, or run make PYTHON=/path/to/python3.13"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.13,<0.14"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --inexact --quiet
	@touch $@

setup: $(VENV)/.synced ## Create .venv with the locked dependencies

run: setup ## Serve the page, the API, DynamoDB and Stripe's emulator on http://127.0.0.1:3000 (PORT=...)
	PYTHONPATH=layers/shared:. exec $(VENV)/bin/python -m devstack

test: lint unit ## Lint, type-check and run every test

lint: setup ## ruff and mypy (strict) on the domain package
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

unit: setup
	$(RUN) pytest

bench: setup ## Measure cold start, warm latency, round trips, concurrency and memory; writes docs/PERFORMANCE.md
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m bench

format: setup ## Format the code
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

clean: ## Remove the virtual environment and build output
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
