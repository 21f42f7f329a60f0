# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run run-fresh test bench package clean

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
test: $(STAMP)
	$(BIN)/python -m pytest -q

## Print the benchmark figures quoted in the README.
bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

## Package a stage for CloudFormation (SAM) into build/$$STAGE/ and cfn-lint it: make package STAGE=prod
STAGE ?= dev
package: $(STAMP)
	$(BIN)/python -m infra.package --stage $(STAGE) --out build/$(STAGE)

clean:
	rm -rf $(VENV) .data .pytest_cache
