# Every target installs what it needs into .venv/ (and node_modules/) first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
export ALLURE_NO_ANALYTICS := true
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install test lint pytest acceptance standard exhaustive report prove flaky bench bench-gateway bench-proxy bench-backend bench-levels clean ktrdr-rehearsal ktrdr-fast
.PHONY: nemesis nemesis-prove contract-doc slow typical-durations

install: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,plots]'
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

## The project's full test (docs/ci.md, "Make targets"; .ci/run runs it): the linter, the pytest suite, then the basic level of the spec.
## pytest runs in PYTEST_WORKERS processes (pytest-xdist): most tests wait on real servers' bounds, not on CPU.
PYTEST_WORKERS ?= 3
PYTEST := $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup
test: install lint
	$(PYTEST) -m "not slow" tests
	$(BIN)/ib-resilience run --level basic
	$(BIN)/ib-resilience run --level basic -D ib_library=ib_async --reports-dir reports/ib_async

## The suite as an installed tool (also part of `make test`, about a minute): the wheel's contents, a fresh venv
## outside the repository running the basic level from an empty directory, the Dockerfile and the CI example.
test-install: install
	$(BIN)/pytest -q tests/spec/test_install.py

## The wheel (dist/), as `pipx install .` builds it; the image from the Dockerfile (needs a Docker daemon).
dist: install
	rm -rf build
	$(BIN)/python -m pip wheel --no-deps -q -w dist .

image:
	docker build -t ib-resilience .

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
	$(PYTEST) -m "not slow" tests

## ruff (rules in pyproject.toml); the wings' import walls are a test (tests/spec/test_wings.py).
lint: install
	$(BIN)/ruff check .

## Proof that the spec can fail: every seeded bug against its bug class; kill matrix in reports/.
prove: install
	$(BIN)/python tests/mutants/prove.py --level standard

## The nemesis: SEEDS seeded fault schedules of MINUTES minutes each (from SEED) against the clean reference; a
## failure names its seed, writes its schedule and is shrunk (docs/reviewers.md, "The nemesis"). Evidence in reports/nemesis/.
SEEDS ?= 10
MINUTES ?= 5
SEED ?= 1
nemesis: install
	$(BIN)/ib-resilience nemesis --seeds $(SEEDS) --minutes $(MINUTES) --seed $(SEED) \
	    --out reports/nemesis/clean-seed$(SEED)-x$(SEEDS)

## The bugs only overlapping faults show (tests/mutants/mutant_catalog.py NEMESIS_MUTANTS): each passes the standard
## level, then the nemesis hunts it for HUNT_MINUTES and shrinks what it finds (reports/nemesis/prove/prove.md).
HUNT_MINUTES ?= 10
nemesis-prove: install
	$(BIN)/python tests/nemesis/prove_mutants.py --hunt-minutes $(HUNT_MINUTES)

## Flakiness: the standard level RUNS times on the clean reference (failures per scenario); WORKERS=4 runs
## each with 4 workers (ib-resilience run --workers).
RUNS ?= 10
WORKERS ?= 1
flaky: install
	$(BIN)/python tests/mutants/flakiness.py --runs $(RUNS) --level standard --workers $(WORKERS)

## Benchmarks print figures and assert nothing about time.
bench: bench-gateway bench-proxy bench-backend

bench-gateway: install
	$(BIN)/python -m benchmarks.gateway_bench

bench-proxy: install
	$(BIN)/python -m benchmarks.proxy_bench

bench-backend: install
	$(BIN)/python -m benchmarks.backend_bench

## Wall time of each level with 1, 2 and 4 workers, the floor its Gherkin forces, the ten slowest scenarios
## (reports/bench-levels.md), for the embedded target and the reference as a managed one (fixed port, isolated workers).
## BENCH_LEVELS=basic,standard,exhaustive adds the exhaustive level (≈ 25 min); BENCH_TARGETS=embedded for one target.
BENCH_LEVELS ?= basic,standard
BENCH_TARGETS ?= embedded,managed
bench-levels: install
	$(BIN)/python -m benchmarks.levels_bench --levels $(BENCH_LEVELS) --targets $(BENCH_TARGETS)

clean:
	rm -rf reports build dist *.egg-info

## A rehearsal against your own, already-built KTRDR (not part of `make test`; docs/backend-authors.md,
## "Your own backend, managed by the suite").
## The suite never builds KTRDR: KTRDR_DIR is a checkout you built, KTRDR_VENV its virtual environment. The
## settings (command, environment, API on 8000, state files, pool limit, timings) are the `ktrdr` profile,
## support/profiles/ktrdr.toml; KTRDR_OPTIONS adds or overrides any (e.g. -D pool_limit=5).
KTRDR_DIR ?=
KTRDR_VENV ?= $(KTRDR_DIR)/.venv
KTRDR_REF ?= $(shell git -C "$(KTRDR_DIR)" rev-parse --short=8 HEAD 2>/dev/null || echo local)
KTRDR_OPTIONS ?=
LEVEL ?= standard
ktrdr-rehearsal: install
	@test -n "$(KTRDR_DIR)" || { echo "usage: make ktrdr-rehearsal KTRDR_DIR=<built KTRDR checkout> [KTRDR_VENV=<its venv>] [KTRDR_REF=<name>] [LEVEL=standard]"; exit 2; }
	$(BIN)/ib-resilience run --level $(LEVEL) --report --reports-dir reports/ktrdr-$(KTRDR_REF) \
	    --profile ktrdr --backend-cwd "$(KTRDR_DIR)" --backend-venv "$(KTRDR_VENV)" $(KTRDR_OPTIONS)

## The same verdict in minutes: 4 isolated workers (each its own loopback and overlay of the checkout), the
## partition balanced by the sequential rehearsal's durations, and a backend kept after a failure when nothing says it
## may not be in a fresh start's state (docs/profiles.md).
KTRDR_WORKERS ?= 4
ktrdr-fast: install
	@test -n "$(KTRDR_DIR)" || { echo "usage: make ktrdr-fast KTRDR_DIR=<built KTRDR checkout> [KTRDR_VENV=<its venv>] [KTRDR_REF=<name>] [LEVEL=standard]"; exit 2; }
	$(BIN)/ib-resilience run --level $(LEVEL) --report --reports-dir reports/ktrdr-$(KTRDR_REF)-fast \
	    --profile ktrdr --backend-cwd "$(KTRDR_DIR)" --backend-venv "$(KTRDR_VENV)" --workers $(KTRDR_WORKERS) \
	    --durations reports/ktrdr-$(KTRDR_REF) -D restart_after_failure=when-unhealthy $(KTRDR_OPTIONS)

## The durations the suite ships (a first --workers run is balanced by them): rewritten from a run's reports folder,
## e.g. the reference backend as a managed target at the exhaustive level.
typical-durations: install
	@test -n "$(FROM)" || { echo "usage: make typical-durations FROM=<reports folder of a run>"; exit 2; }
	$(BIN)/python -c 'import sys; from pathlib import Path; from ibresilience import parallel; from ibresilience.runner import LEVELS; \
	    print(parallel.write_typical_durations(Path(sys.argv[1]), [s.key for s in parallel.select(LEVELS["exhaustive"])]))' "$(FROM)"

## docs/contract.md's generated tables (shapes, bounds) rewritten from the code the claims use.
contract-doc: install
	$(BIN)/python -m support.contract_doc

## Minutes-long comparisons of whole runs left out of `make test` (pytest -m slow): restarting only an unhealthy
## backend after a failure changes no verdict, against seeded bugs that leave state behind (≈ 5 min).
slow: install
	$(PYTEST) -m slow tests
