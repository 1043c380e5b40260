# vislab: one workspace, ten papers. `make test` is what CI runs.
PKG ?=
UV ?= uv
PYTEST = $(UV) run --no-sync python -m pytest
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup test test-shared test-workspace test-wheels lint train bench build gpu-check help

help:
	@echo "make setup | test | test-<pkg> | test-shared | test-workspace | test-wheels | lint | train PKG=<pkg> | bench [PKG=<pkg>] | build | gpu-check"

setup:
	$(UV) sync --locked --all-packages --group dev

test: setup
	$(PYTEST) shared/tests packages tests -q -ra

test-shared: setup
	$(PYTEST) shared/tests -q

test-wheels: setup
	VISLAB_TEST_WHEELS=1 $(PYTEST) tests/test_wheels.py -q -ra

test-workspace: setup
	$(PYTEST) tests -q

test-%: setup
	$(PYTEST) packages/$*/tests -q

lint: setup
	$(UV) run --no-sync ruff check .

train:
	@test -n "$(PKG)" || (echo "usage: make train PKG=<package>"; exit 2)
	$(UV) run --package $(PKG) train

# make bench: every package's ours-vs-peer bench -> bench/results.md; make bench PKG=<pkg>: one -> bench/results-<pkg>.md.
# ARGS: e.g. ARGS="--reps 7", ARGS="--quick", ARGS="--device cuda".
bench:
	$(UV) run --no-sync python scripts/bench_all.py $(PKG) $(ARGS)

build:
	$(UV) build --all-packages -o dist

gpu-check: setup
	$(UV) run --no-sync python scripts/gpu_check.py $(ARGS)
