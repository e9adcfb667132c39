# Every command a person runs. Each target sets up what it needs on a fresh machine with Python 3.13.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# pyenv's python3.13 shim answers only when 3.13 is the selected version, so fall back to its install.
PYTHON ?= $(shell python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null || ls -d $$HOME/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1)
VENV := .venv
UV := $(VENV)/bin/uv
RUN := $(UV) run --frozen --no-sync
# checkov, locked in uv.lock's scan group, in an environment of its own: its pins clash with pytest's.
SCAN_VENV := .venv-scan
# sam, at one version, in uv's tool cache rather than the project's environment (its pins clash).
# It finds python3.13 on PATH for the Lambda runtime, so the interpreter's directory goes first.
SAM := PATH="$(dir $(PYTHON)):$$PATH" SAM_CLI_TELEMETRY=0 $(UV) tool run --from "aws-sam-cli==1.170.0" sam
STACK_NAME ?= credits
# What the Lambda Python runtime already has; the layer does not ship them.
RUNTIME_PACKAGES := boto3 botocore s3transfer jmespath python-dateutil six
LAYER_REQUIREMENTS ?= layers/shared/requirements.txt
BUILD_DIR ?= .aws-sam/build

.PHONY: help setup run audit report migrate expire-holds expire-grants test lint unit test-loaded bench bench-audit bench-books bench-hot bench-grants init-cost validate build bytecode deploy doctor layer-requirements format clean

# The name column is as wide as the longest name, so a new target's name never pushes its text out of line.
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' \
	  '{ name[NR] = $$1; text[NR] = $$2; if (length($$1) > width) width = length($$1) } \
	   END { for (i = 1; i <= NR; i++) printf "  make %-" width "s  %s\n", name[i], text[i] }'

$(UV):
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it, or run make PYTHON=/path/to/python3.13"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.13,<0.14"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --inexact --quiet
	@touch $@

setup: $(VENV)/.synced ## Create .venv with the locked dependencies

$(SCAN_VENV)/.synced: $(UV) pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(SCAN_VENV) $(UV) sync --frozen --no-default-groups --group scan --quiet \
	  --python "$(PYTHON)" --no-python-downloads
	@touch $@

run: setup ## Serve the page, the API, DynamoDB and Stripe's emulator on http://127.0.0.1:3000 (PORT=...)
	PYTHONPATH=layers/shared:. exec $(VENV)/bin/python -m devstack

audit: setup ## Prove every balance of the running `make run` is the sum of its rows (exit 1 on drift)
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m devstack.audit

report: setup ## The month's books of `make run` per account and currency (PERIOD=2027-01 FORMAT=csv|json OUT=file)
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m devstack.report --period "$(PERIOD)" --format "$(or $(FORMAT),csv)" \
	  $(if $(OUT),--out "$(OUT)")

migrate: setup ## Upgrade, once, the items an earlier release wrote to `make run`'s tables (resumable)
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m devstack.migrate

expire-holds: setup ## Expire every hold of the running `make run` past its time, as the minute's sweep does
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m devstack.expire_holds

expire-grants: setup ## Expire what is left of every grant of the running `make run` past its expiry, as the hourly sweep does
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m devstack.expire_grants

test: lint validate build unit ## Lint, type-check, validate and build the template, and run every test

lint: setup ## ruff and mypy (strict) on the domain package
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

unit: setup
	$(RUN) pytest

# The suite as a busy CI machine runs it: a busy loop holds one core (pinned to CPU 0 where taskset exists)
# from start to end, and the trap stops it however pytest ends; pytest's exit code is the target's.
test-loaded: setup ## Every test, as make unit runs them, while a busy loop keeps one core busy
	@if command -v taskset >/dev/null; then taskset -c 0 $(VENV)/bin/python -c 'while True: pass' & busy=$$!; \
	else $(VENV)/bin/python -c 'while True: pass' & busy=$$!; fi; \
	trap 'kill $$busy 2>/dev/null' EXIT; \
	echo "busy loop $$busy keeps one core busy"; \
	$(RUN) pytest

bench: build ## Measure cold start (of the built artifact), warm latency, round trips, concurrency and memory; writes docs/PERFORMANCE.md
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m bench

bench-audit: setup ## The audit over one user's 10^6 rows against 10^4: rows/s, peak memory, a stop and resume
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m bench.audit

bench-books: setup ## The month's books over 10^6 rows (1,000 accounts) against 10^4: rows/s and peak memory
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m bench.books

bench-hot: setup ## 5,000 debits on one account from 64 workers, plain and hot, with DynamoDB's conflicts modelled
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m bench.hot_account

bench-grants: setup ## A spend beside one without grants' change count (calls, p50, p99), and the grants' projection of a hot account's 20,000 debits against 1,000 a second, and one expiry of an account's 100,000 grants
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m bench.grants

init-cost: setup ## Cold init of every function: its handler's import over its third-party modules', and what the rest is (FUNCTIONS="spend ...")
	PYTHONPATH=layers/shared:. $(VENV)/bin/python -m bench.init_cost $(FUNCTIONS)

validate: setup $(SCAN_VENV)/.synced ## sam validate --lint, cfn-lint and checkov on template.yaml
	$(SAM) validate --lint --region us-east-1
	$(RUN) cfn-lint template.yaml
	@# Zero failed checks: each one passes or is skipped in its resource's Metadata, with the reason.
	$(SCAN_VENV)/bin/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download

build: setup ## sam build: the functions and the layer, for arm64 and Python 3.13, with their bytecode
	UV=$(abspath $(UV)) $(SAM) build --parallel
	@$(MAKE) --no-print-directory bytecode

# sam's Python builder copies a function's sources only; compile them as layers/shared/Makefile compiles
# the layer's, for /var/task. A directory with python/ in it is a layer, which compiled its own.
bytecode:
	@for code in $(BUILD_DIR)/*/; do \
	  code="$${code%/}"; \
	  [ -d "$$code/python" ] && continue; \
	  $(PYTHON) -m compileall -q --invalidation-mode unchecked-hash -s "$$code" -p /var/task "$$code" || exit 1; \
	done

deploy: build ## Deploy the stack (guided the first time), then publish the site to it
	@if $(RUN) python -m deploy.publish --stack-name $(STACK_NAME) --exists; \
	  then $(SAM) deploy --stack-name $(STACK_NAME); \
	  else echo "AlarmEmail: where every alarm is emailed (a lost webhook, a rejected payment, a dispute, ledger drift)."; \
	    echo "  Required: the deploy refuses it empty. none deploys with alarms that reach the SNS topic only."; \
	    echo "EnableWaf: true (the default) needs the stack in us-east-1, where CloudFront's WAF lives (docs/DEPLOY.md)."; \
	    $(SAM) deploy --guided --stack-name $(STACK_NAME); fi
	PYTHONPATH=layers/shared:. $(RUN) python -m deploy.publish --stack-name $(STACK_NAME)

doctor: setup ## Ask Stripe, with calls that change nothing, whether each key of the stack has what its function needs
	$(RUN) python -m deploy.doctor --stack-name $(STACK_NAME)

layer-requirements: $(VENV)/.synced ## Pin the layer's packages to uv.lock, less those the Lambda runtime has
	@{ echo "# The layer's packages, pinned from uv.lock by make layer-requirements; edit pyproject.toml instead."; \
	  echo "# boto3, botocore and their dependencies are left out: the Lambda runtime provides them."; \
	  $(UV) export --frozen --no-dev --no-hashes --no-emit-project --no-header --no-annotate $(RUNTIME_PACKAGES:%=--no-emit-package %); \
	} > $(LAYER_REQUIREMENTS)

format: setup ## Format the code
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

clean: ## Remove the virtual environment and build output
	rm -rf $(VENV) $(SCAN_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
