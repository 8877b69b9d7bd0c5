# Set-up and checks for airflow-bridge. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= dag_specs/breast_cancer_classifier.yaml
APPROVER ?= dana
PYTEST_ARGS ?= -n 2

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/airflow-bridge: pyproject.toml dev/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c dev/constraints.txt -e ".[dev,serve,postgres]"
	touch $@

## demo: train, validate, register and deploy an example spec end to end (SQLite, local files)
demo: $(BIN)/airflow-bridge
	$(BIN)/airflow-bridge run $(SPEC) --approve-as $(APPROVER)

## test: lint, type-check and run the whole test suite
test: lint typecheck unit

lint: $(BIN)/airflow-bridge
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/airflow-bridge
	$(BIN)/mypy

unit: $(BIN)/airflow-bridge
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(BIN)/airflow-bridge
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .airflow-bridge .pytest_cache .mypy_cache .ruff_cache
