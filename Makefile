# Aura: `make run` sets up and serves; `make test` sets up and runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-postgres venv dev-venv demo bench lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/activate
	$(BIN)/pip install -q -r requirements.txt

dev-venv: $(BIN)/activate
	$(BIN)/pip install -q -r requirements-dev.txt

## Set up and serve on 127.0.0.1:8000 (SQLite under instance/, Redis if it answers).
run: venv
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## Set up and run the whole suite (SQLite, real Redis, real Gunicorn, promtool).
test: dev-venv
	scripts/ensure-services.sh
	$(BIN)/pytest

## The same suite against PostgreSQL.
test-postgres: dev-venv
	scripts/ensure-services.sh --postgres
	AURA_TEST_DATABASE_URL=$(PG_URL) $(BIN)/pytest

## Gunicorn (4 recycling workers) + Prometheus with the alert rules + the load generator; Ctrl-C stops all.
demo: dev-venv
	scripts/demo.sh

## Benchmarks (about 5 minutes): a table with PASS/FAIL per target, JSON in bench/results/.
bench: dev-venv
	$(BIN)/python bench/run.py

lint: dev-venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) instance .pytest_cache
