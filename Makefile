# Lifeline: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export GX_ANALYTICS_ENABLED := False
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: demo test test-fast bench ui sandbox clean help

help:
	@echo "make demo   - create the environment if needed, generate demo data, run the whole job (DuckDB + sandbox)"
	@echo "make test   - run the test suite on DuckDB and a throwaway PostgreSQL server"
	@echo "make bench  - run the benchmarks and write benchmarks/results.md"
	@echo "make ui     - start the Dagster UI on http://127.0.0.1:3000"

# The environment is (re)installed only when pyproject.toml changes, so a second run is fast.
# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on our build machines) every
# dbt, Dagster and test process would otherwise recompile its imports (3 s of CPU per dbt process).
$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1 || true
	@if [ -x $(VENV)/bin/uv ]; then \
		$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[test]'; \
	else \
		$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'; \
	fi
	@touch $@

demo: $(INSTALLED)
	$(VENV)/bin/lifeline demo

test: $(INSTALLED)
	$(PY) -m pytest -n 2 --dist loadfile --durations=15 $(PYTEST_ARGS)

test-fast: $(INSTALLED)
	$(PY) -m pytest -x -q -m "not slow and not browser" $(PYTEST_ARGS)

bench: $(INSTALLED)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

ui: $(INSTALLED)
	$(VENV)/bin/lifeline ui

sandbox: $(INSTALLED)
	$(VENV)/bin/lifeline sandbox

clean:
	rm -rf .lifeline warehouse.duckdb warehouse.duckdb.wal dbt_project/target dbt_project/logs
