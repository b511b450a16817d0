# Aura: `make run` sets up and serves; `make test` sets up and runs the test suite.
# `make` alone lists the targets (each has a `## ` line above it, which `make help` prints).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
# make test: most tests in TEST_PROCESSES processes (pytest-xdist; each has its own redis-server and
# PostgreSQL database, tests/support/parallel.py), then the `serial` ones alone.
TEST_PROCESSES ?= 4
PARALLEL := -n $(TEST_PROCESSES) --dist worksteal --durations=20
# Gunicorn's default metrics directory and control socket for `make run` (see gunicorn.conf.py).
RUN_METRICS_DIR := $(if $(wildcard /dev/shm),/dev/shm,$(or $(TMPDIR),/tmp))/aura-metrics-$(shell id -u)

.DEFAULT_GOAL := help
.PHONY: help run test test-postgres test-compat test-ha venv dev-venv demo dashboards-preview bench lint mutate clean

## List the targets with what each does (the default goal).
help:
	@awk '/^## /{doc=substr($$0,4); next} /^[a-z][a-z-]*:/ && doc {split($$0,t,":"); n++; name[n]=t[1]; text[n]=doc; \
	  if (length(t[1]) > w) w = length(t[1])} {doc=""} \
	  END {for (i = 1; i <= n; i++) printf "  %-" w "s  %s\n", name[i], text[i]}' $(MAKEFILE_LIST)

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

## Create .venv with the run-time requirements.
venv: $(BIN)/activate
	$(BIN)/pip install -q -r requirements.txt

## Create .venv with the run-time and dev requirements (tests, lint, benchmarks).
dev-venv: $(BIN)/activate
	$(BIN)/pip install -q -r requirements-dev.txt

## Set up and serve on 127.0.0.1:8000 (SQLite under instance/, Redis if it answers).
run: venv
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## Set up and run the whole suite (SQLite, real Redis, real Gunicorn, promtool).
test: dev-venv
	scripts/ensure-services.sh
	$(BIN)/pytest $(PARALLEL) -m "not serial"
	$(BIN)/pytest -m serial --durations=5

## The same suite against PostgreSQL.
test-postgres: dev-venv
	scripts/ensure-services.sh --postgres
	AURA_TEST_DATABASE_URL=$(PG_URL) $(BIN)/pytest $(PARALLEL) -m "not serial"
	AURA_TEST_DATABASE_URL=$(PG_URL) $(BIN)/pytest -m serial --durations=5

## The metrics core against the oldest and newest supported prometheus-client, in scratch venvs (also in `make test`).
test-compat: dev-venv
	$(BIN)/pytest -m compat tests/metrics

## Failover tests (a few minutes): Redis Sentinel and PostgreSQL standby promotions under traffic, two instances behind haproxy.
test-ha: dev-venv
	scripts/ensure-services.sh --ha
	$(BIN)/pytest tests/ha

## Gunicorn + Prometheus + Alertmanager + the load generator and a Redis outage: alerts fire; Ctrl-C stops all.
demo: dev-venv
	scripts/demo.sh

## Redraw docs/images/dashboards/*.png: every dashboard panel from the demo's live Prometheus (~4 min).
dashboards-preview: dev-venv
	scripts/dashboards-preview.sh

## Benchmarks (about 5 minutes): a table with PASS/FAIL per target, JSON in bench/results/.
bench: dev-venv
	$(BIN)/python bench/run.py

## Ruff (lint rules and formatting) over the whole tree, then mypy (settings in pyproject.toml).
lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# SQLite first, then the survivors again on PostgreSQL: CI runs the suite on both.
## Mutation testing of every module (hours; one group: scripts/mutate.py --group NAME; not in CI): a score per group; survivors in mutants/survivors.txt.
mutate: dev-venv
	scripts/ensure-services.sh --postgres
	$(BIN)/python scripts/mutate.py --postgres $(PG_URL)

## Remove everything the targets create: .venv, instance/, .demo/, bench/results/, mutants/, caches, run's metrics dir.
clean:
	rm -rf $(VENV) instance .demo bench/results mutants .pytest_cache .ruff_cache .mypy_cache
	@# the metrics directory only when no running instance holds it (its owner lock is free)
	-[ ! -d $(RUN_METRICS_DIR) ] || flock -n $(RUN_METRICS_DIR)/.aura-metrics.owner rm -rf $(RUN_METRICS_DIR)
	find . -name __pycache__ -type d -not -path './.git/*' -prune -exec rm -rf {} +
