# Set-up and checks for airflow-bridge. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= dag_specs/breast_cancer_classifier.yaml
APPROVER ?= dana
PYTEST_ARGS ?= -n 2
KSERVE_VENV ?= .venv-kserve

.PHONY: demo test test-stack lint typecheck unit bench bench-registry clean .venv-kserve

$(BIN)/airflow-bridge: pyproject.toml dev/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c dev/constraints.txt -e ".[dev,serve,postgres,celery,s3,lightgbm]"
	touch $@

## .venv-kserve: KServe's model server with what the kserve image adds (tests/test_kserve_protocol.py serves with it)
$(KSERVE_VENV)/installed: dev/kserve-requirements.txt dev/kserve-constraints.txt
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/pip install --quiet --upgrade "pip>=24"
	$(KSERVE_VENV)/bin/pip install --quiet -c dev/kserve-constraints.txt -r dev/kserve-requirements.txt
	$(KSERVE_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

.venv-kserve: $(KSERVE_VENV)/installed

## demo: train, validate, register and deploy an example spec end to end (SQLite, local files)
demo: $(BIN)/airflow-bridge
	$(BIN)/airflow-bridge run $(SPEC) --approve-as $(APPROVER)

## test: lint, type-check and run the whole test suite, then the stack tests on a real Airflow (dev/stack)
test: lint typecheck unit test-stack

lint: $(BIN)/airflow-bridge
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/airflow-bridge
	$(BIN)/mypy

unit: $(BIN)/airflow-bridge $(KSERVE_VENV)/installed
	$(BIN)/pytest $(PYTEST_ARGS)

## test-stack: start a real Airflow (Celery, PostgreSQL, Redis on 127.0.0.1), drive it over REST, stop it
test-stack: $(BIN)/airflow-bridge
	$(BIN)/pytest -m stack tests/test_stack.py -n 0 --durations=0

## bench: parse-time and validate benchmarks (figures in docs/benchmarks.md)
bench: $(BIN)/airflow-bridge
	$(BIN)/python benchmarks/run_all.py

## bench-registry: registration throughput vs MLflow on PostgreSQL 127.0.0.1:5432 (MLflow in its own venv)
benchmarks/.venv-mlflow/bin/python: benchmarks/requirements-mlflow.txt
	$(PYTHON) -m venv benchmarks/.venv-mlflow
	benchmarks/.venv-mlflow/bin/pip install --quiet -r benchmarks/requirements-mlflow.txt
	touch $@

bench-registry: $(BIN)/airflow-bridge benchmarks/.venv-mlflow/bin/python
	$(BIN)/python benchmarks/registry_throughput.py --configs 8x1,8x8 --rounds 3

clean:
	rm -rf $(VENV) $(KSERVE_VENV) .airflow-bridge .stack .pytest_cache .mypy_cache .ruff_cache
