# LabelLoop tasks. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

.PHONY: help
help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

.PHONY: install
install: $(STAMP) ## Create .venv and install LabelLoop with test and dev tools

HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo
demo: $(STAMP) ## Build the demo project in ./labelloop.db, run three audit cycles, serve the web UI
	$(BIN)/labelloop demo
	@echo "Serving the web UI at http://$(HOST):$(PORT)/ (log in with a demo login above; Ctrl-C stops)"
	$(BIN)/labelloop serve --host $(HOST) --port $(PORT)

.PHONY: test
test: $(STAMP) ## Run the whole test suite on SQLite and PostgreSQL
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

.PHONY: bench
bench: $(STAMP) ## Run the benchmarks (slow; results go in benchmarks/README.md)
	$(BIN)/python benchmarks/bench_import.py
	$(BIN)/python benchmarks/bench_stats.py

.PHONY: clean
clean: ## Remove the virtualenv, caches and local databases
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis labelloop.db labelloop.db-wal labelloop.db-shm labelloop-trail.anchors
