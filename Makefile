# The newcomer's two commands: `make run` and `make test`. Everything else is for maintainers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export GREENRIGHTS_DATABASE_URL ?= sqlite+aiosqlite:///./var/greenrights.db

.PHONY: run test lint bench install dev clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: pyproject.toml $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed
dev: $(BIN)/.installed-dev

run: $(BIN)/.installed
	$(BIN)/greenrights db upgrade
	$(BIN)/greenrights demo
	$(BIN)/greenrights serve

# Runs the whole suite on SQLite, and on PostgreSQL too when GREENRIGHTS_TEST_DATABASE_URL is set.
test: $(BIN)/.installed-dev
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy core registry/domain trading/domain incentives/domain finance/domain
	$(BIN)/lint-imports

bench: $(BIN)/.installed-dev
	$(BIN)/python bench/ledger.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .hypothesis
