# Two commands on a fresh machine: `make demo` and `make test`. Python 3.11+ is all they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test check lint typecheck bundle-functions clean chaos schema

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/guesthub demo

# pytest-xdist workers: the suite mostly waits (servers, the chaos scenario's clocks), so more
# workers than this machine's two cores; TEST_WORKERS=0 runs it in one process
TEST_WORKERS ?= 3

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

chaos: $(STAMP)
	$(BIN)/python -m tests.chaos --customers 5000 --minutes 5

lint: $(STAMP)
	$(BIN)/ruff check shared functions tests bench deploy
	$(BIN)/ruff format --check shared functions tests bench deploy

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# supabase/schema.sql from a freshly migrated database (after adding a migration)
schema: $(STAMP)
	$(BIN)/python -m deploy.schema_sql supabase/schema.sql

bundle-functions: $(STAMP)
	$(BIN)/python deploy/bundle_functions.py build/functions

clean:
	rm -rf $(VENV) .guesthub build dist
