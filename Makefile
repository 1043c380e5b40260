# vislab: one workspace, ten papers. `make test` is what CI runs.
PKG ?=
UV ?= uv
PYTEST = $(UV) run --no-sync python -m pytest
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup test test-shared test-workspace lint train bench build gpu-check help

help:
	@echo "make setup | test | test-<pkg> | test-shared | test-workspace | lint | train PKG=<pkg> | bench PKG=<pkg> | build | gpu-check"

setup:
	$(UV) sync --locked --all-packages --group dev

test: setup
	$(PYTEST) shared/tests packages tests -q -ra

test-shared: setup
	$(PYTEST) shared/tests -q

test-workspace: setup
	$(PYTEST) tests -q

test-%: setup
	$(PYTEST) packages/$*/tests -q

lint: setup
	$(UV) run --no-sync ruff check .

train:
	@test -n "$(PKG)" || (echo "usage: make train PKG=<package>"; exit 2)
	$(UV) run --package $(PKG) train

bench:
	@test -n "$(PKG)" || (echo "usage: make bench PKG=<package>"; exit 2)
	$(UV) run --package $(PKG) python packages/$(PKG)/bench/bench.py

build:
	$(UV) build --all-packages -o dist

gpu-check: setup
	$(UV) run --no-sync python scripts/gpu_check.py $(ARGS)
