# cellqms: the menu. `make` alone lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
# PostgreSQL used by `make test-postgres` (a scratch database is created and dropped per run).
TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

.DEFAULT_GOAL := help
.PHONY: help install assets db demo run test test-sqlite test-postgres bench lint fmt clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/activate:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate setup.cfg constraints.txt
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed  ## create the virtualenv and install cellqms with its pinned dependencies

assets:  ## install front-end libraries from npm (pinned by package-lock.json) into webapp/static/vendor
	@if [ -f package.json ]; then npm ci --no-audit --no-fund --loglevel=error && npm run --silent build; fi

db: install  ## migrate the database (DATABASE_URL, default instance/cellqms.sqlite)
	$(BIN)/cellqms db upgrade

demo: db  ## load released diagrams, demo users (documented passwords) and demo records
	$(BIN)/cellqms demo

run: install assets demo  ## set up everything and serve the product on http://$(HOST):$(PORT)
	@echo "Starting the timer worker in the background and the web server on http://$(HOST):$(PORT)/"
	@$(BIN)/cellqms worker --interval 10 & worker=$$!; \
	  trap "kill $$worker 2>/dev/null" EXIT INT TERM; \
	  CELLQMS_INSECURE_COOKIES=1 $(BIN)/cellqms serve --host $(HOST) --port $(PORT)

test: test-sqlite test-postgres  ## run every test on SQLite and on PostgreSQL

# Tests run in parallel on every core (pytest-xdist); each test has its own database.
PYTEST := $(BIN)/pytest -q -n auto --durations=15

test-sqlite: install assets  ## run every test on SQLite
	$(PYTEST)

test-postgres: install assets  ## run every test on PostgreSQL ($(TEST_PG_URL))
	CELLQMS_TEST_DATABASE=$(TEST_PG_URL) $(PYTEST)

bench: install  ## benchmarks: platform vs bare SpiffWorkflow on SQLite and PostgreSQL (prints figures)
	$(BIN)/python -m benchmarks.run --db both

lint: install  ## ruff
	$(BIN)/ruff check .

fmt: install  ## ruff format
	$(BIN)/ruff format .

clean:  ## remove the virtualenv, node_modules and the local database
	rm -rf $(VENV) node_modules webapp/static/vendor instance
