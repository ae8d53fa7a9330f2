# Sluice developer entry points. `make test` works on a fresh machine: it creates the
# virtualenv, fetches the Kafka and event-ruler jars, builds the local control plane (cached
# outside the tree) and runs lint, types and every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_SOURCES := operator runtime cli testkit tests e2e bench conftest.py

.PHONY: help venv lock lint format test unit bench kafka-up kafka-down cluster-up cluster-down \
        node-up node-down image infra clean-cache demo registry-up registry-down

help:
	@echo "make test          install everything needed, then lint, type-check and run all tests"
	@echo "make lint          ruff, mypy --strict and the import layering (import-linter)"
	@echo "make demo          the quickstart: broker, API server, operator, a function, records"
	@echo "make lock          re-pin requirements-dev.lock after editing pyproject's dependencies"
	@echo "make bench         run the benchmarks against a real broker (figures in bench-results/)"
	@echo "make kafka-up      start the local Kafka broker (127.0.0.1:19092); kafka-down stops it"
	@echo "make cluster-up    start the local Kubernetes API server; cluster-down stops it"
	@echo "make registry-up   start the local schema registry (Confluent API); registry-down stops it"
	@echo "make node-up       join a real node (containerd, kubelet) to it; node-down stops it"
	@echo "make image         build the Sluice image without Docker (OCI layout, cached)"

# The exact versions come from requirements-dev.lock (make lock writes it from pyproject's
# ranges), so every machine and CI test with the same set; the project itself is installed
# editable on top, without letting pip resolve anything else.
$(BIN)/.installed: pyproject.toml requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: Python 3.11+ is needed as '$(PYTHON)'; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	@echo "==> creating the virtualenv in $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -r requirements-dev.lock
	@# The three packages live in their own folders (operator/, runtime/, cli/), so setuptools
	@# maps them with an import hook and warns that folders named like the packages in the
	@# working directory would shadow them. None are (the packages are one level down):
	@# that one notice is silenced, nothing else.
	@PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install -q -e . --no-deps
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check >&2; \
	  echo "error: requirements-dev.lock does not cover pyproject.toml; run make lock" >&2; exit 1; }
	@touch $@

venv: $(BIN)/.installed

# Re-resolve requirements-dev.lock after editing the dependencies in pyproject.toml (pins that
# still fit are kept; add UPGRADE=1 to move every pin to the newest allowed version). uv makes
# one lock for every platform and Python >= 3.11; pip alone installs it.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q 'uv>=0.5'
	@$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --extra dev \
	  $(if $(UPGRADE),--upgrade) --custom-compile-command "make lock" \
	  pyproject.toml -o requirements-dev.lock

lint: venv
	@echo "==> ruff"
	@$(BIN)/ruff check $(PY_SOURCES)
	@$(BIN)/ruff format --check $(PY_SOURCES)
	@echo "==> mypy --strict"
	@$(BIN)/mypy
	@echo "==> import-linter (cli > operator > runtime; nothing shipped imports the tooling)"
	@$(BIN)/lint-imports --no-logo

format: venv
	@$(BIN)/ruff check --fix $(PY_SOURCES)
	@$(BIN)/ruff format $(PY_SOURCES)

infra:
	@scripts/kafka.sh fetch
	@scripts/registry.sh fetch
	@scripts/event-ruler.sh classpath >/dev/null
	@scripts/cluster.sh build
	@scripts/helm.sh >/dev/null

unit: venv
	@$(BIN)/pytest -q -m "not integration and not e2e and not differential"

test: venv lint infra
	@echo "==> pytest (starts Kafka and the API server when tests ask for them)"
	@$(BIN)/pytest

bench: venv infra
	@$(BIN)/python -m bench

kafka-up:
	@scripts/kafka.sh up
kafka-down:
	@scripts/kafka.sh down
registry-up:
	@scripts/registry.sh up
registry-down:
	@scripts/registry.sh down
cluster-up:
	@scripts/cluster.sh up
cluster-down:
	@scripts/cluster.sh down
node-up:
	@scripts/node.sh up
node-down:
	@scripts/node.sh down
image:
	@scripts/image.sh build

clean-cache:
	@scripts/node.sh clean
	@scripts/kafka.sh clean
	@scripts/registry.sh clean
	@scripts/cluster.sh clean

demo: venv infra
	@$(BIN)/python -m e2e.demo
