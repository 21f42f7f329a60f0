# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run run-fresh test chromium bench package clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## Serve the API on http://127.0.0.1:$${PORT:-8000} with the embedded store (data kept in .data/).
run: $(STAMP)
	$(BIN)/python -m devserver

## Same, starting from an empty store.
run-fresh: $(STAMP)
	$(BIN)/python -m devserver --fresh

## Install what the tests need and run them all.
# Spread over the machine's cores (at most 4): each worker has its own in-process store, and its
# own local server for the e2e and browser tests.
test: $(STAMP) chromium
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4

# Debian's Chromium, for the page's browser tests (tests/browser). Where it cannot be installed
# (not Debian, not root) those tests skip, unless REQUIRE_BROWSER=1 (.ci/run) makes it a failure.
APT := $(if $(filter 0,$(shell id -u)),apt-get,sudo -n apt-get)
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  ( command -v apt-get >/dev/null 2>&1 && \
	    ( $(APT) install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	      ( $(APT) update -q >/dev/null && $(APT) install -y -q --no-install-recommends chromium >/dev/null ) ) ) || \
	  echo "Chromium is not installed and could not be here: the browser tests will skip."

## Print the benchmark figures quoted in the README.
bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

## Package a stage for CloudFormation (SAM) into build/$$STAGE/ and cfn-lint it: make package STAGE=prod
STAGE ?= dev
package: $(STAMP)
	$(BIN)/python -m infra.package --stage $(STAGE) --out build/$(STAGE)

clean:
	rm -rf $(VENV) .data .pytest_cache
