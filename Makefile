# Sluice developer entry points. `make test` works on a fresh machine: it creates the
# virtualenv, fetches the Kafka jars, builds the local control plane (cached outside the
# tree) and runs lint, types and every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_SOURCES := operator runtime tests e2e bench conftest.py

.PHONY: help venv lint format test unit bench kafka-up kafka-down cluster-up cluster-down \
        node-up node-down image infra clean-cache demo

help:
	@echo "make test          install everything needed, then lint, type-check and run all tests"
	@echo "make bench         run the benchmarks against a real broker (figures in bench-results/)"
	@echo "make kafka-up      start the local Kafka broker (127.0.0.1:19092); kafka-down stops it"
	@echo "make cluster-up    start the local Kubernetes API server; cluster-down stops it"
	@echo "make node-up       join a real node (containerd, kubelet) to it; node-down stops it"
	@echo "make image         build the Sluice image without Docker (OCI layout, cached)"

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: Python 3.11+ is needed as '$(PYTHON)'; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	@echo "==> creating the virtualenv in $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

lint: venv
	@echo "==> ruff"
	@$(BIN)/ruff check $(PY_SOURCES)
	@$(BIN)/ruff format --check $(PY_SOURCES)
	@echo "==> mypy --strict"
	@$(BIN)/mypy

format: venv
	@$(BIN)/ruff check --fix $(PY_SOURCES)
	@$(BIN)/ruff format $(PY_SOURCES)

infra:
	@scripts/kafka.sh fetch
	@scripts/cluster.sh build
	@scripts/helm.sh >/dev/null

unit: venv
	@$(BIN)/pytest -q -m "not integration and not e2e"

test: venv lint infra
	@echo "==> pytest (starts Kafka and the API server when tests ask for them)"
	@$(BIN)/pytest

bench: venv infra
	@$(BIN)/python -m bench

kafka-up:
	@scripts/kafka.sh up
kafka-down:
	@scripts/kafka.sh down
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
	@scripts/cluster.sh clean

demo: venv infra
	@$(BIN)/python -m e2e.demo
