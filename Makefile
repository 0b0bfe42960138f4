# Payments Lakehouse. `make help` lists the targets; every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.DEFAULT_GOAL := help
.PHONY: help install demo test test-unit lint format broker-jars prod-jars postgresql chromium compose-plugin stripe-mock notebook bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $(STAMP)

install: $(STAMP) ## create .venv with the locked dependencies

broker-jars: $(STAMP) ## fetch the local broker's jars from Maven Central (once)
	$(BIN)/python -c "from lakehouse.broker import ensure_jars; from settings import get_settings; print(ensure_jars(get_settings().cache_dir))"

prod-jars: $(STAMP) ## fetch s3proxy and Spark's Iceberg/PostgreSQL jars from Maven Central (once)
	$(BIN)/python -c "from lakehouse.localprod import ensure_jars; from settings import get_settings; print(ensure_jars(get_settings().cache_dir))"

postgresql: ## Debian's PostgreSQL server binaries for the production-shape tests and benchmark
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)

# The docker CLI here has no compose plugin (and no engine); `docker compose config` validates the
# compose file without an engine, so build the plugin once from the Go module proxy (~4 min).
COMPOSE_VERSION := v2.29.7
COMPOSE_PLUGIN := $(TOOLS)/docker/cli-plugins/docker-compose
compose-plugin: ## docker compose (for `docker compose config` in the tests) where docker lacks it
	@if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1 \
	    && command -v go >/dev/null && [ ! -x $(COMPOSE_PLUGIN) ]; then \
	  echo "building docker compose $(COMPOSE_VERSION) from the Go module proxy (once)…"; \
	  GOBIN=$(CURDIR)/$(TOOLS)/go-bin go install github.com/docker/compose/v2/cmd@$(COMPOSE_VERSION) \
	    && mkdir -p $(dir $(COMPOSE_PLUGIN)) && mv $(TOOLS)/go-bin/cmd $(COMPOSE_PLUGIN); \
	fi

chromium: ## Debian's Chromium for the Prefect UI test (Playwright drives /usr/bin/chromium)
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

STRIPE_MOCK_VERSION := v0.203.0
stripe-mock: ## Stripe's own API mock (Go module proxy), to check the reconcile client's requests
	@test -x $(TOOLS)/bin/stripe-mock || { command -v go >/dev/null \
		&& GOBIN=$(abspath $(TOOLS))/bin go install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION) \
		|| echo "stripe-mock not installed (no go, or no Go proxy): its test will be skipped"; }

demo: $(STAMP) broker-jars ## run the whole platform on the embedded stack and show the results
	$(BIN)/lakehouse demo

test: $(STAMP) broker-jars prod-jars postgresql chromium compose-plugin stripe-mock ## run the whole test suite (unit and integration: real broker, PostgreSQL, S3, Spark)
	$(BIN)/pytest -q

test-unit: $(STAMP) ## only the tests that need no broker, server or browser
	$(BIN)/pytest -q -m "not integration"

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff fix and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

notebook: $(STAMP) ## open JupyterLab on the analyst notebooks
	$(BIN)/jupyter lab --ip 127.0.0.1 notebooks/

bench: $(STAMP) broker-jars prod-jars postgresql ## run the benchmarks quoted in the README
	$(BIN)/python bench/receiver.py
	$(BIN)/python bench/pipeline.py --events 1000000 --shapes embedded,production
	$(BIN)/python bench/chaos.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/duckdb_scan.py
	$(BIN)/python bench/models.py
	$(BIN)/python bench/scoring.py

clean: ## remove the virtualenv and tool caches (keeps .lakehouse data)
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache
