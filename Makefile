# The two commands of the quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEPOT ?= demo-depot

.PHONY: demo test lint bench install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## Set up, create a depot with an example project in ./$(DEPOT), and serve it on 127.0.0.1:8080.
demo: install
	$(BIN)/neurodepot --root $(DEPOT) demo

## Set up and run the whole test suite (SQLite and PostgreSQL), with the linters.
test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/blobstore.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/convert.py
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/deid.py
