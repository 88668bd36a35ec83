# malipo — `make run` starts a local stack, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LOCAL  := config/with-local-env

.PHONY: install services run test test-fast chaos lint format bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## services: install (as root, Debian/Ubuntu) and start PostgreSQL and RabbitMQ if missing.
services:
	@config/install-services

## run: check PostgreSQL, RabbitMQ and the ports, set up the database, start every process.
run: install
	@$(LOCAL) $(BIN)/malipo preflight
	$(LOCAL) $(BIN)/malipo db upgrade
	$(LOCAL) $(BIN)/malipo dev

## test: the whole suite against the local PostgreSQL and RabbitMQ (a database and vhost of its own).
test: install
	$(BIN)/pytest

## chaos: the chaos suite at full size (MALIPO_CHAOS_PAYMENTS=2000 a run; `make test` runs it
## with 500), then a table per run: payments, prompts per payment, credits per success, events.
CHAOS_PAYMENTS ?= 2000
chaos: install
	@rm -f .chaos-report.jsonl
	MALIPO_CHAOS_PAYMENTS=$(CHAOS_PAYMENTS) MALIPO_CHAOS_REPORT=$(CURDIR)/.chaos-report.jsonl \
	  $(BIN)/pytest -m chaos tests/chaos; status=$$?; \
	  $(BIN)/python -m tests.support.chaos_report .chaos-report.jsonl; exit $$status

## test-fast: unit and property tests only.
test-fast: install
	$(BIN)/pytest tests/unit tests/sandbox

## bench: the benchmark suite (tests/perf; not part of `make test`): real RabbitMQ, PostgreSQL,
## gunicorn and the sandbox, ~4 minutes. Parameters: make bench BENCH_ARGS='--worker-threads 4'.
BENCH_ARGS ?=
bench: install
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "make bench: installing wrk (apt-get install wrk)"; \
	  apt-get install -y wrk >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } || \
	    { echo "make bench: wrk is missing and could not be installed (not root, or no apt-get)."; \
	      echo "Install it yourself: sudo apt-get install wrk (Debian/Ubuntu) or brew install wrk."; \
	      exit 1; }; }
	$(BIN)/python -m tests.perf.run $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
