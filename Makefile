# Every target installs what it needs into .venv/ (and node_modules/) first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
export ALLURE_NO_ANALYTICS := true
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install test pytest acceptance standard exhaustive report prove flaky bench bench-gateway bench-proxy bench-backend clean ktrdr-rehearsal

install: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

## The README's test command: the project's pytest suite, then the basic level of the spec.
test: install
	$(BIN)/pytest -q tests
	$(BIN)/ib-resilience run --level basic

## The specification against the embedded targets, by level.
acceptance: install
	$(BIN)/ib-resilience run --level basic

standard: install
	$(BIN)/ib-resilience run --level standard

exhaustive: install
	$(BIN)/ib-resilience run --level exhaustive

## The basic level with the Markdown summary and the Allure HTML (multi-file and single-file).
report: install
	$(BIN)/ib-resilience run --level basic --report

pytest: install
	$(BIN)/pytest -q tests

## Proof that the spec can fail: every seeded bug against its bug class; kill matrix in reports/.
prove: install
	$(BIN)/python tests/mutants/prove.py --level standard

## Flakiness: the standard level RUNS times on the clean reference (failures per scenario).
RUNS ?= 10
flaky: install
	$(BIN)/python tests/mutants/flakiness.py --runs $(RUNS) --level standard

## Benchmarks print figures and assert nothing about time.
bench: bench-gateway bench-proxy bench-backend

bench-gateway: install
	$(BIN)/python -m benchmarks.gateway_bench

bench-proxy: install
	$(BIN)/python -m benchmarks.proxy_bench

bench-backend: install
	$(BIN)/python -m benchmarks.backend_bench

clean:
	rm -rf reports build *.egg-info

## A rehearsal against your own, already-built KTRDR (not part of `make test`; README, "Rehearsing against KTRDR").
## The suite never builds KTRDR: KTRDR_DIR is a checkout you built, KTRDR_VENV its virtual environment.
## KTRDR's CLI always calls http://localhost:8000, so its API must listen there.
KTRDR_DIR ?=
KTRDR_VENV ?= $(KTRDR_DIR)/.venv
KTRDR_REF ?= $(shell git -C "$(KTRDR_DIR)" rev-parse --short=8 HEAD 2>/dev/null || echo local)
KTRDR_RESET ?= git checkout -- data/symbol_discovery_cache.json; rm -f data/ib_client_id_registry.json; rm -rf logs
## What KTRDR's API does not report (README, target profile): its pool allows 25 IB connections in all
## (per-purpose maxima in ktrdr/data/ib_connection_pool.py: 1+5+2+2+1+3+10+1); idle 300 s, health 60 s there too.
KTRDR_PROFILE ?= -D pool_limit=25 -D idle_timeout_s=300 -D health_check_interval_s=60
LEVEL ?= standard
ktrdr-rehearsal: install
	@test -n "$(KTRDR_DIR)" || { echo "usage: make ktrdr-rehearsal KTRDR_DIR=<built KTRDR checkout> [KTRDR_VENV=<its venv>] [KTRDR_REF=<name>] [LEVEL=standard]"; exit 2; }
	$(BIN)/ib-resilience run --level $(LEVEL) --report --reports-dir reports/ktrdr-$(KTRDR_REF) \
	    --target managed --backend-cwd "$(KTRDR_DIR)" --api-port 8000 \
	    --backend-command "$(KTRDR_VENV)/bin/uvicorn ktrdr.api.main:app --host 127.0.0.1 --port {api_port}" \
	    --backend-reset '$(KTRDR_RESET)' --cli "$(KTRDR_VENV)/bin/ktrdr" $(KTRDR_PROFILE)
