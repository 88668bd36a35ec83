# malipo — `make run` starts a local stack, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LOCAL  := config/with-local-env

.PHONY: install run test test-fast lint format bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## run: set up the database and start ingress, workers, scheduler and the Daraja simulator.
run: install
	$(LOCAL) $(BIN)/malipo db upgrade
	$(LOCAL) $(BIN)/malipo dev

## test: the whole suite against the local PostgreSQL and RabbitMQ (a database and vhost of its own).
test: install
	$(BIN)/pytest

## test-fast: unit and property tests only.
test-fast: install
	$(BIN)/pytest tests/unit tests/sandbox

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
